"""Authenticated submission (issue 5): AUTH PLAIN and LOGIN after TLS on
the submission listeners, who may send as whom, no open relay, failed
logins rate-limited, the certificate reloaded on SIGHUP. Real clients:
smtplib, swaks, raw sockets, and aiosmtpd downstream for relayed mail."""
import base64
import os
import signal
import re
import smtplib
import ssl
import subprocess

import pytest
from sluice_harness import (DEMO_PASSWORD, RawSMTP, good_message, tag,
                            unverified_context, wait_for)

DEMO = "demo@example.test"


def own_message(t, frm=DEMO):
    return good_message(t).replace(b"From: good@client.test", b"From: " + frm.encode())


def plain(user, password, authz=""):
    return base64.b64encode(authz.encode() + b"\0" + user.encode() + b"\0" +
                            password.encode()).decode()


def b64(s):
    return base64.b64encode(s.encode()).decode()


@pytest.fixture
def sub(make_sluice):
    return make_sluice("auth-failure-delay 0\n", tls=True)


def tls_session(s, port=None):
    """EHLO, STARTTLS, EHLO on the submission port; not logged in."""
    c = RawSMTP(port or s.submission_port)
    c.ehlo()
    c.expect(220, "2.0.0", "STARTTLS")
    c.starttls()
    return c


def test_auth_offered_only_after_tls_on_submission(sub):
    c = RawSMTP(sub.submission_port)
    assert not any(k.startswith("AUTH") for k in c.ehlo())
    c.expect(220, "2.0.0", "STARTTLS")
    c.starttls()
    assert "AUTH PLAIN LOGIN" in c.ehlo()
    c = RawSMTP(sub.smtps_port, tls=True)
    assert "AUTH PLAIN LOGIN" in c.ehlo()
    # the MX port never offers it, with or without TLS
    c = RawSMTP(sub.smtp_port)
    c.ehlo()
    c.expect(220, "2.0.0", "STARTTLS")
    c.starttls()
    assert not any(k.startswith("AUTH") for k in c.ehlo())
    c.expect(502, "5.5.1", "AUTH PLAIN " + plain(DEMO, DEMO_PASSWORD))


def test_auth_and_mail_before_starttls_refused(sub):
    c = RawSMTP(sub.submission_port)
    c.ehlo()
    c.expect(530, "5.7.0", "AUTH PLAIN " + plain(DEMO, DEMO_PASSWORD))
    c.expect(530, "5.7.0", "MAIL FROM:<%s>" % DEMO)
    # nothing was learnt: after TLS the same credentials work
    c.expect(220, "2.0.0", "STARTTLS")
    c.starttls()
    c.ehlo()
    assert c.login(DEMO)[0] == 235


def test_mail_needs_auth_on_submission(sub):
    c = tls_session(sub)
    c.ehlo()
    c.expect(530, "5.7.0", "MAIL FROM:<%s>" % DEMO)
    c = RawSMTP(sub.smtps_port, tls=True)
    c.ehlo()
    c.expect(530, "5.7.0", "MAIL FROM:<%s>" % DEMO)


@pytest.fixture
def downstream(peer):
    """The server beyond: relayed mail arrives there."""
    return peer


def test_smtplib_login_sends_anywhere(make_sluice, downstream):
    s = make_sluice("route * via 127.0.0.1:%d\n" % downstream.port, tls=True)
    t = tag()
    with smtplib.SMTP("127.0.0.1", s.submission_port) as c:
        c.starttls(context=unverified_context())
        c.login(DEMO, DEMO_PASSWORD)
        assert not c.sendmail(DEMO, ["friend@far.test", DEMO], own_message(t))
    wait_for(lambda: downstream.messages, what="the relayed copy")
    frm, rcpts, data = downstream.messages[0]
    assert frm == DEMO and rcpts == ["friend@far.test"]
    assert t.encode() in data
    s.assert_intact([t])
    m = [m for m in s.messages(DEMO) if t.encode() in m][0]
    assert b"with ESMTPSA" in m
    assert "auth user=demo@example.test" in s.read_log()
    # the envelope keeps who logged in; so does the queue's log line
    assert re.search(r"queued from=<demo@example\.test> .*client=127\.0\.0\.1 "
                     r"auth=demo@example\.test$", s.read_log(), re.M)


def test_envelope_auth_field(make_sluice):
    """The envelope keeps the AUTH identity (`sluice queue show` of a
    message deferred for a far domain); an anonymous client's has none."""
    s = make_sluice(tls=True)
    t = tag()
    with smtplib.SMTP("127.0.0.1", s.submission_port) as c:
        c.starttls(context=unverified_context())
        c.login(DEMO, DEMO_PASSWORD)
        assert not c.sendmail(DEMO, ["friend@far.test"], own_message(t))
    qid = s.wait_log(r"(\w+): queued from=<demo@example\.test>").group(1)
    shown = s.cli("queue", "show", qid).stdout
    assert "\nauth: demo@example.test\n" in shown, shown
    s.send_good()
    line = s.wait_log(r"queued from=<good@client\.test> .*").group(0)
    assert "auth=" not in line


def test_no_open_relay_without_auth(make_sluice, downstream):
    s = make_sluice("route * via 127.0.0.1:%d\n" % downstream.port, tls=True)
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<someone@client.test>")
    c.expect(554, "5.7.1", "RCPT TO:<friend@far.test>")
    c.expect(250, "2.1.5", "RCPT TO:<%s>" % DEMO)     # local mail is fine


def test_trusted_network_may_relay(make_sluice, downstream):
    s = make_sluice("route * via 127.0.0.1:%d\ntrusted-networks 127.0.0.0/8\n" %
                    downstream.port, tls=True)
    t = tag()
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        assert not c.sendmail("app@client.test", ["friend@far.test"], good_message(t))
    wait_for(lambda: downstream.messages, what="the relayed copy")
    assert t.encode() in downstream.messages[0][2]


def test_auth_login_and_plain_exchanges(sub):
    c = tls_session(sub)
    c.ehlo()
    assert c.expect(334, None, "AUTH LOGIN") == "VXNlcm5hbWU6"
    assert c.expect(334, None, b64(DEMO)) == "UGFzc3dvcmQ6"
    c.expect(235, "2.7.0", b64(DEMO_PASSWORD))
    c.expect(503, "5.5.1", "AUTH PLAIN " + plain(DEMO, DEMO_PASSWORD))
    # LOGIN with the user name as initial response; PLAIN without one
    c = tls_session(sub)
    c.ehlo()
    assert c.expect(334, None, "AUTH LOGIN " + b64(DEMO)) == "UGFzc3dvcmQ6"
    c.expect(235, "2.7.0", b64(DEMO_PASSWORD))
    c = tls_session(sub)
    c.ehlo()
    c.expect(334, None, "auth plain")
    c.expect(235, "2.7.0", plain("Demo@Example.TEST", DEMO_PASSWORD))
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % DEMO)
    # and implicit TLS
    c = RawSMTP(sub.smtps_port, tls=True)
    c.ehlo()
    c.expect(235, "2.7.0", "AUTH PLAIN " + plain(DEMO, DEMO_PASSWORD))


def test_auth_sequence_errors(sub):
    c = tls_session(sub)
    c.expect(503, "5.5.1", "AUTH PLAIN " + plain(DEMO, DEMO_PASSWORD))   # EHLO first
    c.ehlo()
    c.expect(504, "5.5.4", "AUTH CRAM-MD5")
    c.expect(501, "5.5.4", "AUTH")
    c.expect(334, None, "AUTH PLAIN")
    c.expect(501, "5.0.0", "*")                       # the client gave up
    c.expect(250, "2.0.0", "NOOP")
    assert c.login(DEMO)[0] == 235
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % DEMO)
    c.expect(503, "5.5.1", "AUTH LOGIN")              # twice
    c.expect(250, "2.0.0", "RSET")


@pytest.mark.parametrize("bad", ["!!!!", "abc", "YW=j", "YWJj ZGVm", "Y W J j",
                                 "YWJjZA", "YWI==", "YR=="])
def test_malformed_base64(sub, bad):
    c = tls_session(sub)
    c.ehlo()
    c.expect(501, "5.5.2", "AUTH PLAIN " + bad)
    c.expect(334, None, "AUTH LOGIN")
    c.expect(501, "5.5.2", bad)
    c.expect(250, "2.0.0", "NOOP")
    assert c.login(DEMO)[0] == 235


@pytest.mark.parametrize("raw", [b"\0only-one-nul", b"no nul at all", b"a\0b\0c\0d",
                                 b"\0\0password", b"\0" + DEMO.encode() + b"\0",
                                 b"\0bad\x01user\0pw"])
def test_malformed_plain(sub, raw):
    c = tls_session(sub)
    c.ehlo()
    c.expect(501, "5.5.2", "AUTH PLAIN " + base64.b64encode(raw).decode())
    assert c.login(DEMO)[0] == 235


def test_huge_auth_line(sub):
    c = tls_session(sub)
    c.ehlo()
    c.expect(500, "5.5.2", "AUTH PLAIN " + "QUFB" * 25000)     # 100 KB
    c.expect(334, None, "AUTH PLAIN")
    c.expect(500, "5.5.2", "QUFB" * 25000)                   # as a response
    c.expect(250, "2.0.0", "NOOP")
    # RFC 4954: 12288 octets must fit; this one is read, and is not base64
    c.expect(501, "5.5.2", "AUTH PLAIN " + "QUFB" * 3000 + "!")
    assert c.login(DEMO)[0] == 235


def test_authorization_identity_of_someone_else(sub):
    sub.add_account("boss@example.test", "the boss password")
    c = tls_session(sub)
    c.ehlo()
    c.expect(535, "5.7.8", "AUTH PLAIN " + plain(DEMO, DEMO_PASSWORD,
                                                 authz="boss@example.test"))
    c.expect(235, "2.7.0", "AUTH PLAIN " + plain(DEMO, DEMO_PASSWORD, authz=DEMO))
    c.expect(553, "5.7.1", "MAIL FROM:<boss@example.test>")
    assert "boss@example.test" not in [l for l in sub.read_log().splitlines()
                                       if "auth user=" in l][0]


def test_wrong_passwords_lock_the_client_out(make_sluice):
    s = make_sluice("auth-max-failures 3\nauth-failure-delay 0\nauth-lockout 1h\n",
                    tls=True)
    secret = "guess-%s" % tag()
    c = tls_session(s)
    c.ehlo()
    for _ in range(3):
        c.expect(535, "5.7.8", "AUTH PLAIN " + plain(DEMO, secret))
    # locked: even the right password is not looked at now, on any session
    c.expect(454, "4.7.0", "AUTH PLAIN " + plain(DEMO, DEMO_PASSWORD))
    c2 = RawSMTP(s.smtps_port, tls=True)
    c2.ehlo()
    c2.expect(454, "4.7.0", "AUTH LOGIN")
    log = s.read_log()
    assert "auth failed: user=demo@example.test" in log and "failures=3 (locked out)" in log
    assert secret not in log and DEMO_PASSWORD not in log
    # the MX port is not affected
    t = s.send_good()
    s.assert_intact([t])


def test_unknown_user_is_a_wrong_password(sub):
    c = tls_session(sub)
    c.ehlo()
    c.expect(535, "5.7.8", "AUTH PLAIN " + plain("nobody@example.test", DEMO_PASSWORD))
    c.expect(535, "5.7.8", "AUTH PLAIN " + plain("demo@other.test", DEMO_PASSWORD))
    c.expect(535, "5.7.8", "AUTH PLAIN " + plain("no-domain", DEMO_PASSWORD))


def test_failed_login_answer_is_delayed_not_lost(make_sluice):
    """With a delay the 535 still comes, and the session goes on after it."""
    s = make_sluice("auth-failure-delay 1s\n", tls=True)
    c = tls_session(s)
    c.ehlo()
    c.send("AUTH PLAIN %s\r\nNOOP\r\n" % plain(DEMO, "wrong password"))
    c.expect(535, "5.7.8")
    c.expect(250, "2.0.0")
    assert c.login(DEMO)[0] == 235


@pytest.mark.db_backends
def test_password_change_applies_to_smtp_auth(make_sluice, db_backend):
    s = make_sluice("auth-failure-delay 0\n", tls=True)
    c = tls_session(s)
    c.ehlo()
    assert c.login(DEMO)[0] == 235
    s.cli("account", "passwd", DEMO, "--password-stdin", input="a brand new password\n")
    c = tls_session(s)
    c.ehlo()
    assert c.login(DEMO)[0] == 535
    assert c.login(DEMO, "a brand new password")[0] == 235
    s.cli("account", "del", DEMO, "--yes")
    c = tls_session(s)
    c.ehlo()
    assert c.login(DEMO, "a brand new password")[0] == 535


def test_sender_must_be_the_users(sub):
    sub.cli("alias", "add", "sales@example.test", DEMO)
    sub.add_account("other@example.test", "other password here")
    c = RawSMTP(sub.submission_port).submission()
    for ok in (DEMO, "DEMO@example.test", "sales@example.test", "demo+news@example.test", ""):
        c.expect(250, "2.1.0", "MAIL FROM:<%s>" % ok)
        c.expect(250, "2.0.0", "RSET")
    for bad in ("other@example.test", "ceo@far.test", "nosuch@example.test"):
        t = c.expect(553, "5.7.1", "MAIL FROM:<%s>" % bad)
        assert bad in t and DEMO in t
    c.expect(503, "5.5.1", "RCPT TO:<%s>" % DEMO)     # no transaction began
    assert "sender not owned: user=demo@example.test from=<ceo@far.test>" in sub.read_log()


def send_with_from(s, frm_header, t):
    c = RawSMTP(s.submission_port).submission()
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % DEMO)
    c.expect(250, "2.1.5", "RCPT TO:<%s>" % DEMO)
    c.expect(354, None, "DATA")
    c.send(frm_header + b"Subject: " + t.encode() + b"\r\n\r\nbody\r\n.\r\n")
    return c.reply()


def test_from_header_must_be_the_users(sub):
    sub.cli("alias", "add", "sales@example.test", DEMO)
    good, bad = [], []
    for hdr in (b"From: Demo User <demo@example.test>\r\n",
                b"From: \"Sales, Team\" <sales@example.test>\r\n",
                b"From: demo@example.test (the demo)\r\n",
                b"From: Demo\r\n <demo@example.test>\r\n",
                b""):
        t = tag()
        code, text = send_with_from(sub, hdr, t)
        assert code == 250, (hdr, code, text)
        good.append(t)
    for hdr in (b"From: CEO <ceo@example.test>\r\n",
                b"From: demo@example.test, ceo@far.test\r\n",
                b"From: demo@example.test\r\nFrom: ceo@far.test\r\n",
                b"From: \"demo@example.test\" <ceo@far.test>\r\n",
                b"From: undisclosed:;\r\nFrom: <ceo@far.test\r\n"):
        t = tag()
        code, text = send_with_from(sub, hdr, t)
        assert code == 553 and text.startswith("5.7.1"), (hdr, code, text)
        bad.append(t)
    sub.assert_intact(good, bad)


def test_swaks_tls_auth(sub):
    t = tag()
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % sub.submission_port,
                        "--to", DEMO, "--from", DEMO, "--tls", "--auth", "LOGIN",
                        "--auth-user", DEMO, "--auth-password", DEMO_PASSWORD,
                        "--header", "Subject: " + t],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    sub.assert_intact([t])
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % sub.submission_port,
                        "--to", DEMO, "--from", DEMO, "--tls", "--auth", "PLAIN",
                        "--auth-user", DEMO, "--auth-password", "not it"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "535 5.7.8" in r.stdout


def cert_serial(port):
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    r = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem,
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def new_pair(s, name):
    cert, key = os.path.join(s.dir, name + ".crt"), os.path.join(s.dir, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-days", "2", "-subj", "/CN=mx.example.test", "-keyout", key,
                    "-out", cert], check=True, capture_output=True)
    return cert, key


def test_certificate_reloaded_on_sighup(sub):
    s = sub
    before = cert_serial(s.smtps_port)
    cert, key = new_pair(s, "new")
    conf = open(s.conf).read()
    old_cert = [l.split()[1] for l in conf.splitlines() if l.startswith("tls-cert ")][0]
    old_key = [l.split()[1] for l in conf.splitlines() if l.startswith("tls-key ")][0]
    os.replace(cert, old_cert)
    os.replace(key, old_key)
    s.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "certificate and key reloaded" in s.read_log(), what="the reload")
    after = cert_serial(s.smtps_port)
    assert after != before
    # a key that does not match: the running pair stays
    _, other_key = new_pair(s, "other")
    os.replace(other_key, old_key)
    s.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "keeping the running ones" in s.read_log(), what="the refusal")
    assert cert_serial(s.smtps_port) == after
    c = RawSMTP(s.submission_port).submission()
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % DEMO)


@pytest.mark.db_backends
def test_send_as_patterns(make_sluice, db_backend):
    s = make_sluice("auth-failure-delay 0\n", tls=True)
    s.cli("account", "set", DEMO, "--send-as", "*@example.org news@*.test")
    c = RawSMTP(s.submission_port).submission()
    for ok in ("anyone@example.org", "ANN@Example.ORG", "news@lists.test"):
        c.expect(250, "2.1.0", "MAIL FROM:<%s>" % ok)
        c.expect(250, "2.0.0", "RSET")
    for bad in ("anyone@example.net", "news2@lists.test"):
        c.expect(553, "5.7.1", "MAIL FROM:<%s>" % bad)
    t = tag()
    c.expect(250, "2.1.0", "MAIL FROM:<desk@example.org>")
    c.expect(250, "2.1.5", "RCPT TO:<%s>" % DEMO)
    c.expect(354, None, "DATA")
    c.send(b"From: Desk <desk@example.org>\r\nSubject: " + t.encode() + b"\r\n\r\nx\r\n.\r\n")
    c.expect(250, "2.0.0")
    s.assert_intact([t])
    # '*' allows anything; an empty list takes it back
    s.cli("account", "set", DEMO, "--send-as", "*")
    c = RawSMTP(s.submission_port).submission()
    c.expect(250, "2.1.0", "MAIL FROM:<ceo@far.test>")
    s.cli("account", "set", DEMO, "--send-as", "")
    c = RawSMTP(s.submission_port).submission()
    c.expect(553, "5.7.1", "MAIL FROM:<ceo@far.test>")
