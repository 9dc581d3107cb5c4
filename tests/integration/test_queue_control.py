"""`sluice queue flush|hold|release|delete` act on the live queue through
the queue process's control socket."""
import os
import shutil
import smtplib
import subprocess

from sluice_harness import wait_for

REMOTE = "someone@remote.test"


def relay_one(s, subject="deferred"):
    """From a trusted client, one message for a remote domain: it is
    accepted and stays deferred (outbound delivery is not built yet)."""
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.ehlo("client.test")
        c.mail("a@client.test")
        c.rcpt(REMOTE)
        code, text = c.data(("Subject: %s\r\n\r\nbody\r\n" % subject).encode())
    assert code == 250
    qid = text.decode().split()[-1]
    wait_for(lambda: qid in s.spool_files("outgoing"), what="%s deferred" % qid)
    return qid


def queue_list(s):
    return s.cli("queue", "list").stdout


def test_hold_release_delete(make_sluice):
    s = make_sluice("trusted-networks 127.0.0.0/8\n")
    qid = relay_one(s)
    assert qid in queue_list(s) and "(held)" not in queue_list(s)
    r = s.cli("queue", "hold", qid)
    assert r.stdout.strip() == "hold: 1 message(s)"
    out = queue_list(s)
    assert qid in out and "(held)" in out
    # a held message is left alone by flush
    assert s.cli("queue", "flush").stdout.strip() == "flush: 0 message(s)"
    # the state survives a restart
    s.stop()
    s.start()
    assert "(held)" in queue_list(s)
    s.cli("queue", "release", qid)
    assert "(held)" not in queue_list(s)
    wait_for(lambda: "%s: to=<%s>" % (qid, REMOTE) in s.read_log().split("release")[-1],
             what="a new attempt after release")
    assert s.cli("queue", "delete", qid).stdout.strip() == "delete: 1 message(s)"
    assert qid not in queue_list(s)
    assert qid not in s.spool_files("outgoing") and qid not in s.spool_files("data")
    assert "%s: deleted by the operator" % qid in s.read_log()
    # no bounce for a deleted message
    assert "non-delivery" not in s.read_log()


def test_flush_by_domain_and_by_id(make_sluice):
    s = make_sluice("trusted-networks 127.0.0.0/8\n")
    a = relay_one(s, "one")
    assert s.cli("queue", "flush", "remote.test").stdout.strip() == "flush: 1 message(s)"
    assert s.cli("queue", "flush", "other.test").stdout.strip() == "flush: 0 message(s)"
    assert s.cli("queue", "flush", a).stdout.strip() == "flush: 1 message(s)"
    wait_for(lambda: s.read_log().count("%s: to=<%s>" % (a, REMOTE)) >= 2,
             what="a second attempt after flush")


def test_flush_retries_a_deferred_local_delivery_now(make_sluice):
    """A Maildir that could not be written: fixed, then `queue flush`
    delivers at once instead of after the retry interval (5 minutes)."""
    s = make_sluice()
    md = s.maildir("demo@example.test")
    shutil.rmtree(os.path.join(md, "new"))
    with open(os.path.join(md, "new"), "w") as f:
        f.write("not a directory\n")
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.sendmail("a@client.test", ["demo@example.test"], b"Subject: later\r\n\r\nx\r\n")
    wait_for(lambda: s.spool_files("outgoing"), what="the deferral")
    assert "deferred" in queue_list(s)
    os.unlink(os.path.join(md, "new"))
    os.mkdir(os.path.join(md, "new"))
    if os.geteuid() == 0:
        shutil.chown(os.path.join(md, "new"), "_sluice", "_sluice")
    assert s.cli("queue", "flush").stdout.strip() == "flush: 1 message(s)"
    s.wait_messages("demo@example.test", 1)
    wait_for(s.queue_empty, what="the queue to empty")


def test_control_errors(make_sluice):
    s = make_sluice()
    r = s.cli("queue", "hold", "0123456789ABCDEF0123", check=False)
    assert r.returncode == 67 and "no such message" in r.stderr
    r = s.cli("queue", "delete", "not-an-id", check=False)
    assert r.returncode == 64 and "malformed" in r.stderr
    r = s.cli("queue", "hold", check=False)
    assert r.returncode == 64
    s.stop()
    r = s.cli("queue", "flush", check=False)
    assert r.returncode == 69 and "is sluiced running" in r.stderr


def test_deleted_account_with_queued_mail_bounces(make_sluice):
    """The documented rule (docs/accounts.md): mail still queued for an
    account that is deleted bounces as "user unknown" at its next attempt;
    the Maildir is not created again."""
    s = make_sluice()
    s.add_account("sender@example.test")
    md = s.maildir("demo@example.test")
    shutil.rmtree(os.path.join(md, "new"))
    with open(os.path.join(md, "new"), "w") as f:
        f.write("not a directory\n")
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.sendmail("sender@example.test", ["demo@example.test"],
                   b"Subject: for a leaving user\r\n\r\nx\r\n")
    wait_for(lambda: "deferred" in queue_list(s), what="the deferral")
    s.cli("account", "del", "demo@example.test", "--yes")
    assert not os.path.exists(md)
    assert s.cli("queue", "flush").stdout.strip() == "flush: 1 message(s)"
    s.wait_messages("sender@example.test", 1)
    bounce = s.messages("sender@example.test")[0]
    assert b"demo@example.test" in bounce and b"5.1.1" in bounce
    wait_for(s.queue_empty, what="the queue to empty")
    assert not os.path.exists(md)
