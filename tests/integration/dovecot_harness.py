"""A real Dovecot serving a test sluice's accounts and Maildirs over IMAP,
from the configuration `sluice dovecot-config` writes for it.

Everything lives in a fresh directory under /tmp: dovecot.conf, the SQL
settings file, base_dir (run/: sockets, pid; the config must not be inside
it, Dovecot puts a symlink named dovecot.conf there) and the log. The IMAP
listener is on a random loopback port, so a system Dovecot (Debian's
package may start one on 143/993) is neither needed nor disturbed.

Run as root, Dovecot is started as root (login processes as dovenull,
internal ones as dovecot, mail access as the sluice user); run as another
user, the config is made with --user and everything runs as that user.
"""
import imaplib
import os
import shutil
import signal
import socket
import subprocess
import tempfile

from sluice_harness import RUN_USER, WAIT, free_port, group_alive, wait_for

DOVECOT = "/usr/sbin/dovecot"


def dovecot_installed():
    return os.path.exists(DOVECOT) and os.path.exists("/usr/lib/dovecot/imap")


class Dovecot:
    def __init__(self, sluice, lmtp=False, extra_args=()):
        self.sluice = sluice
        self.dir = tempfile.mkdtemp(prefix="sluice-dovecot-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.base_dir = os.path.join(self.dir, "run")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.sql_file = os.path.join(self.dir, "sql.conf.ext")
        self.logfile = os.path.join(self.dir, "dovecot.log")
        self.errfile = os.path.join(self.dir, "dovecot.stderr")
        self.port = free_port()
        args = ["dovecot-config", "--imap-listen", "127.0.0.1:%d" % self.port,
                "--base-dir", self.base_dir, "--sql-file", self.sql_file,
                "--log", self.logfile]
        if lmtp:
            args.append("--lmtp")
        if os.geteuid() != 0:
            args += ["--user", RUN_USER]
        args += list(extra_args)
        r = sluice.cli(*args)
        with open(self.conf, "w") as f:
            f.write(r.stdout)
        self.config_text = r.stdout
        self.proc = None

    @property
    def lmtp_socket(self):
        return os.path.join(self.base_dir, "lmtp")

    def start(self):
        self.err = open(self.errfile, "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=self.err, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(self.answers, what="dovecot to answer on port %d" % self.port)
        return self

    def answers(self):
        if self.proc.poll() is not None:
            raise AssertionError("dovecot exited with %s:\n%s" % (
                self.proc.returncode, self.read_log()))
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.settimeout(5)
                return s.recv(512).startswith(b"* OK")
        except OSError:
            return False

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # any straggler
        except ProcessLookupError:
            pass
        self.proc.wait()
        wait_for(lambda: not group_alive(self.proc.pid),
                 what="dovecot's processes to exit")
        self.proc = None
        self.err.close()

    def read_log(self):
        out = []
        for name in (self.errfile, self.logfile):
            try:
                with open(name, errors="replace") as f:
                    out.append(f.read())
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def imap(self):
        return imaplib.IMAP4("127.0.0.1", self.port, timeout=WAIT)

    def login(self, user, password):
        """A logged-in IMAP4 connection, or None if the login was refused."""
        m = self.imap()
        try:
            m.login(user, password)
        except imaplib.IMAP4.error:
            m.logout()
            return None
        return m
