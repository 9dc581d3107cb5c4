"""Start a real sluiced on random loopback ports with its own spool, database
and mailboxes, and give tests handy ways to talk to it and look at results.

Everything lives in a fresh directory under /tmp (world-traversable so the
unprivileged user sluiced drops to can reach it when the tests run as root).
"""
import os
import pwd
import re
import shutil
import signal
import base64 as _base64
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


def proc_stat(pid):
    """state, ppid and pgrp of a process from /proc, or None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = st[st.rindex(")") + 2:].split()
    return {"state": fields[0], "ppid": int(fields[1]), "pgrp": int(fields[2])}


def group_alive(pgid):
    """Is any (non-zombie) process of process group pgid still there?"""
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st["pgrp"] == pgid and st["state"] != "Z":
                return True
    return False


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
    def __init__(self, extra_conf="", tls=False, database=None):
        """database: a DSN instead of the SQLite file in self.dbdir."""
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
            "database %s" % (database or "sqlite:%s/sluice.db" % self.dbdir),
            "user %s" % RUN_USER,
            "listen 127.0.0.1:%d smtp" % self.smtp_port,
            # tests never ask a DNS server off this machine: by default a
            # closed loopback port (lookups fail at once: mail for other
            # domains stays deferred); tests with DNS set their own dnsmasq
            "resolver 127.0.0.1:9",
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
    def start(self, wait=True, args=()):
        """args: more sluiced options, e.g. ["-v"] for debug lines."""
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen([SLUICED, "-c", self.conf, "-F"] + list(args),
                                     stdout=self.log,
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
            wait_for(lambda: not group_alive(self.proc.pid),
                     what="process group %d to die" % self.proc.pid)
            self.proc = None
        if self.log:
            self.log.close()
            self.log = None

    def master_pid(self):
        with open(os.path.join(self.spool, "sluiced.pid")) as f:
            return int(f.read().strip())

    def children(self):
        """{role: pid} of the running master's live children, from the
        "started ROLE process (pid N)" log lines (the latest per role)."""
        master = self.proc.pid
        roles = {}
        for m in re.finditer(r"master\[%d\]: started (\w+) process \(pid (\d+)\)"
                             % master, self.read_log()):
            roles[m.group(1)] = int(m.group(2))
        return {r: pid for r, pid in roles.items() if proc_stat(pid)
                and proc_stat(pid)["ppid"] == master and proc_stat(pid)["state"] != "Z"}

    def read_log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_search(self, pattern):
        """The first match of a regular expression (multi-line) in the log."""
        return re.search(pattern, self.read_log(), re.M)

    def wait_log(self, pattern, what=None, timeout=WAIT):
        """Wait for a log line matching pattern; returns the match."""
        return wait_for(lambda: self.log_search(pattern), timeout=timeout,
                        what=what or "log line /%s/" % pattern)

    def sanitizer_reports(self):
        """Log lines of ASan/UBSan reports: a child that aborts on one is
        restarted by the master, so tests must look for them."""
        return [l for l in self.read_log().splitlines()
                if re.search(r"(Address|Leak|UndefinedBehavior)Sanitizer|runtime error:", l)]

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


# ---- helpers for protocol tests (raw clients, "garbage, then prove the
# server still answers") ----

import re as _re
import smtplib as _smtplib
import ssl as _ssl
import uuid as _uuid

REPLY_RE = _re.compile(rb"^(\d{3})([ -])(.*)$")


class RawSMTP:
    """A byte-exact SMTP client on a plain socket: send what you like,
    read replies (multi-line aware), see when the server hangs up."""

    def __init__(self, port, host="127.0.0.1", tls=False, timeout=WAIT,
                 banner=True, source=None):
        """source: the local address to connect from (another loopback
        address, e.g. 127.0.0.2, to be a different client)."""
        self.sock = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        if tls:
            self.sock = unverified_context().wrap_socket(self.sock)
        self.buf = b""
        self.banner = self.reply() if banner else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _readline(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection; pending %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def reply(self):
        """One complete reply: (code, text) with the lines joined by \\n."""
        lines = []
        while True:
            line = self._readline()
            m = REPLY_RE.match(line)
            if not m:
                raise AssertionError("malformed reply line %r" % line)
            lines.append(m.group(3).decode("utf-8", "replace"))
            if m.group(2) == b" ":
                return int(m.group(1)), "\n".join(lines)

    def cmd(self, line):
        self.send(line if isinstance(line, bytes) else line.encode() + b"\r\n")
        return self.reply()

    def expect(self, code, prefix=None, line=None):
        """Send line (if any), read one reply, check its code and the start
        of its text (the enhanced status code); returns the text."""
        c, t = self.cmd(line) if line is not None else self.reply()
        assert c == code, "%r: expected %d, got %d %s" % (line, code, c, t)
        if prefix is not None:
            assert t.startswith(prefix), "%r: expected %d %s..., got %d %s" % (
                line, code, prefix, c, t)
        return t

    def ehlo(self, name="client.test"):
        c, t = self.cmd("EHLO " + name)
        assert c == 250, (c, t)
        return t.split("\n")

    def login(self, user, password=None):
        """AUTH PLAIN with an initial response; returns (code, text)."""
        if password is None:
            password = DEMO_PASSWORD
        resp = _base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
        return self.cmd(b"AUTH PLAIN " + resp + b"\r\n")

    def submission(self, user="demo@example.test", password=None, name="client.test"):
        """On a submission port without TLS: EHLO, STARTTLS, EHLO, AUTH."""
        self.ehlo(name)
        self.expect(220, "2.0.0", "STARTTLS")
        self.starttls()
        self.ehlo(name)
        c, t = self.login(user, password)
        assert c == 235, (c, t)
        return self

    def closed(self):
        """True once the server has closed the connection (EOF or reset)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True

    def starttls(self):
        self.sock = unverified_context().wrap_socket(self.sock)


def unverified_context():
    ctx = _ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = _ssl.CERT_NONE
    return ctx


DEMO_PASSWORD = "correct horse battery"   # add_account's default


def tag():
    """A unique marker to find one message in a Maildir."""
    return "T" + _uuid.uuid4().hex[:16]


def good_message(t, extra=b""):
    return (b"From: good@client.test\r\nSubject: " + t.encode() +
            b"\r\n\r\nbody of " + t.encode() + b"\r\n" + extra)


def _sluice_send_good(self, port=None, rcpt="demo@example.test"):
    """Send one well-formed message with smtplib; returns its tag."""
    t = tag()
    with _smtplib.SMTP("127.0.0.1", port or self.smtp_port, timeout=WAIT) as c:
        c.ehlo("good.client.test")
        refused = c.sendmail("good@client.test", [rcpt], good_message(t))
        assert not refused
    return t


def _sluice_count_tag(self, t, addr="demo@example.test"):
    return sum(1 for m in self.messages(addr) if t.encode() in m)


def _sluice_all_messages(self):
    """Every message in every Maildir under mailboxes (new and cur)."""
    out = []
    for root, dirs, files in os.walk(self.mailboxes):
        if os.path.basename(root) in ("new", "cur"):
            for name in sorted(files):
                with open(os.path.join(root, name), "rb") as f:
                    out.append(f.read())
    return out


def _sluice_settle(self):
    """Prove the server still answers and has finished its work: send a
    fresh message on a new connection, wait for it, wait for an empty queue.
    Anything accepted before it has then been delivered too."""
    t = self.send_good()
    wait_for(lambda: self.count_tag(t) == 1, what="sentinel delivery")
    wait_for(self.queue_empty, what="empty queue")
    assert self.count_tag(t) == 1
    return t


def _sluice_assert_intact(self, good_tags, bad_markers=()):
    """Each good message delivered exactly once; no bad marker anywhere."""
    self.settle()
    for t in good_tags:
        assert self.count_tag(t) == 1, "message %s delivered %d times" % (
            t, self.count_tag(t))
    for b in bad_markers:
        if isinstance(b, str):
            b = b.encode()
        hits = [m for m in self.all_messages() if b in m]
        assert not hits, "bad input %r was delivered: %r" % (b, hits[:1])


def _sluice_spool_busy(self):
    """Spool directories that hold message files (should be none at rest)."""
    return {d: self.spool_files(d) for d in ("incoming", "outgoing", "data", "tmp")
            if self.spool_files(d)}


Sluice.send_good = _sluice_send_good
Sluice.count_tag = _sluice_count_tag
Sluice.all_messages = _sluice_all_messages
Sluice.settle = _sluice_settle
Sluice.assert_intact = _sluice_assert_intact
Sluice.spool_busy = _sluice_spool_busy
