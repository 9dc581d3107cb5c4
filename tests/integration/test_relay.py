"""Outbound delivery end to end: a trusted client (or a local user) sends to
another domain; sluice finds its MX in our own dnsmasq and hands the message
to a real downstream server (aiosmtpd) on another loopback address."""
import smtplib

import pytest
from aiosmtpd.controller import Controller

from dns_harness import DNSMasq
from sluice_harness import tag, wait_for
from smtp_peers import Recorder, common_port


@pytest.fixture
def world(make_sluice):
    """dnsmasq with MX records for remote.test (two MX hosts), a downstream
    server on each, and a sluice relaying for 127.0.0.0/8."""
    port = common_port("127.0.0.2", "127.0.0.3")
    dns = DNSMasq([
        "--mx-host=remote.test,mx1.remote.test,10",
        "--mx-host=remote.test,mx2.remote.test,20",
        "--host-record=mx1.remote.test,127.0.0.2",
        "--host-record=mx2.remote.test,127.0.0.3",
        "--mx-host=nullmx.test,.,0",
        "--mx-host=dead.test,mx.dead.test,10",
        "--host-record=mx.dead.test,127.0.0.4",
        "--mx-host=loop.test,mx.loop.test,10",
        "--host-record=mx.loop.test,127.0.0.1",
    ])
    dns.start()
    servers = {}

    def downstream(host, replies=None):
        rec = Recorder(replies)
        ctl = Controller(rec, hostname=host, port=port)
        ctl.start()
        servers[host] = ctl
        return rec

    s = make_sluice("trusted-networks 127.0.0.0/8\nresolver %s\nsmtp-out-port %d\n"
                    "retry-interval 1s\n" % (dns.server, port))
    s.add_account("sender@example.test")
    yield s, downstream
    for ctl in servers.values():
        ctl.stop()
    dns.cleanup()


def send(s, rcpts, t, sender="sender@example.test"):
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.sendmail(sender, rcpts, ("Subject: %s\r\n\r\nbody %s\r\n" % (t, t)).encode())


def test_delivered_to_the_primary_mx(world):
    s, downstream = world
    mx1 = downstream("127.0.0.2")
    t = tag()
    send(s, ["a@remote.test", "b@remote.test"], t)
    wait_for(lambda: mx1.messages, what="the message at mx1")
    wait_for(s.queue_empty, what="the queue to empty")
    frm, rcpts, content = mx1.messages[0]
    assert frm == "sender@example.test"
    assert sorted(rcpts) == ["a@remote.test", "b@remote.test"]     # one transaction
    assert t.encode() in content and b"\r\n" not in content.replace(b"\r\n", b"")
    assert b"Received: from client.test" in content or b"Received: from" in content
    log = s.read_log()
    assert "to=<a@remote.test> relay=mx1.remote.test" in log and "status=sent" in log


def test_primary_down_goes_to_the_secondary(world):
    s, downstream = world
    mx2 = downstream("127.0.0.3")        # nothing listens on mx1
    t = tag()
    send(s, ["a@remote.test"], t)
    wait_for(lambda: mx2.messages, what="the message at mx2")
    wait_for(s.queue_empty, what="the queue to empty")
    assert len(mx2.messages) == 1


def test_temporary_failure_then_success(world):
    s, downstream = world
    t = tag()
    send(s, ["a@remote.test"], t)            # no server at all: deferred
    wait_for(lambda: "to=<a@remote.test>" in s.read_log() and "status=deferred"
             in s.read_log(), what="a deferral")
    assert "deferred" in s.cli("queue", "list").stdout
    mx1 = downstream("127.0.0.2")
    s.cli("queue", "flush")
    wait_for(lambda: mx1.messages, what="the retried message")
    wait_for(s.queue_empty, what="the queue to empty")
    assert len(mx1.messages) == 1


def test_permanent_failure_bounces_to_the_sender(world):
    s, downstream = world
    downstream("127.0.0.2", replies={"gone@remote.test": "550 5.1.1 no such user here"})
    t = tag()
    send(s, ["gone@remote.test"], t)
    dsn = s.wait_messages("sender@example.test", 1)[0]
    assert b"multipart/report" in dsn and b"Status: 5.1.1" in dsn
    assert b"Diagnostic-Code: smtp; 550 5.1.1 no such user here" in dsn
    assert t.encode() in dsn                 # the original headers
    wait_for(s.queue_empty, what="the queue to empty")


@pytest.mark.parametrize("domain,status", [
    ("nullmx.test", b"Status: 5.1.10"),
    ("nosuchdomain.test", b"Status: 5.1.2"),
    ("loop.test", b"Status: 5.4.6"),
])
def test_dns_answers_that_bounce(world, domain, status):
    s, _ = world
    send(s, ["x@" + domain], tag())
    dsn = s.wait_messages("sender@example.test", 1)[0]
    assert status in dsn, dsn[:2000]
    wait_for(s.queue_empty, what="the queue to empty")


def test_some_recipients_4xx_others_250(world):
    s, downstream = world
    mx1 = downstream("127.0.0.2", replies={"busy@remote.test": "452 4.2.2 mailbox busy"})
    t = tag()
    send(s, ["ok@remote.test", "busy@remote.test"], t)
    wait_for(lambda: mx1.messages, what="the message at mx1")
    wait_for(lambda: "to=<busy@remote.test>" in s.read_log(), what="busy's outcome")
    wait_for(lambda: s.spool_files("outgoing"), what="busy deferred")
    out = s.cli("queue", "list").stdout
    assert "busy@remote.test" in out and "deferred" in out and "mailbox busy" in out
    assert "ok@remote.test" not in out or "delivered" in out
    assert mx1.messages[0][1] == ["ok@remote.test"]


def test_local_sendmail_to_a_remote_address(world):
    s, downstream = world
    mx1 = downstream("127.0.0.2")
    t = tag()
    s.cli("sendmail", "-f", "sender@example.test", "far@remote.test",
          input="Subject: %s\n\nfrom the command line\n" % t)
    wait_for(lambda: mx1.messages, what="the message at mx1")
    assert t.encode() in mx1.messages[0][2]
