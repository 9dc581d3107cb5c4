"""mailbox-transport lmtp:...: local mailboxes written by an LMTP server
(RFC 2033) instead of sluice's own Maildir delivery: a real Dovecot on its
unix socket (dovecot-config --lmtp), and a tiny LMTP server on loopback
that answers each recipient as a test wants."""
import os
import re
import signal
import smtplib
import socket
import subprocess
import threading

import pytest

from dovecot_harness import Dovecot, dovecot_installed
from sluice_harness import BUILD, WAIT, free_port, good_message, tag, wait_for

needs_dovecot = pytest.mark.skipif(not dovecot_installed(),
                                   reason="Dovecot is not installed")

ADDR = "demo@example.test"
TWO = "two@example.test"
PASSWORD = "correct horse battery"


def send(s, rcpts, t=None):
    t = t or tag()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=WAIT) as c:
        assert not c.sendmail("good@client.test", rcpts, good_message(t))
    return t


def switch(s, value):
    """Point the running sluice's mailbox-transport at value (SIGHUP)."""
    with open(s.conf, "a") as f:
        f.write("mailbox-transport %s\n" % value)
    s.cli("check")
    n = s.read_log().count("reloading configuration")
    os.kill(s.proc.pid, signal.SIGHUP)
    wait_for(lambda: s.read_log().count("reloading configuration") > n,
             what="reload")


def status(s, t_addr, st):
    return s.wait_log(r"to=<%s> relay=(\S+) .*status=%s" % (re.escape(t_addr), st))


@needs_dovecot
def test_two_accounts_through_dovecot(sluice, make_dovecot):
    sluice.add_account(TWO)
    d = make_dovecot(sluice, lmtp=True)
    switch(sluice, "lmtp:unix:" + d.lmtp_socket)
    t = send(sluice, [ADDR, TWO])
    for a in (ADDR, TWO):
        m = status(sluice, a, "sent")
        assert m.group(1).startswith("lmtp:unix:")
        got = sluice.wait_messages(a, 1)
        assert len(got) == 1 and t.encode() in got[0]
        # Dovecot writes Return-Path and (one recipient a transaction)
        # Delivered-To, once each, as sluice's Maildir delivery does
        assert got[0].startswith(b"Return-Path: <good@client.test>\n"
                                 b"Delivered-To: " + a.encode() + b"\n")
        assert got[0].count(b"Return-Path:") == 1
        assert got[0].count(b"Delivered-To:") == 1
        assert got[0].endswith(b"\nbody of " + t.encode() + b"\n")
        im = d.login(a, PASSWORD)
        try:
            typ, data = im.select("INBOX", readonly=True)
            typ, data = im.fetch("1", "(BODY.PEEK[TEXT])")
            assert data[0][1] == b"body of " + t.encode() + b"\r\n"
        finally:
            im.logout()
    assert "relay=maildir" not in sluice.read_log()
    assert not sluice.sanitizer_reports()
    wait_for(sluice.queue_empty, what="the queue to empty")


@needs_dovecot
def test_dovecot_refuses_a_recipient(sluice):
    """Dovecot's userdb says no to an account sluice still has: 5xx at RCPT
    is a bounce for that one; the other is delivered."""
    sluice.add_account(TWO)
    d = Dovecot(sluice, lmtp=True)
    try:
        with open(d.sql_file) as f:
            sql = f.read()
        sql = re.sub(r"(user_query = .*)\n", r"\1 AND local <> 'two'\n", sql)
        with open(d.sql_file, "w") as f:
            f.write(sql)
        d.start()
        switch(sluice, "lmtp:unix:" + d.lmtp_socket)
        send(sluice, [ADDR, TWO])
        status(sluice, ADDR, "sent")
        status(sluice, TWO, "bounced")
        assert sluice.log_search(r"to=<%s> relay=lmtp:unix:\S+ .*"
                                 r"status=bounced \(550 5\.1\.1" % TWO)
        assert sluice.messages(TWO) == []
    finally:
        print(d.read_log())
        d.cleanup()


@needs_dovecot
def test_dovecot_down_defers_then_delivers(sluice, make_dovecot):
    d = make_dovecot(sluice, lmtp=True)
    switch(sluice, "lmtp:unix:" + d.lmtp_socket)
    d.stop()
    t = send(sluice, [ADDR])
    m = status(sluice, ADDR, "deferred")
    assert m.group(1) == "lmtp:unix:" + d.lmtp_socket
    assert sluice.messages(ADDR) == []
    assert "bounced" not in sluice.read_log()
    assert sluice.spool_files("outgoing")
    d.start()
    sluice.cli("queue", "flush")
    status(sluice, ADDR, "sent")
    got = sluice.wait_messages(ADDR, 1)
    assert len(got) == 1 and t.encode() in got[0]
    wait_for(sluice.queue_empty, what="the queue to empty")


class TinyLMTP:
    """An LMTP server on loopback: after DATA, per recipient, the reply
    answers[local part] (default 250)."""

    def __init__(self, answers, rcpt_answers=None):
        self.answers = answers
        self.rcpt_answers = rcpt_answers or {}
        self.lines = []
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(5)
        self.got = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        f = c.makefile("rb")
        c.sendall(b"220 tiny LMTP\r\n")
        rcpts = []
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                self.lines.append(line)
                cmd = line.strip().upper()
                if cmd.startswith(b"LHLO"):
                    c.sendall(b"250-tiny\r\n250 PIPELINING\r\n")
                elif cmd.startswith(b"MAIL"):
                    rcpts = []
                    c.sendall(b"250 ok\r\n")
                elif cmd.startswith(b"RCPT"):
                    r = line.split(b"<")[1].split(b">")[0].decode()
                    no = self.rcpt_answers.get(r.split("@")[0])
                    if no:
                        c.sendall(no.encode() + b"\r\n")
                    else:
                        rcpts.append(r)
                        c.sendall(b"250 ok\r\n")
                elif cmd == b"DATA":
                    c.sendall(b"354 go\r\n")
                    data = b""
                    while True:
                        l = f.readline()
                        if l in (b".\r\n", b""):
                            break
                        data += l
                    self.got.append((list(rcpts), data))
                    for r in rcpts:
                        c.sendall(self.answers.get(r.split("@")[0],
                                                   "250 2.0.0 saved").encode()
                                  + b"\r\n")
                elif cmd == b"QUIT":
                    c.sendall(b"221 bye\r\n")
                    return
                else:
                    c.sendall(b"250 ok\r\n")
        finally:
            c.close()

    def close(self):
        self.sock.close()


def test_lmtp_inet_per_recipient_outcomes(sluice):
    sluice.add_account(TWO)
    sluice.add_account("three@example.test")
    srv = TinyLMTP({"two": "452 4.2.2 mailbox full",
                    "three": "550 5.1.1 no such user here"})
    try:
        switch(sluice, "lmtp:127.0.0.1:%d" % srv.port)
        t = send(sluice, [ADDR, TWO, "three@example.test"])
        m = status(sluice, ADDR, "sent")
        assert m.group(1) == "lmtp:127.0.0.1:%d" % srv.port
        d = status(sluice, TWO, "deferred")
        assert sluice.log_search(r"to=<%s> relay=lmtp:\S+ .*status=deferred "
                                 r"\(452 4\.2\.2 mailbox full" % TWO)
        status(sluice, "three@example.test", "bounced")
        assert sluice.log_search(r"to=<three@example.test> relay=lmtp:\S+ .*"
                                 r"status=bounced \(550 5\.1\.1 no such")
        # the account's address, the body dot-stuffed as sent
        sent = [g for g in srv.got if g[0] == [ADDR]]
        assert sent and t.encode() in sent[0][1]
        assert b"Return-Path" not in sent[0][1]   # the LMTP server's job
        assert sluice.messages(ADDR) == []        # not by sluice itself
        assert d
    finally:
        srv.close()


def test_aliases_and_extensions_resolved_by_sluice(sluice):
    """Only the mailbox write moves: an alias's accounts and a +extension
    reach the LMTP server as the accounts' addresses, one each."""
    sluice.add_account(TWO)
    sluice.cli("alias", "add", "team@example.test", ADDR, TWO)
    srv = TinyLMTP({})
    try:
        switch(sluice, "lmtp:127.0.0.1:%d" % srv.port)
        t = send(sluice, ["team@example.test"])
        u = send(sluice, ["demo+ext@example.test"])
        wait_for(lambda: len(srv.got) == 3, what="3 LMTP transactions")
        rcpts = sorted(g[0][0] for g in srv.got)
        assert rcpts == [ADDR, ADDR, TWO]
        assert all(len(g[0]) == 1 for g in srv.got)
        assert sum(t.encode() in g[1] for g in srv.got) == 2
        assert sum(u.encode() in g[1] for g in srv.got) == 1
        wait_for(sluice.queue_empty, what="the queue to empty")
    finally:
        srv.close()


def test_delivered_to_loop_is_checked(sluice):
    """The Delivered-To: loop check of Maildir delivery holds with LMTP,
    for the address and for the account's address (what the LMTP server
    writes): bounced 5.4.6, nothing handed to the server."""
    srv = TinyLMTP({})
    try:
        switch(sluice, "lmtp:127.0.0.1:%d" % srv.port)
        for rcpt in (ADDR, "demo+ext@example.test"):
            t = tag()
            with smtplib.SMTP("127.0.0.1", sluice.smtp_port, timeout=WAIT) as c:
                assert not c.sendmail("good@client.test", [rcpt],
                                      b"Delivered-To: demo@example.test\r\n" +
                                      good_message(t))
            sluice.wait_log(r"to=<%s>.*status=bounced \(5\.4\.6" %
                            re.escape(rcpt))
        assert srv.got == []
    finally:
        srv.close()


@pytest.mark.parametrize("bad", ["lmtp", "lmtp:unix:relative/sock", "mbox",
                                 "lmtp:localhost:24", "lmtp:127.0.0.1:0",
                                 "lmtp:127.0.0.1:99999", "lmtp:127.0.0.1",
                                 "lmtp:unix:/" + "x" * 120])
def test_bad_values_refused(sluice, bad):
    with open(sluice.conf, "a") as f:
        f.write("mailbox-transport %s\n" % bad)
    r = sluice.cli("check", check=False)
    assert r.returncode != 0
    assert "mailbox-transport" in r.stderr and ":" in r.stderr


def test_check_shows_it(sluice):
    with open(sluice.conf, "a") as f:
        f.write("mailbox-transport lmtp:127.0.0.1:24\n")
    r = sluice.cli("check", "--dump")
    assert "mailbox-transport lmtp:127.0.0.1:24" in r.stdout + r.stderr


SMTP_SEND = os.path.join(BUILD, "tests", "tools", "smtp-send")


@pytest.mark.skipif(not os.path.exists(SMTP_SEND), reason="smtp-send not built")
def test_client_one_reply_per_accepted_recipient(tmp_path):
    """RFC 2033 4.2 in the client itself: three recipients in one
    transaction, one refused at RCPT, then a reply after the data for each
    of the two accepted ones, in order: 250 delivered, 452 temporary."""
    srv = TinyLMTP({"b": "452 4.2.2 mailbox full"},
                   rcpt_answers={"c": "550 5.1.1 unknown"})
    data = tmp_path / "data"
    data.write_bytes(b"Subject: x\n\n.dot\nbody\n")
    try:
        p = subprocess.run([SMTP_SEND, "--lmtp", "--connect",
                            "127.0.0.1:%d" % srv.port, "--from", "s@x.test",
                            "--to", "a@example.test", "--to", "c@example.test",
                            "--to", "b@example.test", "--data", str(data),
                            "--timeout", "10"], capture_output=True, text=True,
                           timeout=60)
    finally:
        srv.close()
    st = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(
        r"to=<(\S+)> status=(\w+) .*reply=(.*)", p.stdout)}
    assert st["a@example.test"][0] == "delivered", p.stdout
    assert st["b@example.test"] == ("temp", "452 4.2.2 mailbox full"), p.stdout
    assert st["c@example.test"] == ("perm", "550 5.1.1 unknown"), p.stdout
    assert p.returncode == 75
    assert srv.lines[0].startswith(b"LHLO ")
    assert srv.got[0][1] == b"Subject: x\r\n\r\n..dot\r\nbody\r\n"


@needs_dovecot
def test_smtputf8_message_through_dovecot(sluice, make_dovecot):
    """Dovecot offers no SMTPUTF8: a message that came with it, for an
    ASCII mailbox, is still delivered (as Maildir delivery would)."""
    d = make_dovecot(sluice, lmtp=True)
    switch(sluice, "lmtp:unix:" + d.lmtp_socket)
    t = tag()
    msg = ("From: gr\u00fc\u00dfe@client.test\r\nSubject: %s\r\n\r\n"
           "caf\u00e9\r\n" % t).encode()
    with smtplib.SMTP("127.0.0.1", sluice.smtp_port, timeout=WAIT) as c:
        c.ehlo()
        assert not c.sendmail("good@client.test", [ADDR], msg,
                              mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    status(sluice, ADDR, "sent")
    got = sluice.wait_messages(ADDR, 1)
    assert "café".encode() in got[0]
