"""Bad input gets a clear error and nothing is lost (issue 2).

Each test sends one kind of garbage, checks the exact reply code and
enhanced status code, then proves that mail accepted before it is delivered
exactly once, that the bad input produced no delivery, and that the server
still answers a new connection (Sluice.assert_intact / settle).
"""
import socket
import threading

import pytest

from sluice_harness import RawSMTP, WAIT, good_message, tag, wait_for

DEMO = "demo@example.test"


def open_tx(s, port=None, sender="sender@client.test", rcpts=(DEMO,)):
    """A session with EHLO, MAIL and RCPT done (on submission: STARTTLS
    and AUTH as the demo user first)."""
    c = RawSMTP(port or s.smtp_port)
    if port == getattr(s, "submission_port", None):
        c.submission()
    else:
        c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % sender)
    for r in rcpts:
        c.expect(250, "2.1.5", "RCPT TO:<%s>" % r)
    return c


def send_good_in(c, t):
    """A complete good transaction on an open session; returns the reply."""
    c.expect(250, "2.1.0", "MAIL FROM:<good@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<%s>" % DEMO)
    c.expect(354, None, "DATA")
    c.send(good_message(t) + b".\r\n")
    return c.expect(250, "2.0.0")


# ---- SMTP smuggling (P6) ----

SMUGGLE_ENDS = {
    "lf-dot-lf": b"\n.\n",
    "crlf-dot-lf": b"\r\n.\n",
    "lf-dot-crlf": b"\n.\r\n",
    "cr-dot-crlf": b"\r.\r\n",
    "crlf-dot-cr": b"\r\n.\r",
}


def smuggle_payload(fake_end, outer, inner, sender=b"outer@client.test"):
    return (b"From: " + sender + b"\r\nSubject: " + outer + b"\r\n\r\n"
            b"outer body" + fake_end +
            b"MAIL FROM:<smuggled@evil.test>\r\n"
            b"RCPT TO:<demo@example.test>\r\n"
            b"DATA\r\n"
            b"From: ceo@example.test\r\nSubject: " + inner + b"\r\n\r\n"
            b"smuggled body\r\n"
            b".\r\n")


@pytest.mark.parametrize("fake_end", list(SMUGGLE_ENDS.values()), ids=list(SMUGGLE_ENDS))
def test_smuggling_rejected_on_smtp(sluice, fake_end):
    before = sluice.send_good()
    outer, inner = tag(), tag()
    c = open_tx(sluice)
    c.expect(354, None, "DATA")
    c.send(smuggle_payload(fake_end, outer.encode(), inner.encode()))
    # one reply only, after the real CRLF.CRLF: the smuggled commands were data
    c.expect(550, "5.5.2")
    c.expect(250, "2.0.0", "NOOP")
    after = tag()
    send_good_in(c, after)
    c.expect(221, "2.0.0", "QUIT")
    c.close()
    sluice.assert_intact([before, after], [outer, inner, "smuggled body"])
    assert "rejected from=<sender@client.test>" in sluice.read_log()


@pytest.mark.parametrize("fake_end", list(SMUGGLE_ENDS.values()), ids=list(SMUGGLE_ENDS))
def test_smuggling_is_one_message_on_submission(make_sluice, fake_end):
    """Submission normalises bare line ends, but still only CRLF.CRLF ends
    the data: the would-be second message is body text of the first."""
    s = make_sluice(tls=True)
    before = s.send_good()
    outer, inner = tag(), tag()
    c = open_tx(s, s.submission_port, sender=DEMO)
    c.expect(354, None, "DATA")
    c.send(smuggle_payload(fake_end, outer.encode(), inner.encode(), DEMO.encode()))
    c.expect(250, "2.0.0")
    c.expect(221, "2.0.0", "QUIT")
    s.assert_intact([before, outer])
    m = [m for m in s.messages(DEMO) if outer.encode() in m]
    assert len(m) == 1
    assert b"MAIL FROM:<smuggled@evil.test>" in m[0] and inner.encode() in m[0]
    assert b"\r" not in m[0]
    # the inner message never became a message of its own
    assert sum(1 for x in s.all_messages() if inner.encode() in x) == 1
    assert "from=<smuggled@evil.test>" not in s.read_log()


def test_bare_lf_rejected_on_smtp(sluice):
    before = sluice.send_good()
    bad = tag()
    c = open_tx(sluice)
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + bad.encode() + b"\n\nunix line ends\n.\r\n" + b"\r\n.\r\n")
    t = c.expect(550, "5.5.2")
    assert "bare CR or LF" in t
    c.expect(250, "2.0.0", "RSET")
    sluice.assert_intact([before], [bad])


def test_bare_cr_rejected_on_smtp(sluice):
    before = sluice.send_good()
    bad = tag()
    c = open_tx(sluice)
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + bad.encode() + b"\r\n\r\nold mac\rline ends\r\n.\r\n")
    c.expect(550, "5.5.2")
    sluice.assert_intact([before], [bad])


def test_bare_lf_normalised_for_trusted_networks(make_sluice):
    s = make_sluice("trusted-networks 127.0.0.0/8\n")
    t = tag()
    c = open_tx(s)
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + t.encode() + b"\n\nline one\nline two\r\n.\r\n")
    c.expect(250, "2.0.0")
    s.assert_intact([t])
    m = [m for m in s.messages(DEMO) if t.encode() in m][0]
    assert m.endswith(b"\n\nline one\nline two\n")


# ---- over-long lines, NUL bytes ----

def test_command_line_of_2000_octets(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    before = tag()
    send_good_in(c, before)
    line = b"MAIL FROM:<" + b"x" * 1980 + b"@client.test>"
    assert len(line) + 2 >= 2000
    c.expect(500, "5.5.2", line + b"\r\n")
    # the rest of the long line was not taken as a command, the session goes on
    c.expect(250, "2.0.0", "NOOP")
    after = tag()
    send_good_in(c, after)
    c.expect(221, "2.0.0", "QUIT")
    sluice.assert_intact([before, after])


def test_command_line_of_2000_octets_sent_in_pieces(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    for _ in range(4):
        c.send(b"NOOP " + b"y" * 495)
    c.send(b"\r\nNOOP\r\n")
    c.expect(500, "5.5.2")
    c.expect(250, "2.0.0")
    before = tag()
    send_good_in(c, before)
    sluice.assert_intact([before])


def test_command_line_of_1000_octets_is_accepted(sluice):
    """The RFC 5321 limit itself (1000 octets with CRLF) is fine."""
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    line = b"NOOP " + b"z" * (1000 - 7)
    c.expect(250, "2.0.0", line + b"\r\n")


def test_data_line_of_1001_octets(sluice):
    before = sluice.send_good()
    bad = tag()
    c = open_tx(sluice)
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + bad.encode() + b"\r\n\r\n" + b"a" * 999 + b"\r\n.\r\n")
    t = c.expect(550, "5.6.0")
    assert "998" in t
    after = tag()
    send_good_in(c, after)
    sluice.assert_intact([before, after], [bad])


def test_data_line_of_1000_octets_is_accepted(sluice):
    t = tag()
    c = open_tx(sluice)
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + t.encode() + b"\r\n\r\n" + b"b" * 998 + b"\r\n.\r\n")
    c.expect(250, "2.0.0")
    sluice.assert_intact([t])
    m = [m for m in sluice.messages(DEMO) if t.encode() in m][0]
    assert m.endswith(b"\n\n" + b"b" * 998 + b"\n")


def test_nul_byte_in_command(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    before = tag()
    send_good_in(c, before)
    c.expect(500, "5.5.2", b"MAIL FROM:<nul\x00@client.test>\r\n")
    c.expect(500, "5.5.2", b"NOOP\x00\r\n")
    # no transaction was started by the NUL-bearing MAIL
    c.expect(503, "5.5.1", "RCPT TO:<demo@example.test>")
    after = tag()
    send_good_in(c, after)
    sluice.assert_intact([before, after])
    assert "from=<nul" not in sluice.read_log()


def test_nul_byte_in_data(sluice):
    before = sluice.send_good()
    bad = tag()
    c = open_tx(sluice)
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + bad.encode() + b"\r\n\r\nnul \x00 here\r\n.\r\n")
    t = c.expect(550, "5.6.0")
    assert "NUL" in t
    sluice.assert_intact([before], [bad])


# ---- sequence errors ----

def test_rcpt_before_mail(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(503, "5.5.1", "RCPT TO:<demo@example.test>")
    before = tag()
    send_good_in(c, before)
    sluice.assert_intact([before])


def test_data_without_rcpt(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(503, "5.5.1", "DATA")
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test>")
    c.expect(503, "5.5.1", "DATA")
    # still in the transaction: a recipient, then DATA works
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    t = tag()
    c.send(good_message(t) + b".\r\n")
    c.expect(250, "2.0.0")
    sluice.assert_intact([t])


def test_mail_before_helo(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.expect(503, "5.5.1", "MAIL FROM:<a@client.test>")
    c.expect(503, "5.5.1", "RCPT TO:<demo@example.test>")
    c.expect(503, "5.5.1", "DATA")
    c.ehlo()
    t = tag()
    send_good_in(c, t)
    sluice.assert_intact([t])


def test_nested_mail(sluice):
    c = open_tx(sluice)
    c.expect(503, "5.5.1", "MAIL FROM:<b@client.test>")


def test_101_recipients(make_sluice):
    s = make_sluice()
    users = ["u%03d@example.test" % i for i in range(101)]
    for u in users:
        s.add_account(u)
    before = s.send_good()
    t = tag()
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<bulk@client.test>")
    for u in users[:100]:
        c.expect(250, "2.1.5", "RCPT TO:<%s>" % u)
    c.expect(452, "4.5.3", "RCPT TO:<%s>" % users[100])
    c.expect(354, None, "DATA")
    c.send(good_message(t) + b".\r\n")
    c.expect(250, "2.0.0")
    c.expect(221, "2.0.0", "QUIT")
    s.assert_intact([before])
    for u in users[:100]:
        assert s.count_tag(t, u) == 1, u
    assert s.count_tag(t, users[100]) == 0


def test_recipients_over_the_limit_are_not_errors(make_sluice):
    """A pipelining client sends 130 RCPTs: the 30 refused with 452 4.5.3
    must not count towards max-errors (it sends them again later), so the
    transaction survives. The recipient repeated 100 times gets the message
    once (duplicate recipients are merged)."""
    s = make_sluice("max-errors 5\n")
    t = tag()
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<bulk@client.test>")
    for i in range(130):
        want = (250, "2.1.5") if i < 100 else (452, "4.5.3")
        c.expect(want[0], want[1], "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(good_message(t) + b".\r\n")
    c.expect(250, "2.0.0")
    # real errors still count: the 6th gets the session closed
    for i in range(5):
        c.expect(500, "5.5.1", "FROB")
    c.send(b"FROB\r\n")
    assert c.reply()[0] == 500
    assert c.reply()[0] == 421
    assert c.closed()
    s.wait_messages("demo@example.test", 1)
    wait_for(lambda: s.queue_empty(), what="the queue to empty")
    assert s.count_tag(t, "demo@example.test") == 1


# ---- size ----

def test_message_over_max_message_size(make_sluice):
    s = make_sluice("max-message-size 65536\n")
    c = RawSMTP(s.smtp_port)
    ehlo = c.ehlo()
    assert "SIZE 65536" in ehlo
    before = tag()
    send_good_in(c, before)
    bad = tag()
    c.expect(250, "2.1.0", "MAIL FROM:<big@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    body = (b"x" * 76 + b"\r\n") * 1000        # 78 KB
    c.send(b"Subject: " + bad.encode() + b"\r\n\r\n" + body + b".\r\n")
    c.expect(552, "5.3.4")
    after = tag()
    send_good_in(c, after)
    s.assert_intact([before, after], [bad])


def test_message_just_under_max_message_size(make_sluice):
    s = make_sluice("max-message-size 65536\n")
    t = tag()
    c = open_tx(s)
    c.expect(354, None, "DATA")
    head = b"Subject: " + t.encode() + b"\r\n\r\n"
    body = (b"y" * 62 + b"\r\n") * 1000        # 63 KB with LF line ends
    c.send(head + body + b".\r\n")
    c.expect(250, "2.0.0")
    s.assert_intact([t])


def test_declared_size_over_limit(make_sluice):
    s = make_sluice("max-message-size 65536\n")
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(552, "5.3.4", "MAIL FROM:<big@client.test> SIZE=65537")
    # no transaction started
    c.expect(503, "5.5.1", "RCPT TO:<demo@example.test>")
    c.expect(250, "2.1.0", "MAIL FROM:<ok@client.test> SIZE=1000")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    t = tag()
    c.send(good_message(t) + b".\r\n")
    c.expect(250, "2.0.0")
    s.assert_intact([t])


def test_bdat_over_max_message_size(make_sluice):
    s = make_sluice("max-message-size 65536\n")
    before = s.send_good()
    bad = tag()
    c = open_tx(s)
    chunk = b"Subject: " + bad.encode() + b"\r\n\r\n" + (b"z" * 78 + b"\r\n") * 500
    c.expect(250, "2.0.0", b"BDAT %d\r\n" % len(chunk) + chunk)
    c.expect(552, "5.3.4", b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    c.expect(250, "2.0.0", "NOOP")
    s.assert_intact([before], [bad])


# ---- addresses ----

LONG_LOCAL = "l" * 300
BAD_ADDRESSES = {
    "two-ats": ("<a@b@c>", "bad address syntax"),
    "source-route": ("<@route:a@b>", "source routes"),
    "no-close-bracket": ("<a@b", "bad address syntax"),
    "no-open-bracket": ("a@b>", "bad address syntax"),
    "300-char-local": ("<%s@example.test>" % LONG_LOCAL, "too long"),
    "empty-local": ("<@example.test>", "bad address syntax"),
    "no-brackets": ("a@example.test", "bad address syntax"),
    "space-inside": ("<a b@example.test>", "bad address syntax"),
}


@pytest.mark.parametrize("addr,why", list(BAD_ADDRESSES.values()), ids=list(BAD_ADDRESSES))
def test_malformed_addresses(sluice, addr, why):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    before = tag()
    send_good_in(c, before)
    t = c.expect(501, "5.1.7", "MAIL FROM:" + addr)
    assert "Sender address rejected" in t and why in t
    c.expect(503, "5.5.1", "RCPT TO:<demo@example.test>")   # no transaction
    c.expect(250, "2.1.0", "MAIL FROM:<ok@client.test>")
    t = c.expect(501, "5.1.3", "RCPT TO:" + addr)
    assert "Recipient address rejected" in t and why in t
    c.expect(503, "5.5.1", "DATA")                          # no recipient
    c.expect(250, "2.0.0", "RSET")
    after = tag()
    send_good_in(c, after)
    sluice.assert_intact([before, after])


def test_null_recipient_refused(sluice):
    c = open_tx(sluice, rcpts=())
    t = c.expect(501, "5.1.3", "RCPT TO:<>")
    assert "null path" in t


def test_missing_from_keyword(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(501, "5.5.4", "MAIL <a@client.test>")
    c.expect(501, "5.5.4", "MAIL FROM:<a@client.test>junk")
    c.expect(555, "5.5.4", "MAIL FROM:<a@client.test> NOSUCH=1")


@pytest.mark.parametrize("verb", ["HELO", "EHLO", "HELO ", "EHLO  "])
def test_helo_without_argument(sluice, verb):
    c = RawSMTP(sluice.smtp_port)
    t = c.expect(501, "5.5.4", verb)
    assert "hostname" in t
    # no HELO state was set
    c.expect(503, "5.5.1", "MAIL FROM:<a@client.test>")
    c.ehlo()
    t = tag()
    send_good_in(c, t)
    sluice.assert_intact([t])


# ---- clients that misbehave in time ----

def test_disconnect_in_the_middle_of_data(sluice):
    before = sluice.send_good()
    bad = tag()
    c = open_tx(sluice)
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + bad.encode() + b"\r\n\r\n" + b"half a message\r\n" * 5000)
    c.close()
    wait_for(lambda: sluice.read_log().count("disconnect from 127.0.0.1") >= 2,
             what="the disconnect log line")
    wait_for(lambda: not sluice.spool_busy(), what="the aborted data file to go")
    sluice.assert_intact([before], [bad])
    assert not sluice.spool_busy()


def test_silent_clients_time_out(make_sluice):
    """smtp-timeout 30s (the minimum): an idle client and one silent in the
    middle of DATA both get 421 4.4.2 and are disconnected; the partial
    message is not queued, the one accepted before it is delivered."""
    s = make_sluice("smtp-timeout 30s\n")
    idle = RawSMTP(s.smtp_port, timeout=WAIT + 60)
    c = RawSMTP(s.smtp_port, timeout=WAIT + 60)
    c.ehlo()
    before = tag()
    send_good_in(c, before)
    bad = tag()
    c.expect(250, "2.1.0", "MAIL FROM:<slow@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + bad.encode() + b"\r\n\r\nand then nothing")
    for conn in (idle, c):
        conn.expect(421, "4.4.2")
        assert conn.closed()
    assert s.read_log().count("timeout from 127.0.0.1") == 2
    s.assert_intact([before], [bad])
    assert not s.spool_busy()


# ---- abuse ----

def test_too_many_errors(make_sluice):
    s = make_sluice("max-errors 3\n")
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    before = tag()
    send_good_in(c, before)
    for _ in range(3):
        c.expect(500, "5.5.1", "BOGUS")
    c.expect(500, "5.5.1", "BOGUS")
    c.expect(421, "4.7.0")
    assert c.closed()
    s.assert_intact([before])


@pytest.mark.parametrize("bad", [
    "MAIL FROM:<a@b@c>",            # 501 address
    "HELO",                         # 501 syntax
    "MAIL FROM:<a@client.test> X=1",  # 555 parameter
])
def test_too_many_errors_of_any_kind(make_sluice, bad):
    """P5: persistent abuse is disconnected whatever the error reply."""
    s = make_sluice("max-errors 3\n")
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    codes = []
    for _ in range(4):
        c.send(bad + "\r\n")
    for _ in range(4):
        codes.append(c.reply()[0])
    assert all(code >= 500 for code in codes), codes
    c.expect(421, "4.7.0")
    assert c.closed()
    s.settle()


def test_unknown_command(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(500, "5.5.1", "FROBNICATE now")
    c.expect(500, "5.5.1", "MAIL1 FROM:<a@b>")
    c.expect(502, "5.5.1", "EXPN staff")
    c.expect(250, "2.0.0", "NOOP")
    t = tag()
    send_good_in(c, t)
    sluice.assert_intact([t])


@pytest.mark.parametrize("request_line", [
    b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
    b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    b"CONNECT mx.example.test:25 HTTP/1.1\r\n\r\n",
])
def test_http_request_is_hung_up(sluice, request_line):
    before = sluice.send_good()
    c = RawSMTP(sluice.smtp_port)
    c.send(request_line)
    c.expect(421, "4.7.0")
    assert c.closed()
    sluice.assert_intact([before])


def test_garbage_bytes(sluice):
    before = sluice.send_good()
    c = RawSMTP(sluice.smtp_port)
    c.send(bytes(range(1, 256)) * 3 + b"\r\n")
    code, _ = c.reply()
    assert code in (500, 421)
    c.close()
    sluice.assert_intact([before])


# ---- many clients ----

def test_200_connections_at_once(make_sluice):
    # one client address: its own limit (client-connections) is off here
    sluice = make_sluice("client-connections 0\n")
    before = sluice.send_good()
    conns = [RawSMTP(sluice.smtp_port, banner=False) for _ in range(200)]
    for c in conns:
        code, text = c.reply()
        assert code == 220, text
    tags = [tag() for _ in conns]
    errors = []

    def run(c, t):
        try:
            c.ehlo("c%s.client.test" % t)
            send_good_in(c, t)
            c.expect(221, "2.0.0", "QUIT")
            c.close()
        except Exception as e:     # reported below, in the main thread
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(c, t)) for c, t in zip(conns, tags)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(WAIT * 2)
    assert not errors, errors[:5]
    wait_for(lambda: len(sluice.messages(DEMO)) >= 201, what="201 deliveries")
    sluice.assert_intact([before] + tags)
    assert len(sluice.messages(DEMO)) == 202   # + the settle sentinel


def test_max_sessions(make_sluice):
    s = make_sluice("max-sessions 5\n")
    conns = [RawSMTP(s.smtp_port) for _ in range(5)]
    assert all(c.banner[0] == 220 for c in conns)
    extra = RawSMTP(s.smtp_port, banner=False)
    extra.expect(421, "4.3.2")
    assert extra.closed()
    # the admitted sessions work, and once one leaves a newcomer gets in
    t = tag()
    conns[0].ehlo()
    send_good_in(conns[0], t)
    conns[0].expect(221, "2.0.0", "QUIT")
    assert conns[0].closed()
    wait_for(lambda: RawSMTP(s.smtp_port, banner=False).reply()[0] == 220,
             what="a free session slot")
    for c in conns[1:]:
        c.close()
    s.assert_intact([t])
