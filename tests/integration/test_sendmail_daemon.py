"""`sluice sendmail` against a running daemon, and with the daemon down
(the maildrop): it never loses a message."""
import os
import pwd
import re
import subprocess

from sluice_harness import RUN_USER, SLUICE, good_message, tag, wait_for

DEMO = "demo@example.test"


def sendmail(s, args, msg, check=True):
    r = subprocess.run([SLUICE, "-c", s.conf, "sendmail"] + args, input=msg,
                       capture_output=True, timeout=60)
    if check:
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


def only(s, t, addr=DEMO):
    s.assert_intact([t])
    return [m for m in s.messages(addr) if t.encode() in m][0]


def headers(m):
    return m.split(b"\n\n", 1)[0].decode("utf-8", "replace")


def test_sendmail_delivers(sluice):
    t = tag()
    sendmail(sluice, [DEMO], b"From: me@example.test\nSubject: " + t.encode() +
             b"\n\nhello from sendmail\n")
    m = only(sluice, t)
    assert m.endswith(b"\n\nhello from sendmail\n")
    assert b"Delivered-To: demo@example.test\n" in m
    h = headers(m)
    m = re.search(r"^Received: by mx\.example\.test \(sluice, from userid \S+\)\n"
                  r"\tid (\w+)\n", h, re.M)
    assert m, h
    assert "%s: to=<demo@example.test>" % m.group(1) in sluice.read_log()


def test_sendmail_t_with_to_cc_bcc(make_sluice):
    s = make_sluice()
    for u in ("cc", "hidden"):
        s.add_account("%s@example.test" % u)
    t = tag()
    sendmail(s, ["-t"], ("From: me@example.test\nTo: Demo <demo@example.test>\n"
                         "Cc: cc@example.test\nBcc: hidden@example.test\n"
                         "Subject: %s\n\nto three\n" % t).encode())
    s.assert_intact([t])
    for u in ("demo", "cc", "hidden"):
        m = only(s, t, "%s@example.test" % u)
        assert not re.search(r"^Bcc:", headers(m), re.M | re.I), headers(m)
        if u != "hidden":
            assert b"hidden" not in m


def test_sendmail_f_sets_envelope_sender(sluice):
    t = tag()
    sendmail(sluice, ["-f", "bounces@example.test", DEMO],
             b"From: me@example.test\nSubject: " + t.encode() + b"\n\nx\n")
    m = only(sluice, t)
    assert m.startswith(b"Return-Path: <bounces@example.test>\n")


def test_sendmail_dot_line_ends_input_without_i(sluice):
    t = tag()
    sendmail(sluice, [DEMO], b"Subject: " + t.encode() +
             b"\n\nbefore\n.\nafter the dot\n")
    m = only(sluice, t)
    assert m.endswith(b"\n\nbefore\n")
    assert b"after the dot" not in m


def test_sendmail_i_keeps_dot_lines(sluice):
    t = tag()
    sendmail(sluice, ["-i", DEMO], b"Subject: " + t.encode() +
             b"\n\nbefore\n.\n..two\nafter the dot\n")
    m = only(sluice, t)
    assert m.endswith(b"\n\nbefore\n.\n..two\nafter the dot\n")


def test_sendmail_unknown_user(sluice):
    r = sendmail(sluice, ["nosuchuser@example.test"], b"Subject: x\n\ny\n", check=False)
    assert r.returncode == 67, (r.returncode, r.stderr)
    err = r.stderr.decode()
    assert "nosuchuser@example.test" in err or "5.1.1" in err, err
    assert "unknown" in err.lower()
    sluice.settle()
    assert len(sluice.all_messages()) == 1      # the settle sentinel only


def test_sendmail_adds_missing_headers(sluice):
    t = tag()
    sendmail(sluice, [DEMO], b"Subject: " + t.encode() + b"\n\nbare message\n")
    h = headers(only(sluice, t))
    assert re.search(r"^Date: ", h, re.M), h
    assert re.search(r"^Message-ID: <[^>]+@[^>]+>", h, re.M | re.I), h
    assert re.search(r"^From: .*@", h, re.M), h


def test_sendmail_keeps_existing_headers(sluice):
    t = tag()
    sendmail(sluice, [DEMO], b"From: Me <me@example.test>\n"
             b"Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <fixed@example.test>\n"
             b"Subject: " + t.encode() + b"\n\nx\n")
    h = headers(only(sluice, t))
    assert h.count("\nDate: ") + h.startswith("Date: ") == 1
    assert h.lower().count("message-id:") == 1
    assert "<fixed@example.test>" in h
    assert len(re.findall(r"^From: ", h, re.M)) == 1


def test_smtp_mail_gets_no_added_headers(sluice):
    """Only locally submitted mail is fixed up; SMTP mail is left alone."""
    import smtplib
    t = tag()
    with smtplib.SMTP("127.0.0.1", sluice.smtp_port) as c:
        c.sendmail("a@client.test", [DEMO], b"Subject: " + t.encode() + b"\r\n\r\nx\r\n")
    h = headers(only(sluice, t))
    assert not re.search(r"^(Date|Message-ID|From): ", h, re.M | re.I), h


def test_sendmail_with_daemon_down_uses_maildrop(make_sluice):
    s = make_sluice()
    s.stop()
    t = tag()
    r = sendmail(s, [DEMO], b"Subject: " + t.encode() + b"\n\nwhile down\n")
    assert r.returncode == 0
    drop = s.spool_files("maildrop")
    assert len(drop) == 1, drop
    assert not any(n.startswith("tmp") for n in drop)
    s.start()
    m = only(s, t)
    assert m.endswith(b"\n\nwhile down\n")
    wait_for(lambda: not s.spool_files("maildrop"), what="an empty maildrop")


def test_maildrop_picked_up_while_running(make_sluice):
    """A message dropped while the daemon was away is imported by the
    periodic scan after it comes back, without a restart."""
    s = make_sluice()
    s.stop()
    t1 = tag()
    sendmail(s, [DEMO], b"Subject: " + t1.encode() + b"\n\none\n")
    s.start()
    only(s, t1)
    # the daemon is up again: this one goes over the socket
    t2 = tag()
    sendmail(s, [DEMO], b"Subject: " + t2.encode() + b"\n\ntwo\n")
    s.assert_intact([t1, t2])
    assert not s.spool_files("maildrop")


def test_sendmail_maildrop_with_t_and_bcc(make_sluice):
    s = make_sluice()
    s.add_account("hidden@example.test")
    s.stop()
    t = tag()
    sendmail(s, ["-t"], ("To: demo@example.test\nBcc: hidden@example.test\n"
                         "Subject: %s\n\nx\n" % t).encode())
    s.start()
    s.assert_intact([t])
    assert s.count_tag(t, "hidden@example.test") == 1
    for a in (DEMO, "hidden@example.test"):
        m = [m for m in s.messages(a) if t.encode() in m][0]
        assert b"\nBcc:" not in m


def test_sendmail_before_the_spool_exists(make_sluice):
    """sluiced has never run: as root, sendmail makes the spool (owned by the
    daemon user, as sluiced would) and keeps the message in the maildrop;
    the first start delivers it. Not root: a temporary failure that says why
    (nothing is lost: the caller keeps the message)."""
    s = make_sluice(start=False)
    t = tag()
    r = sendmail(s, [DEMO], good_message(t).replace(b"\r\n", b"\n"), check=False)
    if os.geteuid() != 0:
        assert r.returncode == 75
        assert b"maildrop" in r.stderr and b"not running" in r.stderr
        return
    assert r.returncode == 0, r.stderr
    assert len(s.spool_files("maildrop")) == 1
    assert pwd.getpwuid(os.stat(os.path.join(s.spool, "maildrop")).st_uid).pw_name == RUN_USER
    s.start()
    wait_for(lambda: s.count_tag(t, DEMO) == 1, what="the maildrop message")
