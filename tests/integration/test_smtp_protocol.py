"""The normal SMTP protocol with real clients: verbs, extensions, recipient
policy, pipelining, chunking, dot-unstuffing, SMTPUTF8, 8BITMIME, swaks, curl."""
import smtplib
import subprocess

import pytest

from sluice_harness import RawSMTP, good_message, tag, wait_for

DEMO = "demo@example.test"


def msg_with(s, t, addr=DEMO):
    s.assert_intact([t])
    return [m for m in s.messages(addr) if t.encode() in m][0]


# ---- greeting and the simple verbs ----

def test_ehlo_keywords_without_tls(sluice):
    c = RawSMTP(sluice.smtp_port)
    assert c.banner[0] == 220 and c.banner[1].startswith("mx.example.test ESMTP")
    lines = c.ehlo("client.test")
    assert lines[0].startswith("mx.example.test")
    kw = set(lines[1:])
    assert {"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8",
            "CHUNKING", "SIZE 36700160"} <= kw
    assert not any(k.startswith("STARTTLS") for k in kw)
    c.expect(454, "4.7.0", "STARTTLS")


def test_ehlo_keywords_with_tls(make_sluice):
    s = make_sluice("max-message-size 1M\n", tls=True)
    for port in (s.smtp_port, s.submission_port):
        c = RawSMTP(port)
        kw = set(c.ehlo()[1:])
        assert {"PIPELINING", "SIZE 1048576", "8BITMIME", "ENHANCEDSTATUSCODES",
                "SMTPUTF8", "CHUNKING", "STARTTLS"} <= kw
    c = RawSMTP(s.smtps_port, tls=True)
    kw = set(c.ehlo()[1:])
    assert "STARTTLS" not in kw and "CHUNKING" in kw


def test_helo_has_no_extensions(sluice):
    c = RawSMTP(sluice.smtp_port)
    t = c.expect(250, None, "HELO old.client.test")
    assert t == "mx.example.test"
    t = tag()
    c.expect(250, "2.1.0", "MAIL FROM:<old@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(good_message(t) + b".\r\n")
    c.expect(250, "2.0.0")
    m = msg_with(sluice, t)
    assert b"Received: from old.client.test" in m
    assert b" with SMTP\n" in m


def test_rset_clears_the_transaction(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<first@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(250, "2.0.0", "RSET")
    c.expect(503, "5.5.1", "DATA")
    c.expect(503, "5.5.1", "RCPT TO:<demo@example.test>")
    # HELO state survives RSET; a new transaction works, with the new sender
    t = tag()
    c.expect(250, "2.1.0", "MAIL FROM:<second@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(good_message(t) + b".\r\n")
    c.expect(250, "2.0.0")
    m = msg_with(sluice, t)
    assert m.startswith(b"Return-Path: <second@client.test>\n")


def test_noop_vrfy_help_quit(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.expect(250, "2.0.0", "NOOP")
    c.ehlo()
    c.expect(250, "2.0.0", "NOOP anything")
    t = c.expect(252, "2.5.2", "VRFY demo@example.test")
    assert "demo" not in t                  # no user disclosure
    t2 = c.expect(252, "2.5.2", "VRFY nosuchuser@example.test")
    assert t == t2
    c.expect(501, "5.5.4", "VRFY")
    t = c.expect(214, "2.0.0", "HELP")
    assert "MAIL" in t and "RCPT" in t and "BDAT" in t
    c.expect(221, "2.0.0", "QUIT")
    assert c.closed()


def test_verbs_are_case_insensitive(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.expect(250, None, "ehlo client.test")
    c.expect(250, "2.1.0", "mail from:<lower@client.test>")
    c.expect(250, "2.1.5", "rcpt to:<DEMO@EXAMPLE.TEST>")
    c.expect(354, None, "data")
    t = tag()
    c.send(good_message(t) + b".\r\n")
    c.expect(250, "2.0.0")
    msg_with(sluice, t)


def test_commands_with_bare_lf_are_accepted(sluice):
    """P6: commands ending in a bare LF are commands."""
    c = RawSMTP(sluice.smtp_port)
    c.expect(250, None, b"EHLO lf.client.test\n")
    c.expect(250, "2.1.0", b"MAIL FROM:<lf@client.test>\n")
    c.expect(250, "2.1.5", b"RCPT TO:<demo@example.test>\n")
    c.expect(354, None, b"DATA\n")
    t = tag()
    c.send(good_message(t) + b".\r\n")
    c.expect(250, "2.0.0")
    msg_with(sluice, t)


# ---- recipient policy ----

def test_unknown_user(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test>")
    t = c.expect(550, "5.1.1", "RCPT TO:<nobody@example.test>")
    assert "unknown" in t
    c.expect(503, "5.5.1", "DATA")
    assert "unknown recipient from=<a@client.test> to=<nobody@example.test>" in \
        sluice.read_log()


def test_relay_denied(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test>")
    t = c.expect(554, "5.7.1", "RCPT TO:<someone@elsewhere.test>")
    assert "Relay access denied" in t
    # a local recipient in the same transaction still works
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    t = tag()
    c.send(good_message(t) + b".\r\n")
    c.expect(250, "2.0.0")
    msg_with(sluice, t)
    assert "relay denied from=<a@client.test> to=<someone@elsewhere.test>" in \
        sluice.read_log()


def test_relay_from_trusted_networks(make_sluice):
    s = make_sluice("trusted-networks 127.0.0.0/8\n")
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.ehlo("inside.client.test")
        c.mail("inside@client.test")
        code, _ = c.rcpt("someone@elsewhere.test")
        assert code == 250
        code, text = c.data(good_message(tag()))
        assert code == 250
    qid = text.decode().split()[-1]
    # outbound delivery is another issue: the message waits in outgoing/
    wait_for(lambda: s.spool_files("outgoing") and not s.spool_files("incoming"),
             what="the message in outgoing/")
    assert any(qid in f for f in s.spool_files("outgoing"))
    assert s.all_messages() == []


def test_postmaster_without_domain(sluice):
    """RFC 5321 4.5.1: <Postmaster> is accepted without a domain: the host
    name is always a local domain. Here there is no postmaster account nor
    alias: a clear refusal (550), not a relay denial (554)."""
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test>")
    code, text = c.cmd("RCPT TO:<Postmaster>")
    assert code == 550 and "5.1.1" in text, (code, text)


# ---- pipelining ----

def test_pipelining_replies_in_order(make_sluice):
    s = make_sluice()
    s.add_account("second@example.test")
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    t = tag()
    c.send(b"MAIL FROM:<pipe@client.test>\r\n"
           b"RCPT TO:<demo@example.test>\r\n"
           b"RCPT TO:<nobody@example.test>\r\n"
           b"RCPT TO:<x@elsewhere.test>\r\n"
           b"RCPT TO:<second@example.test>\r\n"
           b"DATA\r\n")
    c.expect(250, "2.1.0")
    c.expect(250, "2.1.5")
    c.expect(550, "5.1.1")
    c.expect(554, "5.7.1")
    c.expect(250, "2.1.5")
    c.expect(354)
    c.send(good_message(t) + b".\r\nNOOP\r\nQUIT\r\n")
    c.expect(250, "2.0.0")
    c.expect(250, "2.0.0")
    c.expect(221, "2.0.0")
    s.assert_intact([t])
    assert s.count_tag(t, "second@example.test") == 1


def test_pipelining_whole_session_in_one_write(sluice):
    tags = [tag(), tag()]
    c = RawSMTP(sluice.smtp_port)
    data = b"EHLO fast.client.test\r\n"
    for t in tags:
        data += (b"MAIL FROM:<fast@client.test>\r\nRCPT TO:<demo@example.test>\r\n"
                 b"DATA\r\n" + good_message(t) + b".\r\n")
    c.send(data + b"QUIT\r\n")
    c.expect(250)
    for _ in tags:
        c.expect(250, "2.1.0")
        c.expect(250, "2.1.5")
        c.expect(354)
        c.expect(250, "2.0.0")
    c.expect(221)
    sluice.assert_intact(tags)


# ---- CHUNKING ----

def test_bdat_chunks(sluice):
    t = tag()
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<chunky@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    parts = [b"Subject: " + t.encode() + b"\r\n\r\nfirst ",
             b"chunk\r\n.leading dot is not stuffing in BDAT\r\n",
             b"binary-ish: \x01\x7f\xff\xfe\r\nno final newline"]
    c.expect(250, "2.0.0", b"BDAT %d\r\n" % len(parts[0]) + parts[0])
    c.expect(250, "2.0.0", b"BDAT %d\r\n" % len(parts[1]) + parts[1])
    c.expect(250, "2.0.0", b"BDAT 0\r\n")
    c.expect(250, "2.0.0", b"BDAT %d LAST\r\n" % len(parts[2]) + parts[2])
    m = msg_with(sluice, t)
    assert m.endswith(b"Subject: " + t.encode() + b"\n\nfirst chunk\n"
                      b".leading dot is not stuffing in BDAT\n"
                      b"binary-ish: \x01\x7f\xff\xfe\nno final newline\n")


def test_bdat_pipelined(sluice):
    t = tag()
    body = good_message(t)
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.send(b"MAIL FROM:<p@client.test>\r\nRCPT TO:<demo@example.test>\r\n"
           b"BDAT 10\r\n" + body[:10] + b"BDAT %d LAST\r\n" % (len(body) - 10) +
           body[10:] + b"NOOP\r\n")
    for code, enh in ((250, "2.1.0"), (250, "2.1.5"), (250, "2.0.0"),
                      (250, "2.0.0"), (250, "2.0.0")):
        c.expect(code, enh)
    msg_with(sluice, t)


def test_bdat_without_mail_consumes_its_bytes(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    # the 20 bytes look like commands; they must be eaten as chunk data
    c.send(b"BDAT 20\r\nQUIT\r\nQUIT\r\nQUIT\r\nXX")
    c.expect(503, "5.5.1")
    c.expect(250, "2.0.0", "NOOP")
    # there was no transaction to fail: the next one is fine
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    t = tag()
    body = good_message(t)
    c.expect(250, "2.0.0", b"BDAT %d LAST\r\n" % len(body) + body)
    msg_with(sluice, t)
    assert not any(b"QUIT" in m for m in sluice.all_messages())


def test_bdat_without_rcpt_fails_the_transaction(sluice):
    """RFC 3030: after a failed chunk the client must RSET."""
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test>")
    c.expect(503, "5.5.1", b"BDAT 6 LAST\r\nQUIT\r\n")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(554, "5.5.0", b"BDAT 6 LAST\r\nQUIT\r\n")
    c.expect(250, "2.0.0", "RSET")
    t = tag()
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    body = good_message(t)
    c.expect(250, "2.0.0", b"BDAT %d LAST\r\n" % len(body) + body)
    msg_with(sluice, t)
    assert not any(b"QUIT" in m for m in sluice.all_messages())


def test_data_after_bdat_refused(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(250, "2.0.0", b"BDAT 4\r\nabcd")
    c.expect(503, "5.5.1", "DATA")
    c.expect(250, "2.0.0", "RSET")
    sluice.settle()
    assert not any(b"abcd" in m for m in sluice.all_messages())


def test_bdat_bad_syntax_closes(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(501, "5.5.4", "BDAT lots")
    c.expect(421)
    assert c.closed()
    sluice.settle()


# ---- content ----

def test_dot_unstuffing(sluice):
    t = tag()
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<dots@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + t.encode() + b"\r\n\r\n..\r\n...two\r\n.x\r\nend.\r\n.\r\n")
    c.expect(250, "2.0.0")
    m = msg_with(sluice, t)
    assert m.endswith(b"\n\n.\n..two\nx\nend.\n")


def test_empty_message(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<empty@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.expect(250, "2.0.0", ".")
    sluice.settle()
    assert any(m.startswith(b"Return-Path: <empty@client.test>\n")
               for m in sluice.messages(DEMO))


def test_smtputf8_sender(sluice):
    t = tag()
    sender = "jos\u00e9.\u00fc\u00f1\u00ee@cli\u00ebnt.test"
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    code, text = c.cmd("MAIL FROM:<%s>" % sender)
    assert (code, text[:5]) == (553, "5.6.7"), (code, text)
    c.expect(250, "2.1.0", "MAIL FROM:<%s> SMTPUTF8" % sender)
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(("Subject: %s caf\u00e9\r\nFrom: %s\r\n\r\nh\u00e9llo\r\n.\r\n"
            % (t, sender)).encode())
    c.expect(250, "2.0.0")
    m = msg_with(sluice, t)
    assert m.startswith(("Return-Path: <%s>\n" % sender).encode())
    assert ("h\u00e9llo\n").encode() in m


def test_smtputf8_with_smtplib(sluice):
    t = tag()
    with smtplib.SMTP("127.0.0.1", sluice.smtp_port) as c:
        c.ehlo("client.test")
        c.sendmail("\u00f1o\u00f1o@client.test", [DEMO],
                   ("Subject: %s\r\n\r\n\u2603\r\n" % t).encode(),
                   mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    m = msg_with(sluice, t)
    assert "Return-Path: <\u00f1o\u00f1o@client.test>".encode() in m
    assert "\u2603\n".encode() in m


def test_8bitmime_body(sluice):
    t = tag()
    body = "Gr\u00fc\u00dfe aus K\u00f6ln, \u65e5\u672c\u8a9e, \u00e9t\u00e9".encode()
    with smtplib.SMTP("127.0.0.1", sluice.smtp_port) as c:
        c.ehlo("client.test")
        c.sendmail("a@client.test", [DEMO],
                   b"Subject: " + t.encode() + b"\r\nContent-Type: text/plain; "
                   b"charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
                   body + b"\r\n", mail_options=["BODY=8BITMIME"])
    m = msg_with(sluice, t)
    assert m.endswith(body + b"\n")


def test_body_7bit_and_bad_body_param(sluice):
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(555, "5.5.4", "MAIL FROM:<a@client.test> BODY=BINARYMIME")
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test> BODY=7BIT SIZE=100")


def test_multiple_recipients_one_delivery_each(make_sluice):
    s = make_sluice()
    s.add_account("other@example.test")
    t = tag()
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.ehlo("client.test")
        assert not c.sendmail("a@client.test", [DEMO, "other@example.test"],
                              good_message(t))
    s.assert_intact([t])
    assert s.count_tag(t, "other@example.test") == 1
    m = [m for m in s.messages("other@example.test") if t.encode() in m][0]
    assert b"Delivered-To: other@example.test\n" in m


# ---- real clients ----

def test_swaks_delivers_with_pipelining(sluice):
    t = tag()
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % sluice.smtp_port,
                        "--to", DEMO, "--from", "swaks@client.test",
                        "--helo", "swaks.client.test", "--pipeline",
                        "--header", "Subject: " + t],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250 2.0.0 Ok: queued as" in r.stdout
    m = msg_with(sluice, t)
    assert b"Received: from swaks.client.test" in m


def test_swaks_unknown_user_fails(sluice):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % sluice.smtp_port,
                        "--to", "nobody@example.test", "--from", "s@client.test"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "550 5.1.1" in r.stdout


def test_curl_delivers(sluice, tmp_path):
    t = tag()
    f = tmp_path / "mail.txt"
    f.write_bytes(b"From: curl@client.test\r\nTo: demo@example.test\r\nSubject: " +
                  t.encode() + b"\r\n\r\nsent by curl\r\n.leading dot\r\n")
    r = subprocess.run(["curl", "-sS", "smtp://127.0.0.1:%d/curl.client.test" %
                        sluice.smtp_port, "--mail-from", "curl@client.test",
                        "--mail-rcpt", DEMO, "--upload-file", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    m = msg_with(sluice, t)
    assert m.endswith(b"\n\nsent by curl\n.leading dot\n")
    assert b"Received: from curl.client.test" in m


def test_curl_unknown_user_fails(sluice, tmp_path):
    f = tmp_path / "mail.txt"
    f.write_bytes(b"Subject: x\r\n\r\ny\r\n")
    r = subprocess.run(["curl", "-sS", "smtp://127.0.0.1:%d" % sluice.smtp_port,
                        "--mail-from", "curl@client.test",
                        "--mail-rcpt", "nobody@example.test", "--upload-file", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "550" in r.stderr
    sluice.settle()
    assert len(sluice.all_messages()) == 1      # the settle sentinel only
