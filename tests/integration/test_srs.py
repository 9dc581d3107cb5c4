"""Sender rewriting (issue 5 part 5): an alias that forwards offsite sends
with an SRS address as the envelope sender, so SPF at the destination
checks our domain; a bounce to that address goes back to the original
sender; forged, expired and malformed SRS addresses are refused at RCPT.

The downstream servers are aiosmtpd on loopback addresses, reached by
routes to their IP addresses (no DNS). The test has its own copy of the
SRS algorithm (docs/config.md) to forge and check addresses.
"""
import hashlib
import hmac
import os
import smtplib
import subprocess
import textwrap
import time

import pytest
from aiosmtpd.controller import Controller

from sluice_harness import SLUICE, RawSMTP, tag, wait_for
from smtp_peers import Recorder, common_port

OFFSITE, SENDER = "127.0.0.81", "127.0.0.82"
SECRET = "first-secret-0123456789"
OLD = "an-older-secret-still-valid"
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
HOST = "mx.example.test"         # the harness's hostname: the srs-domain


def stamp(now):
    d = int(now // 86400) % 1024
    return B32[d >> 5] + B32[d & 31]


def srs_hash(secret, *fields):
    md = hmac.new(secret.encode(), "=".join(fields).lower().encode(),
                  hashlib.sha256).digest()
    v = int.from_bytes(md[:4], "big")
    return "".join(B32[(v >> (27 - 5 * i)) & 31] for i in range(6))


def srs0(secret, sender, now=None, domain=HOST):
    local, _, dom = sender.rpartition("@")
    tt = stamp(time.time() if now is None else now)
    return "SRS0=%s=%s=%s=%s@%s" % (srs_hash(secret, tt, dom, local), tt, dom,
                                    local, domain)


@pytest.fixture
def peers():
    """Two downstream servers on one port: the offsite forward target
    (offsite.test) and the original sender's server (sender.test)."""
    port = common_port(OFFSITE, SENDER)
    recs = {"offsite": Recorder(), "sender": Recorder(), "port": port}
    ctls = []
    for host, name in ((OFFSITE, "offsite"), (SENDER, "sender")):
        ctl = Controller(recs[name], hostname=host, port=port)
        ctl.start()
        ctls.append(ctl)
    yield recs
    for c in ctls:
        c.stop()


def start(make_sluice, peers, extra="", secrets=SECRET + " " + OLD,
          routes=None):
    s = make_sluice(extra, start=False)
    path = os.path.join(s.dir, "aliases")
    with open(path, "w") as f:
        f.write(textwrap.dedent("""\
            fwd@example.test: someone@offsite.test
            both@example.test: someone@offsite.test, demo@example.test
            """))
    os.chmod(path, 0o644)
    port = peers["port"]
    with open(s.conf, "a") as f:
        f.write("aliases %s\nretry-interval 1s\n" % path)
        if secrets:
            f.write("srs-secret %s\n" % secrets)
        f.write(routes or "route offsite.test via %s:%d\n"
                "route sender.test via %s:%d\n" % (OFFSITE, port, SENDER, port))
    s.start()
    return s


def send(s, sender, rcpts, t):
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.sendmail(sender, rcpts, ("From: <%s>\r\nSubject: %s\r\n\r\nbody %s\r\n"
                                   % (sender or "mailer-daemon@x.test", t, t)).encode())


def rcpt_reply(s, rcpt, sender=""):
    with RawSMTP(s.smtp_port) as c:
        c.ehlo()
        c.expect(250, line="MAIL FROM:<%s>" % sender)
        return c.cmd("RCPT TO:<%s>" % rcpt)


def test_forward_rewrites_sender_and_bounce_returns(make_sluice, peers):
    s = start(make_sluice, peers)
    t = tag()
    send(s, "alice@sender.test", ["fwd@example.test"], t)
    off = peers["offsite"]
    wait_for(lambda: off.messages, what="the forwarded message offsite")
    sender, rcpts, content = off.messages[0]
    assert rcpts == ["someone@offsite.test"] and t.encode() in content
    # exactly what the algorithm gives, signed with the first secret
    assert sender == srs0(SECRET, "alice@sender.test"), sender
    wait_for(s.queue_empty, what="the queue to empty")
    assert "srs=<%s>" % sender in s.read_log()

    # the far side bounces to the SRS address: it reaches alice's server
    b = tag()
    send(s, "", [sender], b)
    home = peers["sender"]
    wait_for(lambda: home.messages, what="the bounce at the sender's server")
    bs, brcpts, bcontent = home.messages[0]
    assert bs == "<>" and brcpts == ["alice@sender.test"] and b.encode() in bcontent
    wait_for(s.queue_empty, what="the queue to empty")
    # case does not matter (a mail system may lower-case the local part)
    assert rcpt_reply(s, sender.lower())[0] == 250


def test_local_sender_and_null_sender_not_rewritten(make_sluice, peers):
    s = start(make_sluice, peers)
    off = peers["offsite"]
    send(s, "demo@example.test", ["fwd@example.test"], tag())
    send(s, "postmaster@mx.example.test", ["fwd@example.test"], tag())
    send(s, "", ["fwd@example.test"], tag())
    wait_for(lambda: len(off.messages) == 3, what="three messages offsite")
    assert sorted(m[0] for m in off.messages) == [   # aiosmtpd: "<>" is null
        "<>", "demo@example.test", "postmaster@mx.example.test"]
    wait_for(s.queue_empty, what="the queue to empty")
    assert "srs=" not in s.read_log()


def test_without_secret_forwarding_keeps_sender(make_sluice, peers):
    s = start(make_sluice, peers, secrets=None)
    send(s, "alice@sender.test", ["fwd@example.test"], tag())
    off = peers["offsite"]
    wait_for(lambda: off.messages, what="the forwarded message offsite")
    assert off.messages[0][0] == "alice@sender.test"
    # and SRS addresses are nobody
    assert rcpt_reply(s, srs0(SECRET, "alice@sender.test"))[0] == 550


def test_split_chunk_per_sender(make_sluice, peers):
    """One message: a forwarded recipient (SRS sender) and a relayed one
    (its own sender) at the same destination: two transactions; the
    local target of the same alias is delivered as usual."""
    s = start(make_sluice, peers, extra="trusted-networks 127.0.0.0/8\n")
    t = tag()
    send(s, "alice@sender.test", ["both@example.test", "other@offsite.test"], t)
    off = peers["offsite"]
    wait_for(lambda: len(off.messages) == 2, what="two transactions offsite")
    by_rcpt = {tuple(m[1]): m[0] for m in off.messages}
    assert by_rcpt[("someone@offsite.test",)] == srs0(SECRET, "alice@sender.test")
    assert by_rcpt[("other@offsite.test",)] == "alice@sender.test"
    s.wait_messages("demo@example.test", 1)
    wait_for(s.queue_empty, what="the queue to empty")


def test_route_rewrite_sender_wins(make_sluice, peers):
    port = peers["port"]
    s = start(make_sluice, peers, routes="route offsite.test via %s:%d "
              "rewrite-sender relay@example.test\n" % (OFFSITE, port))
    send(s, "alice@sender.test", ["fwd@example.test"], tag())
    off = peers["offsite"]
    wait_for(lambda: off.messages, what="the forwarded message offsite")
    assert off.messages[0][0] == "relay@example.test"


def test_bad_srs_addresses_refused_at_rcpt(make_sluice, peers):
    s = start(make_sluice, peers, extra="srs-max-age 2\n")
    good = srs0(SECRET, "alice@sender.test")
    assert rcpt_reply(s, good)[0] == 250
    # a tampered hash
    h = good[5:11]
    bad = good.replace(h, ("A" if h[0] != "A" else "B") + h[1:], 1)
    code, text = rcpt_reply(s, bad)
    assert code == 550 and text.startswith("5.1.1"), (code, text)
    # a tampered address with the old hash
    code, _ = rcpt_reply(s, good.replace("=alice@", "=mallory@"))
    assert code == 550
    # expired: a correct hash over a stamp five days old (max-age 2)
    old = srs0(SECRET, "alice@sender.test", now=time.time() - 5 * 86400)
    code, text = rcpt_reply(s, old)
    assert code == 550 and text.startswith("5.1.1"), (code, text)
    # two days old is still fine
    assert rcpt_reply(s, srs0(SECRET, "alice@sender.test",
                              now=time.time() - 2 * 86400))[0] == 250
    # malformed
    for addr in ("SRS0=@mx.example.test", "SRS0=abc@mx.example.test",
                 "SRS0=ABCDEF=AA=@mx.example.test",
                 "SRS1=ABCDEF=x.test@mx.example.test",
                 "SRS0=%s=%s=sender.test=@example.test" % (h, good[12:14])):
        code, text = rcpt_reply(s, addr)
        assert code == 550 and text.startswith("5.1.1"), (addr, code, text)
    # an SRS address at another local domain works too
    assert rcpt_reply(s, srs0(SECRET, "alice@sender.test",
                              domain="example.test"))[0] == 250
    # nothing was queued, nothing bounced (no backscatter)
    assert s.queue_empty()
    log = s.read_log()
    assert "SRS hash does not verify" in log and "SRS address expired" in log


def test_overlong_sender_kept(make_sluice, peers):
    """A sender whose SRS form would pass 64 octets is sent as it is."""
    s = start(make_sluice, peers)
    sender = "a" * 50 + "@sender.test"
    send(s, sender, ["fwd@example.test"], tag())
    off = peers["offsite"]
    wait_for(lambda: off.messages, what="the forwarded message offsite")
    assert off.messages[0][0] == sender
    assert "srs=none (SRS address too long" in s.read_log()


def test_rotation_old_secret_still_reverses(make_sluice, peers):
    s = start(make_sluice, peers)       # srs-secret SECRET OLD
    addr = srs0(OLD, "alice@sender.test")
    t = tag()
    send(s, "", [addr], t)
    home = peers["sender"]
    wait_for(lambda: home.messages, what="the bounce at the sender's server")
    assert home.messages[0][1] == ["alice@sender.test"]
    # the new secret signs
    send(s, "alice@sender.test", ["fwd@example.test"], tag())
    off = peers["offsite"]
    wait_for(lambda: off.messages, what="the forwarded message offsite")
    assert off.messages[0][0] == srs0(SECRET, "alice@sender.test")


def test_srs1_for_another_forwarders_address(make_sluice, peers):
    """A sender that is an SRS0 address of another forwarder becomes SRS1
    at ours; its bounce goes back to that forwarder's SRS0 address."""
    s = start(make_sluice, peers)
    first = srs0("their secret, not ours", "alice@elsewhere.test",
                 domain="sender.test")
    send(s, first, ["fwd@example.test"], tag())
    off = peers["offsite"]
    wait_for(lambda: off.messages, what="the forwarded message offsite")
    got = off.messages[0][0]
    assert got.startswith("SRS1=") and got.endswith("=sender.test==" +
                                                    first[5:].split("@")[0] + "@" + HOST), got
    send(s, "", [got], tag())
    home = peers["sender"]
    wait_for(lambda: home.messages, what="the bounce at the first forwarder")
    assert home.messages[0][1] == [first]


def check(conf_text, tmp_path):
    p = tmp_path / "sluice.conf"
    p.write_text(conf_text)
    return subprocess.run([SLUICE, "-c", str(p), "check", "--dump"],
                          capture_output=True, text=True)


def test_check_refuses_short_secret_and_masks(tmp_path):
    base = "hostname mx.example.test\ndatabase sqlite:%s/db\n" % tmp_path
    r = check(base + "srs-secret tooshort\n", tmp_path)
    assert r.returncode != 0
    assert "sluice.conf:3: srs-secret: secret 1 is 8 characters" in r.stderr + r.stdout
    assert "tooshort" not in r.stderr + r.stdout
    r = check(base + "srs-secret %s %s\nsrs-domain srs.example.test\n"
              % (SECRET, OLD), tmp_path)
    assert r.returncode == 0, r.stderr
    assert "srs-secret ******** ********" in r.stdout
    assert SECRET not in r.stdout and OLD not in r.stdout
    assert "srs-domain srs.example.test" in r.stdout


def test_database_alias_forward_rewritten(make_sluice, peers):
    """The same for an alias in the database (sluice alias add)."""
    s = start(make_sluice, peers)
    s.cli("alias", "add", "dbfwd@example.test", "someone@offsite.test")
    send(s, "carol@sender.test", ["dbfwd@example.test"], tag())
    off = peers["offsite"]
    wait_for(lambda: off.messages, what="the forwarded message offsite")
    assert off.messages[0][0] == srs0(SECRET, "carol@sender.test")
    assert off.messages[0][1] == ["someone@offsite.test"]
