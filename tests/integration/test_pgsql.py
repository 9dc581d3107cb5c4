"""The PostgreSQL backend (issue 4) when its server goes away: a database
that does not answer is a temporary failure (P3): 451 4.3.0 at RCPT time,
queued mail deferred, never bounced; when the server is back, lookups
reconnect and delivery resumes. The server is a throwaway one of its own
(pg_harness.py), stopped and started again by the test."""
import os
import smtplib

import pytest

from pg_harness import PgServer
from sluice_harness import WAIT, Sluice, tag, wait_for

DEMO = "demo@example.test"


@pytest.fixture
def pg():
    p = PgServer()
    try:
        yield p
    finally:
        p.cleanup()


def rcpt(s, addr):
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=WAIT) as c:
        c.ehlo("client.test")
        c.mail("alice@client.test")
        return c.rcpt(addr)


def send(s, addr, t):
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=WAIT) as c:
        c.ehlo("client.test")
        c.sendmail("alice@client.test", [addr], b"Subject: %s\r\n\r\nbody %s\r\n"
                   % (t.encode(), t.encode()))


def has(s, t):
    return any(t.encode() in m for m in s.messages(DEMO))


def test_postgresql_stopped_mid_run_defers_then_recovers(pg):
    _, dsn = pg.new_database()
    s = Sluice(extra_conf="retry-interval 1s\n", database=dsn)
    try:
        s.add_domain("example.test")
        s.add_account(DEMO)
        s.start()
        t1 = tag()
        send(s, DEMO, t1)
        wait_for(lambda: has(s, t1), what="delivery with the database up")

        # the server goes away while sluiced runs: 451 4.3.0, never 550
        pg.stop()
        code, text = wait_for(lambda: (lambda r: r[0] != 250 and r)(rcpt(s, DEMO)),
                              what="RCPT to fail with the database down")
        assert code == 451 and text.startswith(b"4.3.0"), (code, text)
        code, text = rcpt(s, "nobody@example.test")
        assert code == 451 and text.startswith(b"4.3.0"), (code, text)

        # mail already in the queue (here: dropped by `sluice sendmail`
        # while sluiced was stopped) is deferred, not bounced
        s.stop()
        t2 = tag()
        r = s.cli("sendmail", "-f", "alice@client.test", DEMO,
                  input="Subject: %s\n\nbody %s\n" % (t2, t2))
        assert r.returncode == 0
        s.start()
        s.wait_log(r"to=<%s> .*status=deferred \(4\.3\.0" % DEMO)
        log = s.read_log()
        assert "status=bounced" not in log and "non-delivery" not in log
        assert "(lookups fail temporarily)" in log
        assert pg.password not in log and "***@127.0.0.1" in log
        assert not has(s, t2)

        # the server is back: the same lookup process reconnects
        pg.start()
        wait_for(lambda: has(s, t2), timeout=60, what="delivery after PostgreSQL is back")
        wait_for(lambda: rcpt(s, DEMO)[0] == 250, what="RCPT accepted again")
        assert rcpt(s, "nobody@example.test")[0] == 550
        t3 = tag()
        send(s, DEMO, t3)
        wait_for(lambda: has(s, t3), what="delivery of new mail")
        wait_for(s.queue_empty, what="the queue to empty")
        assert "status=bounced" not in s.read_log()
        assert s.sanitizer_reports() == []
    finally:
        s.cleanup()


def test_postgresql_restart_between_lookups_reconnects(pg):
    """A server restart between two lookups (the connection is broken, the
    server is up): at most one 451, then the handle reconnects."""
    _, dsn = pg.new_database()
    s = Sluice(database=dsn)
    try:
        s.add_domain("example.test")
        s.add_account(DEMO)
        s.start()
        assert rcpt(s, DEMO)[0] == 250
        pg.stop()
        pg.start()
        wait_for(lambda: rcpt(s, DEMO)[0] == 250, what="RCPT accepted after the restart")
        assert rcpt(s, "nobody@example.test")[0] == 550
    finally:
        s.cleanup()


def test_cli_on_postgresql_down(pg):
    _, dsn = pg.new_database()
    s = Sluice(database=dsn)
    try:
        s.add_domain("example.test")
        pg.stop()
        r = s.cli("domain", "add", "other.test", check=False)
        assert r.returncode != 0 and "postgresql: connection to server" in r.stderr
        assert pg.password not in r.stderr
        pg.start()
        s.add_domain("other.test")
        assert "other.test" in s.cli("domain", "list").stdout
    finally:
        s.cleanup()
