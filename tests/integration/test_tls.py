"""TLS on the submission listeners: STARTTLS (587-style) and implicit TLS
(465-style), with Python's ssl, smtplib, swaks and openssl s_client."""
import re
import smtplib
import ssl
import subprocess

import pytest

from sluice_harness import (DEMO_PASSWORD, RawSMTP, good_message, tag,
                            unverified_context)

DEMO = "demo@example.test"


def own_message(t):
    """A message the demo user may submit: From: is its own address."""
    return good_message(t).replace(b"From: good@client.test", b"From: " + DEMO.encode())


@pytest.fixture
def tls_sluice(make_sluice):
    return make_sluice(tls=True)


def delivered(s, t):
    s.assert_intact([t])
    return [m for m in s.messages(DEMO) if t.encode() in m][0]


def assert_esmtps(m):
    hdr = m.split(b"\n\n", 1)[0].decode()
    assert re.search(r"with ESMTPS \(TLSv1\.[23] ", hdr) or \
        re.search(r"with ESMTPS\s+\(TLSv1\.[23]", hdr) or \
        re.search(r"with ESMTPS.*TLSv1\.[23]", hdr, re.S), hdr


def test_starttls_with_smtplib(tls_sluice):
    s = tls_sluice
    t = tag()
    with smtplib.SMTP("127.0.0.1", s.submission_port) as c:
        c.ehlo("tls.client.test")
        assert c.has_extn("starttls")
        code, _ = c.starttls(context=unverified_context())
        assert code == 220
        c.ehlo("tls.client.test")
        assert not c.has_extn("starttls")
        assert isinstance(c.sock, ssl.SSLSocket)
        c.login(DEMO, DEMO_PASSWORD)
        assert not c.sendmail(DEMO, [DEMO], own_message(t))
    m = delivered(s, t)
    assert_esmtps(m)
    assert b"Received: from tls.client.test" in m


def test_starttls_on_smtp_listener(tls_sluice):
    s = tls_sluice
    t = tag()
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.starttls(context=unverified_context())
        c.ehlo("tls.client.test")
        c.sendmail("tls@client.test", [DEMO], good_message(t))
    assert_esmtps(delivered(s, t))


def test_implicit_tls(tls_sluice):
    s = tls_sluice
    t = tag()
    with smtplib.SMTP_SSL("127.0.0.1", s.smtps_port, context=unverified_context()) as c:
        c.ehlo("implicit.client.test")
        assert not c.has_extn("starttls")
        c.login(DEMO, DEMO_PASSWORD)
        assert not c.sendmail(DEMO, [DEMO], own_message(t))
    m = delivered(s, t)
    assert_esmtps(m)


def test_implicit_tls_raw(tls_sluice):
    s = tls_sluice
    c = RawSMTP(s.smtps_port, tls=True)
    assert c.banner[0] == 220
    c.ehlo()
    c.expect(503, "5.5.1", "STARTTLS")       # already active
    c.expect(221, "2.0.0", "QUIT")


def test_plaintext_on_implicit_tls_port(tls_sluice):
    """A client speaking plain SMTP to the TLS port gets nothing it can use
    and the server goes on serving others."""
    s = tls_sluice
    import socket
    with socket.create_connection(("127.0.0.1", s.smtps_port), timeout=30) as so:
        so.sendall(b"EHLO plain.client.test\r\n")
        data = b""
        try:
            while True:
                chunk = so.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        assert b"250" not in data
    t = tag()
    with smtplib.SMTP_SSL("127.0.0.1", s.smtps_port, context=unverified_context()) as c:
        c.login(DEMO, DEMO_PASSWORD)
        c.sendmail(DEMO, [DEMO], own_message(t))
    delivered(s, t)


def test_commands_pipelined_after_starttls_are_discarded(tls_sluice):
    s = tls_sluice
    c = RawSMTP(s.submission_port)
    c.ehlo("first.client.test")
    c.send(b"STARTTLS\r\nEHLO injected.test\r\nMAIL FROM:<injected@evil.test>\r\n"
           b"HELP\r\n")
    c.expect(220, "2.0.0")
    # nothing else came in plaintext: the next bytes are the TLS handshake
    assert c.buf == b""
    c.starttls()
    # the injected EHLO was not kept: HELO state was reset by STARTTLS
    c.expect(503, "5.5.1", "MAIL FROM:<a@client.test>")
    # and the injected HELP did not leave a 214 waiting for us
    c.expect(250, "2.0.0", "NOOP")
    c.ehlo("second.client.test")
    t = tag()
    assert c.login(DEMO)[0] == 235
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % DEMO)
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(own_message(t) + b".\r\n")
    c.expect(250, "2.0.0")
    m = delivered(s, t)
    assert b"Received: from second.client.test" in m
    assert "injected" not in s.read_log()


def test_starttls_forgets_the_transaction(tls_sluice):
    s = tls_sluice
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<before@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(220, "2.0.0", "STARTTLS")
    c.starttls()
    c.ehlo()
    c.expect(503, "5.5.1", "DATA")
    c.expect(503, "5.5.1", "STARTTLS")


def test_starttls_with_argument(tls_sluice):
    c = RawSMTP(tls_sluice.submission_port)
    c.ehlo()
    c.expect(501, "5.5.4", "STARTTLS now")
    c.expect(250, "2.0.0", "NOOP")


def test_bare_lf_normalised_on_submission(tls_sluice):
    s = tls_sluice
    t = tag()
    c = RawSMTP(s.submission_port).submission()
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % DEMO)
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + t.encode() + b"\n\nline one\nline two\r\nline three\n"
           b"..stuffed\r\n.\r\n")
    c.expect(250, "2.0.0")
    m = delivered(s, t)
    assert m.endswith(b"Subject: " + t.encode() +
                      b"\n\nline one\nline two\nline three\n.stuffed\n")
    assert b"\r" not in m


def test_bare_lf_normalised_on_implicit_tls(tls_sluice):
    s = tls_sluice
    t = tag()
    c = RawSMTP(s.smtps_port, tls=True)
    c.ehlo()
    assert c.login(DEMO)[0] == 235
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % DEMO)
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + t.encode() + b"\n\nlf only\r\n.\r\n")
    c.expect(250, "2.0.0")
    assert delivered(s, t).endswith(b"\n\nlf only\n")


def test_bare_lf_rejected_on_smtp_even_with_tls(tls_sluice):
    s = tls_sluice
    before = s.send_good()
    bad = tag()
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(220, "2.0.0", "STARTTLS")
    c.starttls()
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<unix@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(b"Subject: " + bad.encode() + b"\n\nlf only\r\n.\r\n")
    c.expect(550, "5.5.2")
    s.assert_intact([before], [bad])


def test_swaks_starttls(tls_sluice):
    s = tls_sluice
    t = tag()
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % s.submission_port,
                        "--to", DEMO, "--from", DEMO, "--tls",
                        "--auth", "PLAIN", "--auth-user", DEMO,
                        "--auth-password", DEMO_PASSWORD,
                        "--header", "Subject: " + t],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_esmtps(delivered(s, t))


def test_swaks_implicit_tls(tls_sluice):
    s = tls_sluice
    t = tag()
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % s.smtps_port,
                        "--to", DEMO, "--from", DEMO, "--tlsc",
                        "--auth", "LOGIN", "--auth-user", DEMO,
                        "--auth-password", DEMO_PASSWORD,
                        "--header", "Subject: " + t],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_esmtps(delivered(s, t))


def test_openssl_s_client_starttls(tls_sluice):
    s = tls_sluice
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" %
                        s.submission_port, "-starttls", "smtp", "-crlf", "-quiet",
                        "-verify_quiet"],
                       input=b"EHLO ossl.client.test\nNOOP\nQUIT\n",
                       capture_output=True, timeout=60)
    out = r.stdout.decode()
    assert "250 2.0.0 Ok" in out, out + r.stderr.decode()
    assert "221 2.0.0" in out
    assert "STARTTLS" not in out.split("250-mx.example.test")[-1]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_1_1_refused(tls_sluice):
    s = tls_sluice
    ctx = unverified_context()
    try:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    import socket
    with socket.create_connection(("127.0.0.1", s.smtps_port), timeout=30) as so:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(so)
    t = s.send_good(port=s.smtp_port)
    delivered(s, t)


def test_closing_replies_arrive_over_starttls(make_sluice):
    """The 221 after QUIT and the 421 of too many errors are flushed through
    TLS before the connection closes (they used to be lost under TLS)."""
    s = make_sluice("max-errors 1\n", tls=True)
    c = RawSMTP(s.submission_port)
    c.expect(220, "2.0.0", "STARTTLS")
    c.starttls()
    c.ehlo()
    c.expect(221, "2.0.0", "QUIT")
    assert c.closed()
    c = RawSMTP(s.submission_port)
    c.expect(220, "2.0.0", "STARTTLS")
    c.starttls()
    c.expect(500, "5.5.1", "BOGUS")
    c.expect(500, "5.5.1", "BOGUS")
    c.expect(421, "4.7.0")
    assert c.closed()
