"""Issue 3, "Bad input and faults", for the whole running server: a message
for a remote domain goes into a real sluiced (SMTP from a trusted network,
or `sluice sendmail`), its MX comes from our own dnsmasq, and the mail
exchanger is a server started here that misbehaves in one way. Each test
checks three things:

  - the recipient's state and last error in `sluice queue list --json`
    (deferred with the 4xx text, or bounced with a DSN in the sender's
    Maildir and the message removed);
  - the log line of that outcome;
  - nothing lost or duplicated: what the downstream received is counted, a
    deferred message is in the queue exactly once, and once the downstream
    behaves, `sluice queue flush` delivers it exactly once.

The downstream servers and dnsmasq listen on 127.0.0.40-59 (tests of other
files use 127.0.0.1-3 at the same time), on random ports; sluiced listens
where the harness puts it (127.0.0.1, random ports). Retries are an hour
apart, so only a flush retries. The smtp_client tool's view of the same
faults is in test_smtp_client.py."""
import json
import os
import re
import shutil
import smtplib
import socket

import pytest
from aiosmtpd.controller import Controller

from dns_harness import DNSMasq
from sluice_harness import RUN_USER, tag, wait_for
from smtp_peers import (Recorder, RawServer, common_port, mini_smtp,
                        starttls_then_garbage, until_data)

SENDER = "sender@example.test"
DNS_HOST = "127.0.0.59"
BIG = 50            # MX records of big.test

# one mail exchanger address per fault
H = {
    "refused": "127.0.0.40", "drop": "127.0.0.41", "busy": "127.0.0.42",
    "slow": "127.0.0.43", "partial": "127.0.0.44", "garbage": "127.0.0.45",
    "longline": "127.0.0.46", "tls": "127.0.0.47", "halfghost": "127.0.0.48",
    "cname": "127.0.0.49", "evil": "127.0.0.54",
    "big1": "127.0.0.50", "big2": "127.0.0.51", "big3": "127.0.0.52",
    "bigrest": "127.0.0.53",
}

# smtp-out-timeout caps every outbound SMTP timeout (RFC 5321's are minutes)
OUT_TIMEOUT_CONF = "smtp-out-timeout 2s"


def records():
    r = []
    for name in ("refused", "drop", "busy", "slow", "partial", "garbage",
                 "longline", "tls", "evil"):
        r += ["--mx-host=%s.test,mx.%s.test,10" % (name, name),
              "--host-record=mx.%s.test,%s" % (name, H[name])]
    r += [
        # MX hosts without an address: NXDOMAIN, and a name with only a TXT
        "--mx-host=ghost.test,ghost1.ghost.test,10",
        "--mx-host=ghost.test,ghost2.ghost.test,20",
        "--txt-record=ghost2.ghost.test,no address here",
        "--mx-host=halfghost.test,ghost1.ghost.test,10",
        "--mx-host=halfghost.test,mx.halfghost.test,20",
        "--host-record=mx.halfghost.test," + H["halfghost"],
        # the only MX is us (sluice listens on 127.0.0.1)
        "--mx-host=loop.test,mx.loop.test,10",
        "--host-record=mx.loop.test,127.0.0.1",
        # CNAME chains: to the MX host, for the domain's MX query, and for
        # a domain without MX (implicit MX through the chain)
        "--mx-host=viacname.test,mxalias.viacname.test,10",
        "--cname=mxalias.viacname.test,mxalias2.viacname.test",
        "--cname=mxalias2.viacname.test,mxreal.viacname.test",
        "--host-record=mxreal.viacname.test," + H["cname"],
        "--cname=aliasdom.test,viacname.test",
        "--cname=alias1.test,alias2.test",
        "--cname=alias2.test,plain.test",
        "--host-record=plain.test," + H["cname"],
    ]
    # 50 MX records, each preference once: mx1 and mx2 refuse, mx3 is the
    # best reachable one, mx4 and beyond would take mail too
    for i in range(1, BIG + 1):
        addr = H["big%d" % i] if i <= 3 else H["bigrest"]
        r += ["--mx-host=big.test,mx%d.big.test,%d" % (i, 10 * i),
              "--host-record=mx%d.big.test,%s" % (i, addr)]
    return r


@pytest.fixture(scope="module")
def dns():
    with DNSMasq(records(), host=DNS_HOST) as d:
        yield d


class World:
    """One sluice relaying for 127.0.0.0/8 through our dnsmasq, and the
    downstream servers of one test, all on port self.port."""

    def __init__(self, make_sluice, dns, hosts, args=(), conf="", out_port=None):
        self.port = common_port(*hosts) if hosts else None
        self.s = make_sluice("trusted-networks 127.0.0.0/8\nresolver %s\n"
                             "retry-interval 1h\n%s" % (dns.server, conf),
                             start=False)
        if out_port is not None:
            self.port = out_port(self.s)
        with open(self.s.conf, "a") as f:
            f.write("smtp-out-port %d\n" % self.port)
        self.s.add_account(SENDER)
        self.s.start(args=args)
        self.closers = []

    def raw(self, host, script):
        srv = RawServer(script, host=host, port=self.port)
        self.closers.append(srv.close)
        return srv

    def aiosmtp(self, host, replies=None):
        rec = Recorder(replies)
        ctl = Controller(rec, hostname=host, port=self.port)
        ctl.start()
        self.closers.append(ctl.stop)
        return rec

    def closed(self, host):
        """A port bound but not listening: a connection is refused, and
        nobody else can take the port meanwhile."""
        sock = socket.socket()
        sock.bind((host, self.port))
        self.closers.append(sock.close)
        return sock

    def close(self):
        for c in reversed(self.closers):
            c()


@pytest.fixture
def world(make_sluice, dns):
    made = []

    def make(*hosts, **kw):
        w = World(make_sluice, dns, hosts, **kw)
        made.append(w)
        return w
    yield make
    for w in made:
        w.close()
        log = w.s.read_log()
        assert w.s.sanitizer_reports() == []
        # a fault downstream never costs the relay process its life
        masters = re.findall(r"master\[(\d+)\]: started relay process", log)
        assert masters and len(masters) == len(set(masters)), log


# ---- helpers ----

def submit(s, rcpts, t):
    """One message over SMTP from a trusted client; its queue ID."""
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.ehlo("client.test")
        c.mail(SENDER)
        for r in rcpts:
            code, text = c.rcpt(r)
            assert code == 250, (r, code, text)
        code, text = c.data(("From: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n"
                             % (SENDER, t, t)).encode())
    assert code == 250, (code, text)
    return text.decode().split()[-1]


def queue(s):
    return json.loads(s.cli("queue", "list", "--json").stdout)


def rcpt_entry(s, qid, addr):
    """The recipient's record in the queue (outgoing/, where a message
    waits between attempts), or None."""
    for m in queue(s):
        if m["id"] == qid and m["queue"] == "outgoing":
            for r in m["recipients"]:
                if r["address"] == addr:
                    return r
    return None


OUTCOME = r"^\S+ queue\[\d+\]: %s: to=<%s> relay=(\S+) delay=\S+ status=(\w+) \((.*)\)$"


def outcome(s, qid, addr, status, relay=None, nth=1):
    """Wait for the nth log line about addr's outcome (one per attempt),
    check its status and relay; returns its text."""
    pat = re.compile(OUTCOME % (qid, re.escape(addr)), re.M)
    lines = wait_for(lambda: (lambda l: l if len(l) >= nth else None)(
        pat.findall(s.read_log())), what="outcome %d of %s" % (nth, addr))
    assert len(lines) == nth, lines            # no attempt nobody asked for
    got_relay, got_status, text = lines[nth - 1]
    assert got_status == status, (addr, lines)
    if relay is not None:
        assert got_relay == relay, (addr, lines)
    return text


def relay_of(host, addr, port):
    """The relay= field of the log."""
    return "%s[%s]:%d" % (host, addr, port)


def assert_deferred(w, qid, addr, text_re, relay, attempt=1, no_dsn=True):
    """addr is deferred (attempt times) with a text matching text_re, in
    the log and in the queue; the message is in the queue once, and
    (no_dsn) nothing bounced. Returns the text."""
    s = w.s
    text = outcome(s, qid, addr, "deferred", relay, nth=attempt)
    assert re.match(text_re, text), text
    # the state write follows the log line
    r = wait_for(lambda: (lambda e: e if e and e["state"] == "deferred" and
                          e["attempts"] == attempt else None)(rcpt_entry(s, qid, addr)),
                 what="%s deferred in the queue" % addr)
    assert r["error"] == text
    assert_once(s, qid)
    if no_dsn:
        assert s.messages(SENDER) == []      # P3: no DSN for a deferral
    return text


def assert_once(s, qid):
    """The message is in the queue exactly once, and nothing else is.
    (While it moves from incoming/ to outgoing/ the listing may show it
    twice: see test_queue_list_while_a_message_moves.)"""
    wait_for(lambda: [m["id"] for m in queue(s)] == [qid],
             what="%s alone in the queue listing" % qid)
    assert s.spool_files("outgoing") == [qid] and s.spool_files("incoming") == []


def flush(s):
    assert s.cli("queue", "flush").stdout.strip() == "flush: 1 message(s)"


def flush_delivers(w, qid, addr, relay, received, nth):
    """After `queue flush`, addr is delivered (its nth outcome) and the
    message removed; received() then counts the copies downstream."""
    s = w.s
    flush(s)
    outcome(s, qid, addr, "sent", relay, nth=nth)
    s.wait_log(r": %s: removed$" % qid)
    wait_for(s.queue_empty, what="the queue to empty")
    assert received() == 1
    assert s.messages(SENDER) == []


def fault_cycle(w, qid, addr, text_re, relay, received, heal):
    """The common life of a message at a faulty mail exchanger: deferred;
    flushed, deferred again, still once in the queue, nothing received;
    heal() fixes the exchanger and a flush delivers it exactly once."""
    assert_deferred(w, qid, addr, text_re, relay)
    assert received() == 0
    flush(w.s)
    assert_deferred(w, qid, addr, text_re, relay, attempt=2)
    assert received() == 0
    heal()
    flush_delivers(w, qid, addr, relay, received, nth=3)


def data_count(srv, t):
    return sum(1 for d in srv.record.get("data", []) if t.encode() in d)


def rec_count(rec, t, addr=None):
    return sum(1 for frm, rcpts, content in rec.messages
               if t.encode() in content and (addr is None or addr in rcpts))


def healing(fault):
    """A raw server script that misbehaves until srv.healed is set, then
    is a plain SMTP server."""
    def script(srv, c, n):
        if getattr(srv, "healed", False):
            return mini_smtp(srv, c)
        return fault(srv, c, n)
    return script


def heal(srv):
    def f():
        srv.healed = True
    return f


def bounce_dsn(s, qid, addr, status):
    """addr bounced with status: log line, one DSN in the sender's
    Maildir naming addr, the message removed. Returns the DSN."""
    text = outcome(s, qid, addr, "bounced", "none")
    assert text.startswith(status + " "), text
    s.wait_log(r": %s: sender non-delivery notification: \w+$" % qid)
    dsns = s.wait_messages(SENDER, 1)
    s.wait_log(r": %s: removed$" % qid)
    wait_for(s.queue_empty, what="the queue to empty")
    assert len(s.messages(SENDER)) == 1
    dsn = dsns[0]
    assert b"Final-Recipient: rfc822; " + addr.encode() in dsn, dsn[:3000]
    assert b"Status: " + status.encode() in dsn, dsn[:3000]
    assert b"Diagnostic-Code: x-sluice; " + text.encode() in dsn, dsn[:3000]
    return dsn


# ---- the mail exchanger fails ----

def test_connection_refused(world):
    w = world(H["refused"])
    sock = w.closed(H["refused"])
    recs = []

    def heal():
        sock.close()
        recs.append(w.aiosmtp(H["refused"]))
    t = tag()
    qid = submit(w.s, ["a@refused.test"], t)
    fault_cycle(w, qid, "a@refused.test",
                r"4\.4\.1 connection failed \(connect\): Connection refused$",
                relay_of("mx.refused.test", H["refused"], w.port),
                lambda: rec_count(recs[0], t) if recs else 0, heal)


def test_connection_dropped_after_banner(world):
    w = world(H["drop"])
    srv = w.raw(H["drop"], healing(lambda srv, c, n: c.send("220 raw.test ESMTP")))
    t = tag()
    qid = submit(w.s, ["a@drop.test"], t)
    fault_cycle(w, qid, "a@drop.test", r"4\.4\.2 connection lost \(EHLO\)",
                relay_of("mx.drop.test", H["drop"], w.port),
                lambda: data_count(srv, t), heal(srv))
    assert srv.conns == 3


def test_421_at_banner(world):
    def busy(srv, c, n):
        c.send("421 4.3.2 raw.test busy, try later")
        try:
            while True:
                srv.record.setdefault("after", []).append(c.line())
        finally:
            srv.record["closed"] = n
    w = world(H["busy"])
    srv = w.raw(H["busy"], healing(busy))
    t = tag()
    qid = submit(w.s, ["a@busy.test"], t)
    relay = relay_of("mx.busy.test", H["busy"], w.port)
    assert_deferred(w, qid, "a@busy.test",
                    r"421 4\.3\.2 raw\.test busy, try later \(in reply to banner\)$",
                    relay)
    # nothing but a QUIT after a 421, then the client hangs up
    wait_for(lambda: srv.record.get("closed") == 1, what="the client to hang up")
    assert all(l.upper() == "QUIT" for l in srv.record.get("after", [])), srv.record
    flush(w.s)
    assert_deferred(w, qid, "a@busy.test", r"421 4\.3\.2 ", relay, attempt=2)
    srv.healed = True
    flush_delivers(w, qid, "a@busy.test", relay, lambda: data_count(srv, t), nth=3)
    assert srv.conns == 3


def test_timeout_mid_data(world):
    """The exchanger stops reading in the middle of the body."""
    def stalls(srv, c, n):
        until_data(c)
        srv.record["stalled"] = n
        # read no more until the test is done with the timeout
        wait_for(lambda: getattr(srv, "healed", False), timeout=3600)
    w = world(H["slow"], conf=(OUT_TIMEOUT_CONF or "") + "\n")
    srv = w.raw(H["slow"], healing(stalls))
    t = tag()
    with smtplib.SMTP("127.0.0.1", w.s.smtp_port) as c:
        # big enough to fill the socket buffers once the peer stops reading
        body = "".join("%08d %s\r\n" % (i, t) for i in range(200000))
        c.sendmail(SENDER, ["a@slow.test"], "Subject: %s\r\n\r\n%s" % (t, body))
    qid = w.s.wait_log(r"queue\[\d+\]: (\w+): queued from=").group(1)
    relay = relay_of("mx.slow.test", H["slow"], w.port)
    assert_deferred(w, qid, "a@slow.test", r"4\.4\.2 timeout \(message body\)", relay)
    assert srv.record["stalled"] == 1 and data_count(srv, t) == 0
    srv.healed = True
    flush_delivers(w, qid, "a@slow.test", relay, lambda: data_count(srv, t), nth=2)


def test_452_to_some_recipients(world):
    """The 250 recipients are delivered once, in one transaction; the 452
    ones are deferred and delivered once on the next flush, alone."""
    w = world(H["partial"])
    rec = w.aiosmtp(H["partial"], replies={
        "busy@partial.test": "452 4.2.2 mailbox busy",
        "full@partial.test": "452 4.2.2 mailbox full"})
    t = tag()
    rcpts = ["ok@partial.test", "busy@partial.test", "ok2@partial.test",
             "full@partial.test"]
    qid = submit(w.s, rcpts, t)
    relay = relay_of("mx.partial.test", H["partial"], w.port)
    for addr, why in (("busy@partial.test", "busy"), ("full@partial.test", "full")):
        assert_deferred(w, qid, addr, r"452 4\.2\.2 mailbox %s$" % why, relay)
    for addr in ("ok@partial.test", "ok2@partial.test"):
        outcome(w.s, qid, addr, "sent", relay)
        r = rcpt_entry(w.s, qid, addr)
        assert r["state"] == "delivered" and r["error"] == "", r
    assert [r for _, r, _ in rec.messages] == [["ok@partial.test", "ok2@partial.test"]]
    rec.replies.clear()
    flush(w.s)
    for addr in ("busy@partial.test", "full@partial.test"):
        outcome(w.s, qid, addr, "sent", relay, nth=2)
    w.s.wait_log(r": %s: removed$" % qid)
    wait_for(w.s.queue_empty, what="the queue to empty")
    for addr in ("ok@partial.test", "ok2@partial.test"):
        outcome(w.s, qid, addr, "sent", relay)       # still the only line
    assert [sorted(r) for _, r, _ in rec.messages] == [
        ["ok2@partial.test", "ok@partial.test"],
        ["busy@partial.test", "full@partial.test"]]
    for addr in rcpts:
        assert rec_count(rec, t, addr) == 1, addr
    assert w.s.messages(SENDER) == []


def test_garbage_reply(world):
    def garbage(srv, c, n):
        c.send("220 raw.test ESMTP")
        c.line()
        c.send(b"I am not an SMTP server \x1b[2J\x00\xff\xfe\r\n")
        while True:
            c.line()
    w = world(H["garbage"])
    srv = w.raw(H["garbage"], healing(garbage))
    t = tag()
    qid = submit(w.s, ["a@garbage.test"], t)
    fault_cycle(w, qid, "a@garbage.test", r"4\.5\.0 protocol error \(EHLO\)",
                relay_of("mx.garbage.test", H["garbage"], w.port),
                lambda: data_count(srv, t), heal(srv))


def evil_replies(srv, c, n):
    """Well-formed replies whose text has terminal escapes and control
    characters (and, for rcpt 8bit-*, bytes that are not UTF-8)."""
    c.send("220 raw.test ESMTP")
    while True:
        line = c.line()
        verb = line[:4].upper()
        eight = b" caf\xc3\xa9 \xff\xfe" if "8bit-" in line else b""
        if verb == "EHLO":
            c.send("250 raw.test")
        elif verb == "RCPT" and "temp" in line:
            c.send(b"451 4.3.0 \x1b]0;owned\x07 busy\x1b[2J" + eight + b" later\x7f\r\n")
        elif verb == "RCPT":
            c.send(b"550 5.1.1 \x1b[31mno\x1b[0m such\x08\x08 user" + eight + b"\r\n")
        elif verb == "QUIT":
            c.send("221 2.0.0 Bye")
            return
        else:
            c.send("250 2.0.0 Ok")


def assert_clean(b, what):
    """No C0 control (but line ends) nor DEL in b."""
    bad = re.findall(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", b)
    assert not bad, "%s: %r" % (what, b[-3000:])


def test_reply_text_with_control_characters(world):
    """P7: a remote reply's text is sanitised before it is logged, stored
    as the last error or put in a DSN."""
    w = world(H["evil"])
    w.raw(H["evil"], evil_replies)
    t = tag()
    qid = submit(w.s, ["temp@evil.test", "perm@evil.test"], t)
    relay = relay_of("mx.evil.test", H["evil"], w.port)
    text = assert_deferred(w, qid, "temp@evil.test", r"451 4\.3\.0 .*busy.*later",
                           relay, no_dsn=False)
    assert "\x1b" not in text and "\x07" not in text and "\x7f" not in text
    perm = outcome(w.s, qid, "perm@evil.test", "bounced", relay)
    assert re.match(r"550 5\.1\.1 .*no.* such.* user$", perm), perm
    s = w.s
    s.wait_log(r": %s: sender non-delivery notification: \w+$" % qid)
    dsn = s.wait_messages(SENDER, 1)[0]
    assert b"Final-Recipient: rfc822; perm@evil.test" in dsn
    assert b"temp@evil.test" not in dsn
    assert_clean(dsn, "DSN")
    assert_clean(open(s.logfile, "rb").read(), "log")
    wait_for(lambda: (rcpt_entry(s, qid, "perm@evil.test") or {}).get("state")
             == "bounced", what="perm bounced in the queue")
    assert rcpt_entry(s, qid, "perm@evil.test")["error"] == perm


def test_reply_text_with_8bit_bytes(world):
    w = world(H["evil"])
    w.raw(H["evil"], evil_replies)
    t = tag()
    qid = submit(w.s, ["temp-8bit-@evil.test", "perm-8bit-@evil.test"], t)
    relay = relay_of("mx.evil.test", H["evil"], w.port)
    outcome(w.s, qid, "temp-8bit-@evil.test", "deferred", relay)
    outcome(w.s, qid, "perm-8bit-@evil.test", "bounced", relay)
    dsn = w.s.wait_messages(SENDER, 1)[0]
    wait_for(lambda: w.s.spool_files("outgoing"), what="the state write")
    out = w.s.cli("queue", "list", "--json", input=b"").stdout
    try:
        json.loads(out.decode("utf-8"))
    except ValueError as e:      # UnicodeDecodeError is one
        raise AssertionError("queue list --json: %s: %r" % (e, out[-400:]))
    assert not re.search(rb"[\x80-\xff]", dsn), dsn[-1500:]
    assert not re.search(rb"[\x80-\xff]", open(w.s.logfile, "rb").read())


def test_ten_megabyte_line(world):
    w = world(H["longline"])
    srv = w.raw(H["longline"], healing(
        lambda srv, c, n: c.send(b"220 " + b"x" * (10 << 20) + b"\r\n")))
    t = tag()
    qid = submit(w.s, ["a@longline.test"], t)
    fault_cycle(w, qid, "a@longline.test",
                r"4\.5\.0 protocol error \(banner\): reply line too long$",
                relay_of("mx.longline.test", H["longline"], w.port),
                lambda: data_count(srv, t), heal(srv))


def test_starttls_handshake_fails_then_clear(world):
    """Opportunistic TLS: a failed handshake is retried on the same
    address without TLS, and the message is delivered once."""
    w = world(H["tls"])
    srv = w.raw(H["tls"], starttls_then_garbage)
    t = tag()
    qid = submit(w.s, ["a@tls.test"], t)
    relay = relay_of("mx.tls.test", H["tls"], w.port)
    outcome(w.s, qid, "a@tls.test", "sent", relay)
    w.s.wait_log(r": %s: removed$" % qid)
    wait_for(w.s.queue_empty, what="the queue to empty")
    # said without -v: the operator sees that this peer got clear text
    assert w.s.log_search(r"relay\[\d+\]: %s: relay=%s STARTTLS failed "
                          r"\(4\.7\.5 TLS handshake failed.*\), trying again "
                          r"without TLS" % (qid, re.escape(relay))), \
        w.s.read_log()
    assert srv.record.get("starttls") == 1 and srv.conns == 2, srv.record
    assert data_count(srv, t) == 1
    assert not srv.errors, srv.errors
    assert w.s.messages(SENDER) == []


# ---- the queue's view of a deferred message in the middle of its move ----

def partial_then_both_copies(world):
    """ok@ delivered, busy@ deferred (452); then, sluiced stopped, the
    spool as a state write leaves it for a moment (docs/queue.md, "State
    updates"): the new envelope in outgoing/ and the old one, both
    recipients pending, still in incoming/."""
    w = world(H["partial"])
    rec = w.aiosmtp(H["partial"], replies={"busy@partial.test": "452 4.2.2 busy"})
    t = tag()
    qid = submit(w.s, ["ok@partial.test", "busy@partial.test"], t)
    relay = relay_of("mx.partial.test", H["partial"], w.port)
    outcome(w.s, qid, "ok@partial.test", "sent", relay)
    assert_deferred(w, qid, "busy@partial.test", r"452 4\.2\.2 busy$", relay)
    w.s.stop()
    src = os.path.join(w.s.spool, "outgoing", qid)
    with open(src) as f:
        old = [re.sub(r"^rcpt \w+ \d+ \d+ ", "rcpt pending 0 0 ", l)
               for l in f.read().splitlines() if not l.startswith("rcpt-error ")]
    dst = os.path.join(w.s.spool, "incoming", qid)
    with open(dst, "w") as f:
        f.write("\n".join(old) + "\n")
    shutil.copystat(src, dst)
    if os.geteuid() == 0:
        shutil.chown(dst, RUN_USER, RUN_USER)
    return w, rec, qid, t, relay


def test_queue_list_while_a_message_moves(world):
    w, rec, qid, t, relay = partial_then_both_copies(world)
    q = queue(w.s)
    assert [(m["id"], m["queue"]) for m in q] == [(qid, "outgoing")], q


def test_recovery_keeps_the_newer_copy(world):
    """A crash between the state write and the removal from incoming/:
    the restarted queue keeps outgoing/'s state, ok@ is not sent again."""
    w, rec, qid, t, relay = partial_then_both_copies(world)
    w.s.start()
    wait_for(lambda: w.s.spool_files("incoming") == [], what="incoming/ cleaned")
    assert_once(w.s, qid)
    rec.replies.clear()
    flush(w.s)
    outcome(w.s, qid, "busy@partial.test", "sent", relay, nth=2)
    w.s.wait_log(r": %s: removed$" % qid)
    wait_for(w.s.queue_empty, what="the queue to empty")
    assert rec_count(rec, t, "ok@partial.test") == 1
    assert rec_count(rec, t, "busy@partial.test") == 1
    outcome(w.s, qid, "ok@partial.test", "sent", relay)     # still one line


# ---- what DNS says ----

def test_mx_without_address(world):
    """Every MX of ghost.test has no address (NXDOMAIN, no A/AAAA): a
    bounce (5.4.4); halfghost.test's better MX has none, its other one
    takes the mail."""
    w = world(H["halfghost"])
    rec = w.aiosmtp(H["halfghost"])
    t = tag()
    qid = submit(w.s, ["a@ghost.test", "b@halfghost.test"], t)
    outcome(w.s, qid, "b@halfghost.test", "sent",
            relay_of("mx.halfghost.test", H["halfghost"], w.port))
    dsn = bounce_dsn(w.s, qid, "a@ghost.test", "5.4.4")
    assert b"no address for any mail exchanger of ghost.test" in dsn
    assert t.encode() in dsn                 # the original headers
    assert b"b@halfghost.test" not in dsn
    assert rec_count(rec, t) == 1 and rec.messages[0][1] == ["b@halfghost.test"]


def test_mx_is_ourselves(world):
    """The only MX is 127.0.0.1, where sluice listens: a loop, bounced at
    once (5.4.6) without connecting, even with smtp-out-port pointing at
    sluice's own SMTP port."""
    w = world(out_port=lambda s: s.smtp_port)
    s = w.s
    connects = len(re.findall(r": connect from 127\.", s.read_log()))
    t = tag()
    s.cli("sendmail", "-f", SENDER, "x@loop.test",
          input="From: %s\nSubject: %s\n\nbody of %s\n" % (SENDER, t, t))
    qid = s.wait_log(r"queue\[\d+\]: (\w+): queued from=<%s> .*proto=LOCAL"
                     % re.escape(SENDER)).group(1)
    dsn = bounce_dsn(s, qid, "x@loop.test", "5.4.6")
    assert b"loops back to myself" in dsn and t.encode() in dsn
    assert len(re.findall(r": connect from 127\.", s.read_log())) == connects, s.read_log()
    assert not s.log_search(r"status=sent.*relay=mx\.loop\.test|"
                            r"relay=mx\.loop\.test.*status=sent")


def test_cname_chains(world):
    w = world(H["cname"])
    rec = w.aiosmtp(H["cname"])
    t = tag()
    rcpts = ["a@viacname.test", "b@aliasdom.test", "c@alias1.test"]
    qid = submit(w.s, rcpts, t)
    outcome(w.s, qid, "a@viacname.test", "sent",
            relay_of("mxalias.viacname.test", H["cname"], w.port))
    outcome(w.s, qid, "b@aliasdom.test", "sent",
            relay_of("mxalias.viacname.test", H["cname"], w.port))
    outcome(w.s, qid, "c@alias1.test", "sent",
            relay_of("alias1.test", H["cname"], w.port))
    w.s.wait_log(r": %s: removed$" % qid)
    wait_for(w.s.queue_empty, what="the queue to empty")
    for addr in rcpts:
        assert rec_count(rec, t, addr) == 1, (addr, rec.messages)
    assert w.s.messages(SENDER) == []


def test_fifty_mx_records(world):
    """50 MX records (an answer over TCP): the two best refuse, the third
    gets the message, once; the worse ones get nothing."""
    w = world(H["big1"], H["big2"], H["big3"], H["bigrest"])
    w.closed(H["big1"])
    w.closed(H["big2"])
    best = w.aiosmtp(H["big3"])
    rest = w.aiosmtp(H["bigrest"])
    t = tag()
    qid = submit(w.s, ["a@big.test"], t)
    outcome(w.s, qid, "a@big.test", "sent",
            relay_of("mx3.big.test", H["big3"], w.port))
    w.s.wait_log(r": %s: removed$" % qid)
    wait_for(w.s.queue_empty, what="the queue to empty")
    assert rec_count(best, t) == 1 and rest.messages == []
    assert w.s.messages(SENDER) == []
