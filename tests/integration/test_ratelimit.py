"""Connection policy (issue 8, part 4): concurrent connections and messages
per client, messages per authenticated user, the pregreet wait, DNSBL
lookups. A second client is simulated by connecting from 127.0.0.2 (on
loopback); the harness's own client (settle) stays on 127.0.0.1.

No test asserts a duration: limits are counted, the pregreet client
writes at once (long before any wait could end), the polite one waits for
the banner whatever it takes."""
import signal
import subprocess

import pytest
from dns_harness import RCODE_SERVFAIL, DNSMasq, StubDNS
from sluice_harness import (SLUICE, WAIT, RawSMTP, Sluice, good_message,
                            tag, wait_for)

DEMO = "demo@example.test"
OTHER = "127.0.0.2"


def send(c, t, frm="good@client.test", rcpt=DEMO):
    """One transaction on an open RawSMTP after EHLO; the final reply."""
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % frm)
    c.expect(250, "2.1.5", "RCPT TO:<%s>" % rcpt)
    c.expect(354, None, "DATA")
    c.send(good_message(t).replace(b"From: good@client.test",
                                   b"From: " + frm.encode()) + b".\r\n")
    return c.reply()


def intact(s, good, bad_markers=()):
    """Everything accepted delivered once, nothing refused delivered, and
    no sanitizer report (a child that aborts is restarted unseen)."""
    s.assert_intact(good, bad_markers)
    assert s.sanitizer_reports() == []


def send_ok(c, t, **kw):
    code, text = send(c, t, **kw)
    assert code == 250, (code, text)
    return t


# ---- connections per client ----

def test_client_connections(make_sluice):
    s = make_sluice("client-connections 2\n")
    a = RawSMTP(s.smtp_port, source=OTHER)
    b = RawSMTP(s.smtp_port, source=OTHER)
    assert a.banner[0] == 220 and b.banner[0] == 220
    c = RawSMTP(s.smtp_port, source=OTHER)
    assert c.banner[0] == 421 and c.banner[1].startswith("4.7.0"), c.banner
    assert "Too many connections from your address" in c.banner[1]
    assert c.closed()
    s.wait_log(r"too many connections from 127\.0\.0\.2")
    # another client is not affected, and the ones in are served
    good = [s.send_good()]
    a.ehlo()
    good.append(send_ok(a, tag()))
    # one leaves: there is room again (once the server saw it go)
    b.cmd("QUIT")
    b.close()

    def room():
        d = RawSMTP(s.smtp_port, source=OTHER)
        ok = d.banner[0] == 220
        if ok:
            d.ehlo()
            good.append(send_ok(d, tag()))
        d.close()
        return ok
    wait_for(room, what="a free connection slot")
    a.close()
    c.close()
    intact(s, good)


def test_client_connections_exempt_trusted(make_sluice):
    s = make_sluice("client-connections 1\ntrusted-networks %s\n" % OTHER)
    conns = [RawSMTP(s.smtp_port, source=OTHER) for _ in range(4)]
    assert all(c.banner[0] == 220 for c in conns)
    conns[3].ehlo()
    good = [send_ok(conns[3], tag())]
    for c in conns:
        c.close()
    intact(s, good)


# ---- messages per client ----

def test_client_messages_per_minute(make_sluice):
    s = make_sluice("client-messages-per-minute 3\n")
    c = RawSMTP(s.smtp_port, source=OTHER)
    c.ehlo()
    good = [send_ok(c, tag()) for _ in range(3)]
    # over the limit; the window slides, so at most one more can slip in
    # if a minute boundary passed just now
    refused = None
    for _ in range(3):
        code, text = c.cmd("MAIL FROM:<good@client.test>")
        if code == 451:
            refused = text
            break
        assert code == 250, (code, text)
        c.expect(250, "2.1.5", "RCPT TO:<%s>" % DEMO)
        c.expect(354, None, "DATA")
        t = tag()
        c.send(good_message(t) + b".\r\n")
        c.expect(250, "2.0.0")
        good.append(t)
    assert refused is not None and refused.startswith("4.7.1"), refused
    assert "Too many messages, slow down" in refused
    # a new connection from the same client is counted with it
    d = RawSMTP(s.smtp_port, source=OTHER)
    d.ehlo()
    d.expect(451, "4.7.1", "MAIL FROM:<good@client.test>")
    s.wait_log(r"client 127\.0\.0\.2 over its message rate")
    c.close()
    d.close()
    # 127.0.0.1 is another client
    intact(s, good)


def test_client_message_limit_repeated_disconnects(make_sluice):
    """A client that keeps trying gets 451s, then 421 (max-errors)."""
    s = make_sluice("client-messages-per-minute 1\nmax-errors 3\n")
    c = RawSMTP(s.smtp_port, source=OTHER)
    c.ehlo()
    good = []
    code, _ = c.cmd("MAIL FROM:<good@client.test>")
    if code == 250:
        c.expect(250, "2.1.5", "RCPT TO:<%s>" % DEMO)
        c.expect(354, None, "DATA")
        t = tag()
        c.send(good_message(t) + b".\r\n")
        c.expect(250, "2.0.0")
        good.append(t)
    codes = []
    for _ in range(6):
        try:
            codes.append(c.cmd("MAIL FROM:<good@client.test>")[0])
        except (EOFError, ConnectionResetError, BrokenPipeError):
            break
        if codes[-1] == 421:
            break
    assert 451 in codes and codes[-1] == 421, codes
    assert c.closed()
    c.close()
    intact(s, good)


def test_client_messages_exempt(make_sluice):
    """trusted-networks and the local (sendmail) listener are not limited."""
    s = make_sluice("client-messages-per-minute 1\ntrusted-networks %s\n"
                    % OTHER)
    c = RawSMTP(s.smtp_port, source=OTHER)
    c.ehlo()
    good = [send_ok(c, tag()) for _ in range(4)]
    c.close()
    for _ in range(3):
        t = tag()
        r = subprocess.run([SLUICE, "-c", s.conf, "sendmail", DEMO],
                           input=good_message(t), capture_output=True,
                           timeout=WAIT)
        assert r.returncode == 0, r.stderr
        good.append(t)
    intact(s, good)


# ---- messages per authenticated user ----

def test_user_messages_per_hour(make_sluice):
    # the client limit does not apply to logged-in sessions
    s = make_sluice("user-messages-per-hour 2\nclient-messages-per-minute 1\n"
                    "auth-failure-delay 0\n", tls=True)
    c = RawSMTP(s.submission_port).submission()
    good = [send_ok(c, tag(), frm=DEMO) for _ in range(2)]
    c.expect(451, "4.7.1", "MAIL FROM:<%s>" % DEMO)
    # counted per user, not per connection
    d = RawSMTP(s.submission_port).submission()
    t = d.expect(451, "4.7.1", "MAIL FROM:<%s>" % DEMO)
    assert "user sending limit" in t
    s.wait_log(r"user=demo@example\.test over its sending limit")
    c.close()
    d.close()
    intact(s, good)


# ---- pregreet ----

def test_pregreet(make_sluice):
    # 127.0.0.1 trusted: the harness's own client is not delayed
    s = make_sluice("pregreet-wait 2s\ntrusted-networks 127.0.0.1\n",
                    tls=True)
    # a client that talks first is refused and disconnected
    c = RawSMTP(s.smtp_port, source=OTHER, banner=False)
    c.send("EHLO hasty.test\r\nMAIL FROM:<spam@hasty.test>\r\n")
    code, text = c.reply()
    assert code == 554 and text.startswith("5.7.1"), (code, text)
    assert "talked before the greeting" in text
    assert c.closed()
    s.wait_log(r"pregreet from 127\.0\.0\.2")
    # a polite one waits for the banner and is served
    p = RawSMTP(s.smtp_port, source=OTHER)
    assert p.banner[0] == 220, p.banner
    p.ehlo()
    good = [send_ok(p, tag())]
    # submission listeners do not wait: a client may talk at once
    q = RawSMTP(s.submission_port, source=OTHER, banner=False)
    q.send("EHLO eager.test\r\n")
    assert q.reply()[0] == 220
    assert q.reply()[0] == 250
    for x in (c, p, q):
        x.close()
    intact(s, good, bad_markers=[b"spam@hasty.test"])


def test_pregreet_hangup(make_sluice):
    """A client that leaves during the wait costs nothing."""
    s = make_sluice("pregreet-wait 1s\ntrusted-networks 127.0.0.1\n")
    for _ in range(5):
        RawSMTP(s.smtp_port, source=OTHER, banner=False).close()
    p = RawSMTP(s.smtp_port, source=OTHER)
    assert p.banner[0] == 220
    p.close()
    intact(s, [])


# ---- DNSBL ----

@pytest.fixture
def dnsbl():
    with DNSMasq(["--host-record=2.0.0.127.bl.test,127.0.0.2",
                  "--host-record=2.0.0.127.tag.test,127.0.0.3",
                  "--host-record=2.0.0.127.err.test,127.255.255.254"]) as d:
        yield d


def test_dnsbl_reject(make_sluice, dnsbl):
    s = make_sluice("resolver %s\ndnsbl bl.test reject\n" % dnsbl.server)
    c = RawSMTP(s.smtp_port, source=OTHER)
    assert c.banner[0] == 220
    c.ehlo()
    t = c.expect(554, "5.7.1", "MAIL FROM:<spam@listed.test>")
    assert t == "5.7.1 Service unavailable; client [127.0.0.2] listed by bl.test"
    assert c.closed()
    s.wait_log(r"dnsbl client=127\.0\.0\.2 listed by bl\.test action=reject")
    # 127.0.0.1 is not listed (NXDOMAIN): its mail flows
    good = [s.send_good()]
    c.close()
    intact(s, good, bad_markers=[b"spam@listed.test"])


def test_dnsbl_tag(make_sluice, dnsbl):
    s = make_sluice("resolver %s\ndnsbl tag.test tag\ndnsbl err.test\n"
                    % dnsbl.server)
    c = RawSMTP(s.smtp_port, source=OTHER)
    c.ehlo()
    tagged = send_ok(c, tag())
    c.close()
    clean = s.send_good()
    intact(s, [tagged, clean])
    (m,) = [m for m in s.messages(DEMO) if tagged.encode() in m]
    assert b"\nX-Sluice-DNSBL: tag.test\r\n" in m
    (m,) = [m for m in s.messages(DEMO) if clean.encode() in m]
    assert b"X-Sluice-DNSBL" not in m
    # 127.255.255.x is a list's error code, not a listing
    s.wait_log(r"dnsbl err\.test answered with no listing code")


def test_dnsbl_dns_failure_is_not_a_reject(make_sluice):
    """P3: SERVFAIL (or a timeout) means not listed, logged."""
    with StubDNS(RCODE_SERVFAIL) as stub:
        s = make_sluice("resolver %s\ndnsbl bl.test reject\n" % stub.server)
        c = RawSMTP(s.smtp_port, source=OTHER)
        c.ehlo()
        good = [send_ok(c, tag())]
        c.close()
        s.wait_log(r"dnsbl bl\.test lookup failed")
        intact(s, good)


def test_dnsbl_exempt(make_sluice, dnsbl):
    """trusted-networks and submission listeners are not looked up."""
    s = make_sluice("resolver %s\ndnsbl bl.test\ntrusted-networks %s\n"
                    % (dnsbl.server, OTHER))
    c = RawSMTP(s.smtp_port, source=OTHER)
    c.ehlo()
    good = [send_ok(c, tag())]
    c.close()
    intact(s, good)
    assert not s.log_search(r"dnsbl client=")


def test_dnsbl_client_gone_while_looking_up(make_sluice):
    """The answer comes after the session ended: nothing breaks."""
    with StubDNS(None) as stub:     # never answers
        s = make_sluice("resolver %s\ndnsbl bl.test\n" % stub.server)
        for _ in range(3):
            c = RawSMTP(s.smtp_port, source=OTHER)
            c.send("EHLO x.test\r\nMAIL FROM:<a@x.test>\r\n")
            c.close()
        wait_for(lambda: len(stub.queries) >= 3, what="the lookups")
        intact(s, [])


# ---- configuration ----

@pytest.mark.parametrize("line,msg", [
    ("dnsbl", "dnsbl: missing value"),
    ("dnsbl bl.test block", "dnsbl: ZONE [reject|tag]"),
    ("dnsbl bl..test", "not a zone name"),
    ("dnsbl bl.test.", "not a zone name"),
    ("dnsbl %s.test" % ("a" * 200), "not a zone name"),
    ("dnsbl bl.test\n" * 9, "at most 8 zones"),
    ("pregreet-wait 2h", "out of range"),
    ("pregreet-wait soon", "invalid duration"),
    ("client-connections many", "invalid number"),
    ("client-messages-per-minute -1", "invalid number"),
    ("user-messages-per-hour 99999999", "out of range"),
])
def test_config_errors(line, msg):
    s = Sluice(extra_conf=line + "\n")
    try:
        r = s.cli("check", check=False)
        assert r.returncode != 0
        assert "sluice.conf:" in r.stderr and msg in r.stderr, r.stderr
    finally:
        s.cleanup()


def test_config_dump():
    s = Sluice(extra_conf="dnsbl bl.test\ndnsbl tag.test tag\n"
               "client-connections 5\npregreet-wait 3s\n")
    try:
        r = s.cli("check", "--dump", check=False)
        for want in ("dnsbl bl.test reject", "dnsbl tag.test tag",
                     "client-connections 5", "pregreet-wait 3s"):
            assert want in r.stdout, r.stdout + r.stderr
    finally:
        s.cleanup()


def test_dnsbl_added_on_reload(make_sluice, dnsbl):
    """SIGHUP: a dnsbl line added to the config applies to new sessions."""
    s = make_sluice("resolver %s\n" % dnsbl.server)
    c = RawSMTP(s.smtp_port, source=OTHER)
    c.ehlo()
    good = [send_ok(c, tag())]
    c.close()
    with open(s.conf, "a") as f:
        f.write("dnsbl bl.test reject\n")
    before = s.read_log().count("configuration reloaded")
    s.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: s.read_log().count("configuration reloaded") > before,
             what="the smtp process to reload")
    c = RawSMTP(s.smtp_port, source=OTHER)
    c.ehlo()
    c.expect(554, "5.7.1", "MAIL FROM:<a@listed.test>")
    c.close()
    intact(s, good)
