"""A throwaway PostgreSQL server for the tests that run on both database
backends: initdb into a fresh directory under /tmp, pg_ctl start on a free
loopback port (its socket in that directory too), one role with a
password, one database per test; everything is removed afterwards.

Run as root, the server runs as the unprivileged user of the tests
(RUN_USER: initdb refuses root).
"""
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile

from sluice_harness import RUN_USER, ensure_user, free_port


def pg_bindir():
    """The newest /usr/lib/postgresql/*/bin with initdb, or None."""
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if os.path.exists(os.path.join(d, "initdb"))]
    if not dirs:
        return None
    return sorted(dirs, key=lambda d: int(d.split("/")[-2]))[-1]


class PgServer:
    ROLE = "sluice"

    def __init__(self):
        ensure_user()
        self.bindir = pg_bindir()
        if self.bindir is None:
            raise RuntimeError("no PostgreSQL under /usr/lib/postgresql (make deps)")
        self.dir = tempfile.mkdtemp(prefix="sluice-pg-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "pg.log")
        self.port = free_port()
        self.password = "pw-" + secrets.token_hex(8) + "'\"@:/"  # quoting and URI escaping
        self.user = pwd.getpwnam(RUN_USER) if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.dir, RUN_USER, RUN_USER)
        self.superuser = RUN_USER if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
        self.ndb = 0
        self.running = False
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(secrets.token_hex(16) + "\n")
        if self.user:
            shutil.chown(pwfile, RUN_USER, RUN_USER)
        self._run("initdb", "-D", self.data, "-A", "scram-sha-256", "--pwfile", pwfile,
                  "-U", self.superuser, "--no-sync", "-E", "UTF8", "--locale", "C")
        with open(pwfile) as f:
            self.superpass = f.read().strip()
        os.remove(pwfile)
        self.start()
        self.psql("CREATE ROLE %s LOGIN PASSWORD %s" % (self.ROLE, self.quote(self.password)))

    @staticmethod
    def quote(s):
        return "'" + s.replace("'", "''") + "'"

    def _run(self, prog, *args, check=True, env=None):
        kw = {}
        if self.user:
            kw = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        e = dict(os.environ, **(env or {}))
        r = subprocess.run([os.path.join(self.bindir, prog)] + list(args), cwd=self.dir,
                           capture_output=True, text=True, env=e, **kw)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (prog, r.returncode, r.stdout,
                                                           r.stderr))
        return r

    # ---- the server ----
    def start(self):
        self._run("pg_ctl", "start", "-w", "-D", self.data, "-l", self.logfile, "-o",
                  "-k %s -c listen_addresses=127.0.0.1 -p %d -c fsync=off" % (self.dir,
                                                                           self.port))
        self.running = True

    def stop(self, mode="fast"):
        self._run("pg_ctl", "stop", "-w", "-D", self.data, "-m", mode)
        self.running = False

    def cleanup(self):
        if self.running:
            self._run("pg_ctl", "stop", "-w", "-D", self.data, "-m", "immediate",
                      check=False)
            self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- SQL ----
    def psql(self, sql, db="postgres", user=None):
        """Run sql (as the superuser by default); rows as lists of strings."""
        user = user or self.superuser
        pw = self.superpass if user == self.superuser else self.password
        r = self._run("psql", "-X", "-q", "-At", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
                      "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db,
                      "-c", sql, env={"PGPASSWORD": pw})
        return [line.split("\x1f") for line in r.stdout.splitlines()]

    def new_database(self):
        """A fresh database owned by the role: (name, DSN)."""
        self.ndb += 1
        name = "sluice_%d" % self.ndb
        self.psql("CREATE DATABASE %s OWNER %s" % (name, self.ROLE))
        return name, self.dsn(name)

    def dsn(self, name, port=None):
        from urllib.parse import quote
        return "postgresql://%s:%s@127.0.0.1:%d/%s" % (
            self.ROLE, quote(self.password, safe=""), port or self.port, name)

    def drop_database(self, name):
        self.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
