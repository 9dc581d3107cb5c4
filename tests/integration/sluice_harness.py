"""Start a real sluiced on random loopback ports with its own spool, database
and mailboxes, and give tests handy ways to talk to it and look at results.

Everything lives in a fresh directory under /tmp (world-traversable so the
unprivileged user sluiced drops to can reach it when the tests run as root).
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("SLUICE_BUILD", os.path.join(REPO, "build"))
SLUICED = os.path.join(BUILD, "sluiced")
SLUICE = os.path.join(BUILD, "sluice")
RUN_USER = "_sluice" if os.geteuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
WAIT = 30.0  # seconds: generous, machines are slow under sanitizers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=WAIT, what="condition"):
    """Poll pred() until it returns a true value (not a timing assertion:
    the deadline only stops a hung test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for %s" % what)


def ensure_user():
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(RUN_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir",
                        "/nonexistent", "--shell", "/usr/sbin/nologin", RUN_USER],
                       check=True)


class Sluice:
    def __init__(self, extra_conf="", tls=False):
        ensure_user()
        self.dir = tempfile.mkdtemp(prefix="sluice-test-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.spool = os.path.join(self.dir, "spool")
        self.mailboxes = os.path.join(self.dir, "mail")
        self.dbdir = os.path.join(self.dir, "db")
        for d in (self.spool, self.mailboxes, self.dbdir):
            os.mkdir(d)
            if os.geteuid() == 0:
                shutil.chown(d, RUN_USER, RUN_USER)
        self.smtp_port = free_port()
        self.submission_port = free_port()
        self.smtps_port = free_port()
        self.conf = os.path.join(self.dir, "sluice.conf")
        self.logfile = os.path.join(self.dir, "sluiced.log")
        lines = [
            "hostname mx.example.test",
            "spool %s" % self.spool,
            "mailboxes %s" % self.mailboxes,
            "database sqlite:%s/sluice.db" % self.dbdir,
            "user %s" % RUN_USER,
            "listen 127.0.0.1:%d smtp" % self.smtp_port,
        ]
        if tls:
            cert = os.path.join(self.dir, "cert.pem")
            key = os.path.join(self.dir, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-days", "2", "-subj", "/CN=mx.example.test",
                            "-keyout", key, "-out", cert],
                           check=True, capture_output=True)
            lines += ["tls-cert %s" % cert, "tls-key %s" % key,
                      "listen 127.0.0.1:%d submission" % self.submission_port,
                      "listen 127.0.0.1:%d submissions" % self.smtps_port]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n" + extra_conf)
        self.proc = None
        self.log = None

    # ---- the command line tool ----
    def cli(self, *args, input=None, check=True):
        r = subprocess.run([SLUICE, "-c", self.conf] + list(args), input=input,
                           capture_output=True, text=isinstance(input, str) or input is None)
        if check and r.returncode != 0:
            raise AssertionError("sluice %s failed (%d): %s%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def add_domain(self, domain):
        self.cli("domain", "add", domain)

    def add_account(self, addr, password="correct horse battery"):
        self.cli("account", "add", addr, "--password-stdin", input=password + "\n")

    # ---- the daemon ----
    def start(self, wait=True):
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen([SLUICED, "-c", self.conf, "-F"], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            wait_for(self.banner_ok, what="sluiced to answer on port %d" % self.smtp_port)
        return self

    def banner_ok(self):
        if self.proc.poll() is not None:
            raise AssertionError("sluiced exited with %s:\n%s" % (self.proc.returncode,
                                                                  self.read_log()))
        try:
            with socket.create_connection(("127.0.0.1", self.smtp_port), timeout=5) as s:
                s.settimeout(5)
                return s.recv(512).startswith(b"220 ")
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None
        if self.log:
            self.log.close()
            self.log = None

    def kill(self):
        """SIGKILL the whole process group: a crash, nothing gets to clean up."""
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None
        if self.log:
            self.log.close()
            self.log = None

    def read_log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- results ----
    def maildir(self, addr):
        local, domain = addr.split("@")
        return os.path.join(self.mailboxes, domain, local)

    def messages(self, addr):
        """Contents (bytes) of the messages in the Maildir's new/ and cur/."""
        md = self.maildir(addr)
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(md, sub)
            if os.path.isdir(d):
                for name in sorted(os.listdir(d)):
                    with open(os.path.join(d, name), "rb") as f:
                        out.append(f.read())
        return out

    def wait_messages(self, addr, n):
        return wait_for(lambda: len(self.messages(addr)) >= n and self.messages(addr),
                        what="%d message(s) for %s" % (n, addr))

    def spool_files(self, sub):
        d = os.path.join(self.spool, sub)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def queue_empty(self):
        return not self.spool_files("incoming") and not self.spool_files("outgoing")
