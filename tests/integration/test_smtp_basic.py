"""The walking skeleton: SMTP in, durable queue, Maildir out."""
import smtplib
import subprocess


def test_smtplib_delivers_to_maildir(sluice):
    with smtplib.SMTP("127.0.0.1", sluice.smtp_port) as c:
        c.ehlo("client.test")
        c.sendmail("alice@client.test", ["demo@example.test"],
                   b"Subject: hello\r\n\r\nbody line\r\n.dot line\r\n")
    msgs = sluice.wait_messages("demo@example.test", 1)
    m = msgs[0]
    assert m.startswith(b"Return-Path: <alice@client.test>\nDelivered-To: demo@example.test\n")
    assert b"Received: from client.test" in m
    assert b"\n\tby mx.example.test (sluice) with ESMTP" in m
    assert m.endswith(b"Subject: hello\n\nbody line\n.dot line\n")
    assert b"\r" not in m


def test_swaks_delivers(sluice):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % sluice.smtp_port,
                        "--to", "demo@example.test", "--from", "bob@client.test"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "250 2.0.0 Ok: queued as" in r.stdout
    sluice.wait_messages("demo@example.test", 1)


def test_queue_ids_in_log(sluice):
    with smtplib.SMTP("127.0.0.1", sluice.smtp_port) as c:
        c.ehlo("client.test")
        code, text = c.data if False else (None, None)
        c.mail("a@client.test")
        c.rcpt("demo@example.test")
        code, text = c.data(b"Subject: x\r\n\r\ny\r\n")
    assert code == 250
    qid = text.decode().split()[-1]
    sluice.wait_messages("demo@example.test", 1)
    from sluice_harness import wait_for
    wait_for(lambda: "%s: removed" % qid in sluice.read_log(), what="removed log line")
    lines = [l for l in sluice.read_log().splitlines() if qid in l]
    assert any("status=sent" in l and "to=<demo@example.test>" in l for l in lines)
    assert sluice.queue_empty()


def _reads(pid):
    with open("/proc/%d/io" % pid) as f:
        return int(dict(l.split(": ") for l in f.read().splitlines())["syscr"])


def test_several_recipients_one_read_of_the_message(make_sluice):
    """Recipients of one message are delivered from one read of the spool
    file: the deliver process's read calls for three recipients stay close
    to what one recipient costs, not three times as many."""
    s = make_sluice()
    for u in ("r1", "r2", "r3"):
        s.add_account(u + "@example.test")
    body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 2000   # 2 MB
    deliver = s.children()["deliver"]

    def send(rcpts):
        before = _reads(deliver)
        with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
            c.sendmail("a@client.test", rcpts, body)
        for r in rcpts:
            s.wait_messages(r, 2 if r == "r1@example.test" and len(rcpts) > 1 else 1)
        from sluice_harness import wait_for
        wait_for(s.queue_empty, what="the queue to empty")
        return _reads(deliver) - before

    one = send(["r1@example.test"])
    three = send(["r1@example.test", "r2@example.test", "r3@example.test"])
    assert one >= 30                      # 2 MB in 64 KB reads
    assert three < one * 1.5, (one, three)
    for r in ("r1", "r2", "r3"):
        m = s.messages(r + "@example.test")[-1]
        assert b"\nDelivered-To: %s@example.test\n" % r.encode() in m
        assert m.endswith((b"x" * 998 + b"\n") * 2000)
