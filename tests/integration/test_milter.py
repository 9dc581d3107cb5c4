"""Milters (docs/filtering.md): a real rspamd in milter proxy mode, and
fake milters in this file for the bad inputs (garbage, closing mid-body,
never answering, a 1 MB header) and the actions rspamd does not take by
default (a custom reply code, quarantine)."""
import os
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import tempfile
import threading

import pytest

import time

from sluice_harness import RawSMTP, free_port, tag, wait_for, WAIT

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
RSPAMD = shutil.which("rspamd")
SPAMD = shutil.which("spamd") or (os.path.exists("/usr/sbin/spamd") and "/usr/sbin/spamd")
SPAMASS = shutil.which("spamass-milter") or (
    os.path.exists("/usr/sbin/spamass-milter") and "/usr/sbin/spamass-milter")


def send(s, body, rcpt="demo@example.test"):
    """One message; (code, text) of the last reply (MAIL, RCPT or DATA)."""
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=WAIT) as c:
        c.ehlo("client.test")
        code, text = c.mail("sender@client.test")
        if code != 250:
            return code, text.decode()
        code, text = c.rcpt(rcpt)
        if code != 250:
            return code, text.decode()
        code, text = c.data(body)
        return code, text.decode()


def message(t, extra=""):
    return ("From: sender@client.test\r\nTo: demo@example.test\r\n"
            "Subject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n"
            "Hello, this is %s.\r\n%s" % (t, t, t, extra)).encode()


def delivered(s, t):
    return [m for m in s.messages("demo@example.test") if t.encode() in m]


# ---- a real rspamd ----

class Rspamd:
    """rspamd on loopback: Debian's rules, our worker sockets, logs and
    databases in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rspamd-test-", dir="/tmp")
        self.port = free_port()
        for d in ("override.d", "local.d", "db", "run", "log"):
            os.mkdir(os.path.join(self.dir, d))
        files = {
            "override.d/worker-proxy.inc":
                'milter = yes;\nbind_socket = "127.0.0.1:%d";\ntimeout = 60s;\n'
                'count = 1;\nupstream "local" {\n  default = yes;\n'
                '  self_scan = yes;\n}\n' % self.port,
            "override.d/worker-normal.inc":
                'bind_socket = "127.0.0.1:%d";\ncount = 1;\n' % free_port(),
            "override.d/worker-controller.inc":
                'bind_socket = "127.0.0.1:%d";\ncount = 1;\n' % free_port(),
            "override.d/logging.inc":
                'type = "file";\nfilename = "%s/log/rspamd.log";\n'
                'level = "info";\n' % self.dir,
            # no DNS off this machine: a closed loopback port fails fast
            "local.d/options.inc":
                'dns {\n  nameserver = ["127.0.0.1:9"];\n  timeout = 0.2s;\n'
                '  retransmits = 1;\n}\n',
            "local.d/milter_headers.conf":
                'use = ["x-spamd-result", "x-rspamd-queue-id", '
                '"x-rspamd-server"];\nskip_local = false;\n',
        }
        for name, text in files.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        args = [RSPAMD, "-f", "-c", "/etc/rspamd/rspamd.conf",
                "-p", os.path.join(self.dir, "run/rspamd.pid")]
        for var in ("LOCAL_CONFDIR=%s" % self.dir, "DBDIR=%s/db" % self.dir,
                    "RUNDIR=%s/run" % self.dir, "LOGDIR=%s/log" % self.dir):
            args += ["--var", var]
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "_rspamd:_rspamd", self.dir], check=True)
            args += ["-u", "_rspamd", "-g", "_rspamd"]
        self.out = open(os.path.join(self.dir, "stdout"), "wb")
        self.proc = subprocess.Popen(args, stdout=self.out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(self.ready, timeout=180, what="rspamd on port %d" % self.port)

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("rspamd exited: %s" % self.log())
        if "hyperscan" not in self.log() and "loaded" not in self.log():
            pass
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            return True
        except OSError:
            return False

    def log(self):
        try:
            with open(os.path.join(self.dir, "log/rspamd.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.out.close()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def rspamd():
    if RSPAMD is None:
        pytest.skip("rspamd is not installed (make deps)")
    r = Rspamd()
    try:
        yield r
    finally:
        r.cleanup()


def test_rspamd_gtube_rejected_clean_delivered(make_sluice, rspamd):
    s = make_sluice("milter rspamd inet:127.0.0.1:%d timeout 60s\n" % rspamd.port)
    t = tag()
    code, text = send(s, message(t, GTUBE + "\r\n"))
    assert code == 554, (code, text)   # rspamd 3.4: "5.7.1 Gtube pattern"
    assert "gtube" in text.lower() or "spam" in text.lower(), text
    t2 = tag()
    code, text = send(s, message(t2))
    assert code == 250, (code, text)
    qid = text.split()[-1]
    wait_for(lambda: delivered(s, t2), what="the clean message")
    m = delivered(s, t2)[0]
    assert b"\nX-Spamd-Result:" in m or m.startswith(b"X-Spamd-Result:"), m[:1500]
    assert b"X-Rspamd-Queue-Id: " + qid.encode() in m   # the "i" macro
    # our Received: comes first, rspamd's headers below it
    assert m.index(b"Received: from") < m.index(b"X-Spamd-Result:")
    s.settle()
    assert not delivered(s, t), "the GTUBE message was delivered"
    assert s.queue_empty()
    assert not s.sanitizer_reports()


def test_rspamd_stopped_fail_closed_and_open(make_sluice):
    """Stopping the milter mid-run: tempfail gives 451, accept delivers."""
    if RSPAMD is None:
        pytest.skip("rspamd is not installed (make deps)")
    r = Rspamd()
    try:
        closed = make_sluice("milter rspamd inet:127.0.0.1:%d timeout 60s "
                             "on-failure tempfail\n" % r.port)
        opened = make_sluice("milter rspamd inet:127.0.0.1:%d timeout 60s "
                             "on-failure accept\n" % r.port)
        t = tag()
        assert send(closed, message(t))[0] == 250
        wait_for(lambda: delivered(closed, t), what="delivery with rspamd up")
        r.stop()
        t1, t2 = tag(), tag()
        code, text = send(closed, message(t1))
        assert code == 451, (code, text)
        code, text = send(opened, message(t2))
        assert code == 250, (code, text)
        wait_for(lambda: delivered(opened, t2), what="fail-open delivery")
        assert b"X-Spamd-Result" not in delivered(opened, t2)[0]
        wait_for(closed.queue_empty, what="an empty queue")
        assert not delivered(closed, t1)
        for s in (closed, opened):
            assert s.log_search("milter=rspamd failed")
            assert not s.sanitizer_reports()
    finally:
        r.cleanup()


# ---- fake milters for bad input ----

def pkt(cmd, data=b""):
    return struct.pack(">I", len(data) + 1) + cmd + data


class FakeMilter:
    """A scripted milter: continues everything, and at the end of the body
    (or at the first body chunk) does what `mode` says."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.seen = []
        self.stop_ev = threading.Event()
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stop_ev.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def recv_exact(self, c, n):
        b = b""
        while len(b) < n:
            d = c.recv(n - len(b))
            if not d:
                raise EOFError
            b += d
        return b

    def session(self, c):
        try:
            while True:
                n = struct.unpack(">I", self.recv_exact(c, 4))[0]
                data = self.recv_exact(c, n)
                cmd, arg = data[:1], data[1:]
                self.seen.append((cmd, arg))
                out = self.answer(c, cmd, arg)
                if out is None:
                    continue
                if out == "close":
                    c.close()
                    return
                if out == "hang":
                    self.stop_ev.wait(60)
                    return
                c.sendall(out)
        except (EOFError, OSError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    # SMFIP_NR_*: no reply to CONNECT HELO MAIL RCPT DATA HEADER EOH BODY
    NR_ALL = 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x80 | 0x40000 | 0x80000

    def answer(self, c, cmd, arg):
        if cmd == b"O":
            proto = self.NR_ALL if self.mode == "noreply" else 0
            return pkt(b"O", struct.pack(">III", 6, 0x21, proto))
        if self.mode == "noreply" and cmd != b"E" and cmd != b"Q":
            return None
        if self.mode == "rcpt-reject" and cmd == b"R" and b"blocked" in arg:
            return pkt(b"y", b"550 5.7.1 Not this one\0")
        if self.mode == "mail-tempfail" and cmd == b"M":
            return pkt(b"t")
        if self.mode == "rcpts" and cmd == b"E":
            return (pkt(b"+", b"<other@example.test>\0") +
                    pkt(b"-", b"<demo@example.test>\0") +
                    pkt(b"e", b"<changed@client.test>\0") +
                    pkt(b"m", struct.pack(">I", 1) + b"Subject\0x\0") +
                    pkt(b"b", b"new body") + pkt(b"c"))
        if self.mode == "edits" and cmd == b"E":
            idx = lambda i: struct.pack(">I", i)
            return (pkt(b"m", idx(1) + b"X-Spam\0\0") +          # delete
                    pkt(b"m", idx(2) + b"X-Tag\0second\0") +    # change
                    pkt(b"m", idx(5) + b"X-Added\0" +            # add
                        b"v" * 3000 + b"\0") +
                    pkt(b"i", idx(1) + b"X-Inserted\0here\0") +
                    pkt(b"m", idx(1) + b"X-Nothing\0\0") +       # no-op
                    pkt(b"m", idx(1) + b"X-Bad\0a\nb\0") +       # refused
                    pkt(b"c"))
        if self.mode == "newbody" and cmd == b"E":
            # CRLF split across two packets; a bare CR stays
            return (pkt(b"b", b"line one\r") + pkt(b"b", b"\nline\rtwo\r\n") +
                    pkt(b"c"))
        if self.mode == "hugebody" and cmd == b"E":
            return (pkt(b"b", b"x" * 40000) + pkt(b"b", b"y" * 40000) +
                    pkt(b"c"))
        if self.mode == "shrink" and cmd == b"E":
            return (pkt(b"m", struct.pack(">I", 1) + b"X-Long\0\0") +
                    pkt(b"c"))
        if self.mode == "delall" and cmd == b"E":
            return pkt(b"-", b"demo@example.test\0") + pkt(b"c")
        if self.mode == "badrcpt" and cmd == b"E":
            return pkt(b"+", b"<not an address\0") + pkt(b"c")
        if self.mode == "slow" and cmd in (b"M", b"R", b"E"):
            time.sleep(0.2)   # not measured: only makes the client wait
        if cmd in (b"D", b"A"):
            return None
        if cmd == b"Q":
            return "close"
        if cmd == b"B" and self.mode == "close-body":
            return "close"
        if cmd != b"E":
            return pkt(b"c")
        m = self.mode
        if m == "garbage":
            return pkt(b"z", b"what?")
        if m == "hang":
            return "hang"
        if m == "bighdr":
            return pkt(b"h", b"X-Big\0" + b"a" * (1 << 20) + b"\0") + pkt(b"c")
        if m == "replycode":
            return pkt(b"y", b"554 5.7.1 Not today, \x01said the filter\0")
        if m == "quarantine":
            return (pkt(b"h", b"X-Fake-Milter\0looked at it\0") +
                    pkt(b"q", b"looks odd\0") + pkt(b"c"))
        if m == "addhdr":
            return (pkt(b"p") + pkt(b"h", b"X-Fake-Milter\0checked\0") +
                    pkt(b"h", b"X-Bad\0line1\nnot-folded\0") +
                    pkt(b"m", struct.pack(">I", 1) + b"Subject\0changed\0") +
                    pkt(b"a"))
        if m == "discard":
            return pkt(b"d")
        return pkt(b"c")

    def close(self):
        self.stop_ev.set()
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture
def fake_milter():
    made = []

    def make(mode):
        m = FakeMilter(mode)
        made.append(m)
        return m
    yield make
    for m in made:
        m.close()


def milter_line(m, opts=""):
    return "milter fake inet:127.0.0.1:%d %s\n" % (m.port, opts)


@pytest.mark.parametrize("mode,policy,want", [
    ("garbage", "tempfail", 451),
    ("garbage", "reject", 550),
    ("close-body", "accept", 250),
    ("close-body", "tempfail", 451),
    ("hang", "reject", 550),
    ("hang", "accept", 250),
    ("bighdr", "tempfail", 451),
])
def test_bad_milter(make_sluice, fake_milter, mode, policy, want):
    m = fake_milter(mode)
    s = make_sluice(milter_line(m, "timeout 1s on-failure %s" % policy))
    # a long body: several SMFIC_BODY chunks of at most 64 KB
    t = tag()
    code, text = send(s, message(t, ("x" * 70 + "\r\n") * 3000))
    assert code == want, (code, text)
    assert s.log_search("milter=fake failed")
    if mode == "bighdr":
        assert s.log_search("refused")
    if want == 250:
        wait_for(lambda: delivered(s, t), what="fail-open delivery")
        assert b"X-Big" not in delivered(s, t)[0]
    wait_for(s.queue_empty, what="an empty queue")
    if want != 250:
        assert not delivered(s, t)
    still_answers(s)
    assert not s.sanitizer_reports()


def still_answers(s):
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=WAIT) as c:
        assert c.ehlo("client.test")[0] == 250
        assert c.noop()[0] == 250


def test_milter_unreachable(make_sluice):
    s = make_sluice("milter gone inet:127.0.0.1:%d on-failure tempfail\n" % free_port())
    code, text = send(s, message(tag()))
    assert code == 451, (code, text)
    assert text.startswith("4.7.1")


def test_milter_reply_code(make_sluice, fake_milter):
    m = fake_milter("replycode")
    s = make_sluice(milter_line(m))
    t = tag()
    code, text = send(s, message(t))
    assert code == 554, (code, text)
    assert text == "5.7.1 Not today, ?said the filter"
    wait_for(s.queue_empty, what="an empty queue")
    assert not delivered(s, t)
    still_answers(s)


def test_milter_headers_and_what_it_was_told(make_sluice, fake_milter):
    m = fake_milter("addhdr")
    s = make_sluice(milter_line(m))
    t = tag()
    assert send(s, message(t, ("y" * 50 + "\r\n") * 2000))[0] == 250
    wait_for(lambda: delivered(s, t), what="delivery")
    msg = delivered(s, t)[0]
    assert b"\nX-Fake-Milter: checked\n" in msg.replace(b"\r\n", b"\n")
    assert b"X-Bad" not in msg and b"not-folded" not in msg
    # change header: applied in the spool file
    assert b"\nSubject: changed\n" in msg.replace(b"\r\n", b"\n")
    assert b"Subject: " + t.encode() not in msg
    assert s.log_search("header X-Bad refused")
    cmds = [c for c, _ in m.seen]
    for c in (b"O", b"C", b"H", b"M", b"R", b"T", b"L", b"N", b"B", b"E"):
        assert c in cmds, c
    args = dict((c, a) for c, a in m.seen if c in (b"H", b"M", b"R"))
    assert args[b"H"] == b"client.test\0"
    assert args[b"M"] == b"<sender@client.test>\0"
    assert args[b"R"] == b"<demo@example.test>\0"
    hdrs = [a for c, a in m.seen if c == b"L"]
    assert b"Subject\0" + t.encode() + b"\0" in hdrs
    body = b"".join(a for c, a in m.seen if c == b"B")
    assert body.startswith(b"Hello, this is ") and len(body) > 100000
    # as on the wire: CRLF line ends, never a bare LF
    assert body.count(b"\n") == body.count(b"\r\n") > 2000
    assert all(len(a) <= 65535 for c, a in m.seen if c == b"B")


def test_milter_quarantine_holds(make_sluice, fake_milter):
    m = fake_milter("quarantine")
    s = make_sluice(milter_line(m))
    t = tag()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=WAIT) as c:
        c.ehlo("client.test")
        c.mail("sender@client.test")
        c.rcpt("demo@example.test")
        code, text = c.data(message(t))
    assert code == 250, (code, text)
    qid = text.decode().split()[-1]
    wait_for(lambda: "(held)" in s.cli("queue", "list").stdout,
             what="the message held")
    assert qid in s.cli("queue", "list").stdout
    assert not delivered(s, t)
    s.cli("queue", "release", qid)
    wait_for(lambda: delivered(s, t), what="delivery after release")
    assert b"X-Fake-Milter: looked at it" in delivered(s, t)[0]


def test_milter_discard(make_sluice, fake_milter):
    m = fake_milter("discard")
    s = make_sluice(milter_line(m))
    t = tag()
    assert send(s, message(t))[0] == 250
    s.wait_log("discarded by milter")
    wait_for(s.queue_empty, what="an empty queue")
    assert not delivered(s, t)
    wait_for(lambda: not s.spool_files("data"), what="the data file removed")


def test_milter_config_errors(make_sluice):
    s = make_sluice(start=False)
    for line, msg in [
        ("milter x unix:/run/x.sock", "unix: sockets"),
        ("milter x inet:localhost:11332", "not inet:IP:PORT"),
        ("milter x inet:127.0.0.1:11332 timeout 0s", "timeout"),
        ("milter x inet:127.0.0.1:11332 on-failure maybe", "on-failure"),
        ("milter x inet:127.0.0.1:11332\nmilter x inet:127.0.0.1:11333",
         "defined twice"),
    ]:
        with open(s.conf, "a") as f:
            f.write(line + "\n")
        r = s.cli("check", check=False)
        assert r.returncode != 0 and msg in r.stderr + r.stdout, (line, r.stderr)
        with open(s.conf) as f:
            text = f.read()
        with open(s.conf, "w") as f:
            f.write(text.replace(line + "\n", ""))
    assert s.cli("check", check=False).returncode == 0


def test_milter_no_reply_steps(make_sluice, fake_milter):
    """A filter that asks for no replies (SMFIP_NR_*) but at the end gets
    the whole message without waits; a 1 MB body goes out in chunks."""
    m = fake_milter("noreply")
    s = make_sluice(milter_line(m))
    t = tag()
    code, text = send(s, message(t, ("z" * 98 + "\r\n") * 10000))
    assert code == 250, (code, text)
    body = b"".join(a for c, a in m.seen if c == b"B")
    assert len(body) > 1000000 and body.startswith(b"Hello, this is ")
    wait_for(lambda: delivered(s, t), what="delivery")


def test_milter_rcpt_and_mail_verdicts(make_sluice, fake_milter):
    m = fake_milter("rcpt-reject")
    s = make_sluice(milter_line(m))
    s.add_account("blocked@example.test")
    t = tag()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=WAIT) as c:
        c.ehlo("client.test")
        assert c.mail("sender@client.test")[0] == 250
        code, text = c.rcpt("blocked@example.test")
        assert (code, text) == (550, b"5.7.1 Not this one")
        assert c.rcpt("demo@example.test")[0] == 250
        assert c.data(message(t))[0] == 250
    wait_for(lambda: delivered(s, t), what="delivery")
    assert not s.messages("blocked@example.test")
    m2 = fake_milter("mail-tempfail")
    s2 = make_sluice(milter_line(m2))
    with smtplib.SMTP("127.0.0.1", s2.smtp_port, timeout=WAIT) as c:
        c.ehlo("client.test")
        code, text = c.mail("sender@client.test")
        assert code == 451, (code, text)
        # a refused MAIL leaves no transaction: RCPT needs MAIL first
        assert c.rcpt("demo@example.test")[0] == 503
        assert c.noop()[0] == 250


def test_milter_pipelining_in_order(make_sluice, fake_milter):
    """While a milter is asked nothing more is read: pipelined commands
    (RFC 2920) are answered in order, BDAT too."""
    m = fake_milter("slow")
    s = make_sluice(milter_line(m))
    t, t2 = tag(), tag()
    body = message(t)
    with RawSMTP(s.smtp_port) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<demo@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\nDATA\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 250
        assert c.reply()[0] == 550
        assert c.reply()[0] == 354
        c.send(body + b".\r\nNOOP\r\n")
        assert c.expect(250).startswith("2.0.0 Ok: queued as")
        c.expect(250)
        b2 = message(t2)
        c.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<demo@example.test>\r\n"
               b"BDAT %d LAST\r\n" % len(b2) + b2 + b"QUIT\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 250
        assert c.expect(250).startswith("2.0.0 Ok: queued as")
        c.expect(221)
    wait_for(lambda: delivered(s, t) and delivered(s, t2), what="both delivered")
    assert [c for c, _ in m.seen].count(b"E") == 2


def test_milter_many_and_huge_headers(make_sluice, fake_milter):
    """1,000 header fields each go to the milter; a 100 KB folded field
    is not sent (a packet must fit 64 KB); the message goes through."""
    m = fake_milter("continue")
    s = make_sluice(milter_line(m))
    t = tag()
    many = "".join("X-H%d: v%d\r\n" % (i, i) for i in range(1000))
    huge = "X-Huge: " + "\r\n ".join(["w" * 70] * 1400) + "\r\n"
    msg = ("Subject: %s\r\n" % t + many + huge + "\r\nbody\r\n").encode()
    code, text = send(s, msg)
    assert code == 250, (code, text)
    names = [a.split(b"\0")[0] for c, a in m.seen if c == b"L"]
    assert names.count(b"X-H999") == 1 and len(names) >= 1001
    assert b"X-Huge" not in names
    wait_for(lambda: delivered(s, t), what="delivery")


def test_milter_changes_headers(make_sluice, fake_milter):
    """change-header (change, delete, add past the last) and insert-header
    below the top rewrite the spool file before the commit; the body,
    moved up or down in 64 KB steps, arrives byte for byte."""
    body = "".join("line %06d of the body, with some text\r\n" % i
                   for i in range(12000))          # ~500 KB
    m = fake_milter("edits")
    s = make_sluice(milter_line(m))
    t = tag()
    msg = ("Subject: %s\r\nX-Spam: yes\r\nX-Tag: first\r\n"
           "X-Tag: will change\r\nX-Keep: 1\r\n\r\n" % t + body).encode()
    assert send(s, msg)[0] == 250
    wait_for(lambda: delivered(s, t), what="delivery")
    got = delivered(s, t)[0].replace(b"\r\n", b"\n")
    hdr, _, rest = got.partition(b"\n\n")
    assert b"X-Spam" not in hdr
    assert b"\nX-Tag: first\nX-Tag: second\n" in hdr
    assert hdr.endswith(b"X-Keep: 1\nX-Added: " + b"v" * 3000)
    lines = hdr.split(b"\n")
    i = lines.index(b"Subject: " + t.encode())
    assert lines[i + 1] == b"X-Inserted: here"
    assert b"X-Bad" not in got and b"X-Nothing" not in got
    assert rest == body.replace("\r\n", "\n").encode()
    s.wait_log("milter header changes applied: 4")
    # a change that makes the header section shorter
    m2 = fake_milter("shrink")
    s2 = make_sluice(milter_line(m2))
    t2 = tag()
    folded = "\r\n ".join(["z" * 70] * 300)        # ~21 KB
    msg = ("Subject: %s\r\nX-Long: %s\r\n\r\n" % (t2, folded) +
           body).encode()
    assert send(s2, msg)[0] == 250
    wait_for(lambda: delivered(s2, t2), what="delivery")
    got = delivered(s2, t2)[0].replace(b"\r\n", b"\n")
    hdr, _, rest = got.partition(b"\n\n")
    assert b"X-Long" not in hdr and b"zzzz" not in got
    assert rest == body.replace("\r\n", "\n").encode()


def test_milter_replaces_body(make_sluice, fake_milter):
    """replace body: CRLF from the milter becomes the spool's LF, even
    when split across packets; a new body over max-message-size is that
    milter's failure (on-failure tempfail: 451, nothing queued)."""
    m = fake_milter("newbody")
    s = make_sluice(milter_line(m))
    t = tag()
    assert send(s, message(t, "more\r\n" * 20000))[0] == 250
    wait_for(lambda: delivered(s, t), what="delivery")
    got = delivered(s, t)[0]
    hdr, _, body = got.replace(b"\r\n", b"\n").partition(b"\n\n")
    assert body == b"line one\nline\rtwo\n", body
    assert b"Subject: " + t.encode() in hdr
    m2 = fake_milter("hugebody")
    s2 = make_sluice(milter_line(m2) + "max-message-size 65536\n")
    assert send(s2, message(tag()))[0] == 451
    s2.wait_log("new body over max-message-size")
    wait_for(s2.queue_empty, what="an empty queue")


def test_milter_recipients_and_sender(make_sluice, fake_milter):
    """add/delete recipient, change sender, change header and replace
    body are applied."""
    m = fake_milter("rcpts")
    s = make_sluice(milter_line(m))
    s.add_account("other@example.test")
    t = tag()
    assert send(s, message(t))[0] == 250
    wait_for(lambda: [x for x in s.messages("other@example.test")
                      if t.encode() in x], what="delivery to the added recipient")
    got = [x for x in s.messages("other@example.test") if t.encode() in x][0]
    assert got.startswith(b"Return-Path: <changed@client.test>")
    g = got.replace(b"\r\n", b"\n")
    assert b"Hello, this is" not in g and g.endswith(b"\n\nnew body")
    assert b"\nSubject: x\n" in g
    wait_for(s.queue_empty, what="an empty queue")
    assert not delivered(s, t)
    s.wait_log("recipient <demo@example.test> removed")
    s.wait_log(r"milter=fake: body replaced \(8 bytes\)")
    # every recipient removed: the message is dropped, the client told 250
    m2 = fake_milter("delall")
    s2 = make_sluice(milter_line(m2))
    t2 = tag()
    assert send(s2, message(t2))[0] == 250
    s2.wait_log("discarded by milter")
    # a bad address from the filter is a failure (on-failure tempfail)
    m3 = fake_milter("badrcpt")
    s3 = make_sluice(milter_line(m3))
    assert send(s3, message(tag()))[0] == 451


@pytest.fixture(scope="module")
def spamassassin():
    """spamd (local tests only, no network) and spamass-milter on loopback,
    rejecting what SpamAssassin tags as spam (-r -1), body untouched (-m)."""
    if not SPAMD or not SPAMASS:
        pytest.skip("spamd or spamass-milter is not installed (make deps)")
    d = tempfile.mkdtemp(prefix="spamass-test-", dir="/tmp")
    spamd_port, milter_port = free_port(), free_port()
    log = open(os.path.join(d, "log"), "wb")
    args = [SPAMD, "-L", "-x", "--listen=127.0.0.1:%d" % spamd_port,
            "--syslog=stderr", "--pidfile=%s/spamd.pid" % d, "--max-children=2"]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]
    procs = [subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)]
    procs.append(subprocess.Popen(
        [SPAMASS, "-p", "inet:%d@127.0.0.1" % milter_port, "-m", "-r", "-1",
         "--", "-d", "127.0.0.1", "-p", str(spamd_port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def up(port):
        for p in procs:
            if p.poll() is not None:
                raise AssertionError("spamd/spamass-milter exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return True
        except OSError:
            return False
    try:
        wait_for(lambda: up(spamd_port) and up(milter_port), timeout=120,
                 what="spamd and spamass-milter")
        yield milter_port
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def test_spamassassin_gtube_rejected_clean_tagged(make_sluice, spamassassin):
    s = make_sluice("milter spamassassin inet:127.0.0.1:%d timeout 60s\n"
                    % spamassassin)
    t = tag()
    code, text = send(s, message(t, GTUBE + "\r\n"))
    assert code == 550 and "SpamAssassin" in text, (code, text)
    t2 = tag()
    assert send(s, message(t2))[0] == 250
    wait_for(lambda: delivered(s, t2), what="the clean message")
    m = delivered(s, t2)[0]
    assert b"X-Spam-Status: No" in m and b"X-Spam-Checker-Version:" in m
    wait_for(s.queue_empty, what="an empty queue")
    assert not delivered(s, t)
    assert not s.sanitizer_reports()
