"""The outbound SMTP client (src/deliver/smtp_client.c) against real
downstream servers on loopback, driven through tests/tools/smtp-send:
aiosmtpd with custom handlers, raw socket servers for faults and exact wire
bytes, and Postfix's smtp-sink. No timing assertions: timeouts are short
configured ones and only their outcome is checked."""
import asyncio
import os
import shutil
import socket
import ssl
import subprocess

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from sluice_harness import BUILD, free_port, wait_for
from smtp_peers import Auth, RawServer, mini_smtp, starttls_then_garbage, until_data

SMTP_SEND = os.path.join(BUILD, "tests", "tools", "smtp-send")
SMTP_SINK = "/usr/sbin/smtp-sink"

pytestmark = pytest.mark.skipif(not os.path.exists(SMTP_SEND),
                                reason="smtp-send not built")

BODY = (b"Subject: dots\n\n.leading dot\n..two dots\n.\nmiddle . dot\n"
        b"bare\rcr and crlf\r\nlast line without newline")
# what must be on the wire between DATA's 354 and the end (stuffed, CRLF)
WIRE = (b"Subject: dots\r\n\r\n..leading dot\r\n...two dots\r\n..\r\n"
        b"middle . dot\r\nbare\r\ncr and crlf\r\n"
        b"last line without newline\r\n.\r\n")
HEADERS = b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\n"


# ---- running the client ----

class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout.decode("utf-8", "replace")
        self.err = proc.stderr.decode("utf-8", "replace")
        self.rcpts = []     # (msg, addr, status, reply) in order
        for line in self.out.splitlines():
            if not line.startswith("msg="):
                continue
            head, _, reply = line.partition(" reply=")
            f = dict(kv.split("=", 1) for kv in head.split())
            self.rcpts.append((int(f["msg"]), f["to"].strip("<>"),
                               f["status"], reply))

    def status(self, addr, msg=1):
        return [r for r in self.rcpts if r[0] == msg and r[1] == addr][0][2:]

    def __repr__(self):
        return "rc=%d\n%s\n%s" % (self.rc, self.out, self.err)


@pytest.fixture
def files(tmp_path):
    data = tmp_path / "data"
    data.write_bytes(BODY)
    hdr = tmp_path / "headers"
    hdr.write_bytes(HEADERS)
    return {"data": str(data), "headers": str(hdr), "dir": tmp_path}


def send(port, files, *extra, rcpts=("b@example.test",), sender="a@example.org",
         timeout=5, headers=False):
    args = [SMTP_SEND, "--connect", "127.0.0.1:%d" % port, "--from", sender,
            "--data", files["data"], "--timeout", str(timeout)]
    for r in rcpts:
        args += ["--to", r]
    if headers:
        args += ["--headers", files["headers"]]
    args += list(extra)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1")
    proc = subprocess.run(args, capture_output=True, timeout=120, env=env)
    r = Result(proc)
    assert "ERROR: AddressSanitizer" not in r.err, r
    assert "runtime error" not in r.err, r
    return r


# ---- aiosmtpd servers ----

class Handler:
    """Answers per recipient/sender as configured; records what it got."""

    def __init__(self, rcpt_replies=None, mail_reply=None, data_sleep=0):
        self.rcpt_replies = rcpt_replies or {}
        self.mail_reply = mail_reply
        self.data_sleep = data_sleep
        self.envelopes = []
        self.mails = 0
        self.ehlos = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.mails += 1
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_sleep:
            await asyncio.sleep(self.data_sleep)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos),
                               envelope.original_content,
                               list(envelope.mail_options),
                               session.authenticated))
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def aiosmtp():
    """Factory: an aiosmtpd server on a free loopback port."""
    started = []

    def make(handler=None, **kw):
        handler = handler or Handler()
        port = free_port()
        ctl = Controller(handler, hostname="127.0.0.1", port=port,
                         server_hostname="downstream.test", **kw)
        ctl.start()
        started.append(ctl)
        return handler, port

    yield make
    for ctl in started:
        ctl.stop()


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("cert")
    key, crt = str(d / "key.pem"), str(d / "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    return {"ctx": ctx, "cert": crt}


# ---- raw servers (faults, exact bytes) ----

@pytest.fixture
def raw():
    made = []

    def make(script):
        s = RawServer(script)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


# ---- the downstream faults of issue 3 ----

def test_connection_refused(files):
    port = free_port()      # nothing listens there
    r = send(port, files)
    assert r.rc == 75, r
    status, reply = r.status("b@example.test")
    assert status == "temp" and "4.4.1" in reply and "refused" in reply, r


def test_drop_after_banner(raw, files):
    srv = raw(lambda srv, c, n: c.send("220 raw.test ESMTP"))
    r = send(srv.port, files)
    assert r.rc == 75, r
    assert r.status("b@example.test")[0] == "temp"
    assert "connection lost" in r.status("b@example.test")[1], r


def test_421_at_banner(raw, files):
    srv = raw(lambda srv, c, n: c.send("421 4.3.2 raw.test busy, try later"))
    r = send(srv.port, files)
    assert r.rc == 75, r
    status, reply = r.status("b@example.test")
    assert status == "temp" and reply.startswith("421 4.3.2 raw.test busy"), r


def test_timeout_mid_data(aiosmtp, files):
    h, port = aiosmtp(Handler(data_sleep=60))
    r = send(port, files, timeout=2)
    assert r.rc == 75, r
    status, reply = r.status("b@example.test")
    assert status == "temp" and "timeout" in reply and "end of data" in reply, r


def test_close_mid_data(raw, files):
    srv = raw(lambda srv, c, n: until_data(c))     # then closes mid-DATA
    r = send(srv.port, files)
    assert r.rc == 75, r
    assert r.status("b@example.test")[0] == "temp", r


def test_452_to_some_recipients(aiosmtp, files):
    h, port = aiosmtp(Handler(rcpt_replies={
        "full@example.test": "452 4.2.2 Mailbox full",
        "gone@example.test": "550 5.1.1 No such user"}))
    rc = ("b@example.test", "full@example.test", "c@example.test",
          "gone@example.test")
    r = send(port, files, rcpts=rc)
    assert r.status("b@example.test") == ("delivered", "250 2.0.0 Ok: queued")
    assert r.status("c@example.test")[0] == "delivered"
    assert r.status("full@example.test") == ("temp", "452 4.2.2 Mailbox full")
    assert r.status("gone@example.test") == ("perm", "550 5.1.1 No such user")
    assert r.rc == 75, r
    assert len(h.envelopes) == 1
    assert h.envelopes[0][1] == ["b@example.test", "c@example.test"]


def test_garbage_reply(raw, files):
    def script(srv, c, n):
        c.send("220 raw.test ESMTP")
        c.line()
        c.send("I am not an SMTP server \x1b[2J")
        c.line()
    srv = raw(script)
    r = send(srv.port, files)
    assert r.rc == 75, r
    status, reply = r.status("b@example.test")
    assert status == "temp" and "protocol error" in reply, r


def test_garbage_banner(raw, files):
    srv = raw(lambda srv, c, n: (c.send("HTTP/1.1 400 Bad Request"), c.line()))
    r = send(srv.port, files)
    assert r.rc == 75 and "malformed reply" in r.status("b@example.test")[1], r


def test_ten_megabyte_line(raw, files):
    def script(srv, c, n):
        c.send(b"220 " + b"x" * (10 << 20) + b"\r\n")
    srv = raw(script)
    r = send(srv.port, files)
    assert r.rc == 75, r
    status, reply = r.status("b@example.test")
    assert status == "temp" and "reply line too long" in reply, r


def test_starttls_fails_opportunistic_retries_in_clear(raw, files, cert):
    srv = raw(starttls_then_garbage)
    r = send(srv.port, files, "--tls", "opportunistic")
    assert "tls-failed" in r.out and "4.7.5 TLS handshake failed" in r.out, r
    assert r.rc == 0, r
    assert r.status("b@example.test")[0] == "delivered"
    assert srv.record["starttls"] == 1 and srv.conns == 2
    assert srv.record["data"] == [WIRE]


def test_starttls_fails_required_defers(raw, files, cert):
    srv = raw(starttls_then_garbage)
    r = send(srv.port, files, "--tls", "required", "--cafile", cert["cert"],
             "--name", "localhost")
    assert "tls-failed" not in r.out, r
    assert r.rc == 75, r
    status, reply = r.status("b@example.test")
    assert status == "temp" and "TLS handshake failed" in reply, r
    assert srv.conns == 1 and "data" not in srv.record


def test_required_tls_untrusted_certificate(aiosmtp, files, cert):
    h, port = aiosmtp(tls_context=cert["ctx"])
    r = send(port, files, "--tls", "required", "--name", "localhost")
    assert r.rc == 75, r
    assert "certificate" in r.status("b@example.test")[1], r
    assert h.envelopes == []


def test_required_tls_wrong_name(aiosmtp, files, cert):
    h, port = aiosmtp(tls_context=cert["ctx"])
    r = send(port, files, "--tls", "required", "--cafile", cert["cert"],
             "--name", "mx.elsewhere.test")
    assert r.rc == 75, r
    assert h.envelopes == []


def test_required_tls_not_offered(aiosmtp, files, cert):
    h, port = aiosmtp()
    r = send(port, files, "--tls", "required", "--cafile", cert["cert"])
    assert r.rc == 75, r
    assert "4.7.4 TLS required" in r.status("b@example.test")[1], r
    assert h.mails == 0


def test_opportunistic_tls_and_required_tls_verified(aiosmtp, files, cert):
    h, port = aiosmtp(tls_context=cert["ctx"])
    r = send(port, files, "--tls", "opportunistic")
    assert r.rc == 0 and " tls=1 " in r.out, r
    r = send(port, files, "--tls", "required", "--cafile", cert["cert"],
             "--name", "localhost")
    assert r.rc == 0 and " tls=1 " in r.out, r
    # an IP address as the expected name, checked against the IP SAN
    r = send(port, files, "--tls", "required", "--cafile", cert["cert"])
    assert r.rc == 0, r
    assert len(h.envelopes) == 3


# ---- protocol features ----

def test_pipelining_when_offered(raw, files):
    srv = raw(lambda srv, c, n: mini_smtp(srv, c, pipelining=True))
    rc = ("b@example.test", "c@example.test", "d@example.test")
    r = send(srv.port, files, rcpts=rc)
    assert r.rc == 0, r
    assert not srv.errors, srv.errors
    # MAIL, the RCPTs and DATA came before any reply: one batch
    assert srv.record["batches"] == [[
        "MAIL FROM:<a@example.org>", "RCPT TO:<b@example.test>",
        "RCPT TO:<c@example.test>", "RCPT TO:<d@example.test>", "DATA"]]


def test_no_pipelining_when_not_offered(raw, files):
    srv = raw(lambda srv, c, n: mini_smtp(srv, c))
    r = send(srv.port, files, rcpts=("b@example.test", "c@example.test"))
    assert r.rc == 0, r
    assert "sent_ahead" not in srv.record
    assert srv.record["cmds"] == ["MAIL FROM:<a@example.org>",
                                  "RCPT TO:<b@example.test>",
                                  "RCPT TO:<c@example.test>"]


def test_exact_wire_bytes(raw, files):
    """Dot-stuffing, CRLF, bare CR, no final newline: the raw DATA bytes."""
    srv = raw(lambda srv, c, n: mini_smtp(srv, c, pipelining=True))
    r = send(srv.port, files, headers=True)
    assert r.rc == 0, r
    assert srv.record["data"] == [HEADERS.replace(b"\n", b"\r\n") + WIRE]


def test_aiosmtpd_content_exact(aiosmtp, files):
    h, port = aiosmtp()
    r = send(port, files, headers=True)
    assert r.rc == 0, r
    content = h.envelopes[0][2]
    # aiosmtpd removes the stuffing and the terminator, keeps CRLF
    want = HEADERS.replace(b"\n", b"\r\n") + WIRE[:-3]
    want = b"\r\n".join(l[1:] if l.startswith(b".") else l
                        for l in want.split(b"\r\n"))
    assert content == want


def test_large_message_streamed(aiosmtp, files):
    big = b"".join(b"%06d .... line of a big message\n" % i
                   for i in range(200000))
    with open(files["data"], "wb") as f:
        f.write(big)
    h, port = aiosmtp()
    r = send(port, files)
    assert r.rc == 0, r
    assert h.envelopes[0][2] == big.replace(b"\n", b"\r\n")


def test_size_refused_before_sending(aiosmtp, files):
    h, port = aiosmtp(data_size_limit=50)
    r = send(port, files)
    assert r.rc == 65, r
    status, reply = r.status("b@example.test")
    assert status == "perm" and reply.startswith("5.3.4 "), r
    assert h.mails == 0


def test_size_parameter_sent(aiosmtp, files):
    h, port = aiosmtp()
    r = send(port, files, headers=True)
    assert r.rc == 0, r
    assert "SIZE=%d" % (len(BODY) + len(HEADERS)) in h.envelopes[0][3]


def test_smtputf8_refused_when_not_offered(aiosmtp, files):
    h, port = aiosmtp(enable_SMTPUTF8=False)   # the Controller's default is on
    r = send(port, files, sender="jörg@example.org")
    assert r.rc == 65, r
    status, reply = r.status("b@example.test")
    assert status == "perm" and reply.startswith("5.6.7 "), r
    assert h.mails == 0


def test_smtputf8_and_8bitmime_when_offered(aiosmtp, files):
    h, port = aiosmtp(enable_SMTPUTF8=True)
    r = send(port, files, "--8bitmime", sender="jörg@example.org",
             rcpts=("ünïcode@example.test",))
    assert r.rc == 0, r
    opts = h.envelopes[0][3]
    assert "SMTPUTF8" in opts and "BODY=8BITMIME" in opts
    assert h.envelopes[0][1] == ["ünïcode@example.test"]


def test_mail_refused_5xx(aiosmtp, files):
    h, port = aiosmtp(Handler(mail_reply="550 5.7.1 Sender blocked"))
    r = send(port, files, rcpts=("b@example.test", "c@example.test"))
    assert r.rc == 65, r
    assert r.status("b@example.test") == ("perm", "550 5.7.1 Sender blocked")
    assert r.status("c@example.test") == ("perm", "550 5.7.1 Sender blocked")


def test_mail_refused_pipelined_then_next_message(aiosmtp, raw, files):
    """A 4xx to MAIL under PIPELINING: the RCPT 503s do not hide it, and
    the connection goes on (RSET) with the next message."""
    def script(srv, c, n):
        c.send("220 raw.test ESMTP")
        c.line()
        c.send("250-raw.test")
        c.send("250 PIPELINING")
        mails = 0
        while True:
            line = c.line().upper()
            srv.record.setdefault("cmds", []).append(line)
            if line.startswith("MAIL"):
                mails += 1
                c.send("451 4.3.0 try later" if mails == 1 else "250 Ok")
            elif line.startswith("RCPT"):
                c.send("503 5.5.1 need MAIL" if mails == 1 else "250 Ok")
            elif line.startswith("DATA"):
                if mails == 1:
                    c.send("503 5.5.1 no valid recipients")
                else:
                    c.send("354 go")
                    c.data()
                    c.send("250 2.0.0 Ok")
            elif line.startswith("QUIT"):
                c.send("221 Bye")
                return
            else:
                c.send("250 Ok")
    srv = raw(script)
    r = send(srv.port, files, "--repeat", "2")
    assert r.status("b@example.test", 1) == ("temp", "451 4.3.0 try later"), r
    assert r.status("b@example.test", 2)[0] == "delivered", r
    assert "RSET" in srv.record["cmds"]
    assert r.rc == 75


def test_ehlo_refused_falls_back_to_helo(raw, files):
    def script(srv, c, n):
        c.send("220 raw.test SMTP")
        line = c.line()
        assert line.startswith("EHLO")
        c.send("502 5.5.1 what is EHLO")
        mini_smtp(srv, c, greet=False)
    srv = raw(script)
    r = send(srv.port, files)
    assert r.rc == 0, r
    assert srv.record["cmds"][0] == "HELO client.sluice.test"
    assert not any("SIZE=" in c for c in srv.record["cmds"])


def test_several_messages_one_connection(aiosmtp, files):
    h, port = aiosmtp()
    r = send(port, files, "--repeat", "4", rcpts=("b@example.test",
                                                 "c@example.test"))
    assert r.rc == 0, r
    assert len(h.envelopes) == 4 and h.ehlos == 1
    assert "conn status=ok nmsgs=4" in r.out


@pytest.mark.skipif(not os.path.exists(SMTP_SINK), reason="no smtp-sink")
def test_smtp_sink_pipelined_repeat(files):
    port = free_port()
    args = [SMTP_SINK, "-c", "127.0.0.1:%d" % port, "100"]
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
    sink = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def up():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_for(up, what="smtp-sink")
        r = send(port, files, "--repeat", "20",
                 rcpts=("b@example.test", "c@example.test"))
        assert r.rc == 0, r
        assert len(r.rcpts) == 40 and all(x[2] == "delivered" for x in r.rcpts)
        assert "conn status=ok nmsgs=20" in r.out
    finally:
        sink.terminate()
        sink.wait()


# ---- AUTH ----

def test_auth_plain_over_tls(aiosmtp, files, cert):
    auth = Auth()
    h, port = aiosmtp(tls_context=cert["ctx"], authenticator=auth)
    r = send(port, files, "--tls", "required", "--cafile", cert["cert"],
             "--name", "localhost", "--auth", "relayuser:s3cret pass")
    assert r.rc == 0, r
    assert auth.calls == ["PLAIN"]
    assert h.envelopes[0][4] is True
    assert "s3cret" not in r.err


def test_auth_login_over_tls(aiosmtp, files, cert):
    auth = Auth()
    h, port = aiosmtp(tls_context=cert["ctx"], authenticator=auth,
                      auth_exclude_mechanism=["PLAIN"])
    r = send(port, files, "--tls", "opportunistic", "--auth",
             "relayuser:s3cret pass", "-v")
    assert r.rc == 0, r
    assert auth.calls == ["LOGIN"]
    assert "s3cret" not in r.err and "czNjcmV0" not in r.err


def test_auth_failure_defers(aiosmtp, files, cert):
    auth = Auth()
    h, port = aiosmtp(tls_context=cert["ctx"], authenticator=auth)
    r = send(port, files, "--tls", "opportunistic", "--auth", "relayuser:wrong")
    assert r.rc == 75, r
    status, reply = r.status("b@example.test")
    assert status == "temp" and "535" in reply, r
    assert h.mails == 0


def test_auth_never_without_tls(aiosmtp, files):
    auth = Auth()
    h, port = aiosmtp(authenticator=auth, auth_require_tls=False)
    for tls in ("none", "opportunistic"):
        r = send(port, files, "--auth", "relayuser:s3cret pass", "--tls", tls)
        assert r.rc == 75, r
        assert "AUTH not attempted without TLS" in r.status("b@example.test")[1]
    assert auth.calls == [] and h.mails == 0
