"""Routes (issue 3): per-domain routes, a smarthost with STARTTLS and AUTH,
routes chosen by the online state (masqmail), sender patterns, envelope
sender and From: rewriting, connection reuse under a per-destination
limit, and double bounces to a configured postmaster.

Downstream servers are aiosmtpd on 127.0.0.70-79; a dnsmasq names the
smarthost so its certificate can be verified by name.
"""
import itertools
import json
import os
import re
import shutil
import signal
import smtplib
import ssl
import subprocess
import tempfile
import threading

import pytest
from aiosmtpd.controller import Controller

from dns_harness import DNSMasq
from sluice_harness import RUN_USER, tag, wait_for
from smtp_peers import Auth, common_port

HOSTS = ["127.0.0.%d" % n for n in range(70, 76)]
SESSIONS = itertools.count(1)


class Rec:
    """Records messages with the session they came in; `refuse` maps a
    recipient to a RCPT reply."""

    def __init__(self, refuse=None):
        self.messages = []
        self.refuse = refuse or {}
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, options):
        for pat, reply in self.refuse.items():
            if address == pat or (pat.startswith("@") and address.endswith(pat)):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            if not hasattr(session, "sluice_test_n"):   # id() may be reused
                session.sluice_test_n = next(SESSIONS)
            self.messages.append({
                "from": envelope.mail_from, "rcpts": list(envelope.rcpt_tos),
                "content": envelope.content, "session": session.sluice_test_n,
                "tls": session.ssl is not None,
                "auth": session.authenticated})
        return "250 2.0.0 stored"


@pytest.fixture(scope="module")
def cert():
    """A certificate for smarthost.test, readable by sluice's user (pytest's
    own temporary directories are not)."""
    d = tempfile.mkdtemp(prefix="sluice-routecert-", dir="/tmp")
    os.chmod(d, 0o755)
    key, crt = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=smarthost.test",
                    "-addext", "subjectAltName=DNS:smarthost.test"],
                   check=True, capture_output=True)
    os.chmod(crt, 0o644)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    yield {"ctx": ctx, "cert": crt}
    shutil.rmtree(d)


@pytest.fixture
def net():
    """dnsmasq naming the smarthost, and a factory of downstream servers
    on one port common to HOSTS."""
    port = common_port(*HOSTS)
    dns = DNSMasq(["--host-record=smarthost.test,%s" % HOSTS[0],
                   "--mx-host=mx.test,mx.mx.test,10",
                   "--host-record=mx.mx.test,%s" % HOSTS[5]])
    dns.start()
    ctls = []

    def server(host, handler=None, **kw):
        handler = handler or Rec()
        ctl = Controller(handler, hostname=host, port=port,
                         server_hostname="smarthost.test", **kw)
        ctl.start()
        ctls.append(ctl)
        return handler

    yield {"port": port, "dns": dns, "server": server}
    for c in ctls:
        c.stop()
    dns.cleanup()


def conf(net, extra):
    return ("trusted-networks 127.0.0.0/8\nresolver %s\nsmtp-out-port %d\n"
            "retry-interval 1s\n" % (net["dns"].server, net["port"]) + extra)


def send(s, sender, rcpts, t, headers=""):
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.sendmail(sender, rcpts, ("%sSubject: %s\r\n\r\nbody %s\r\n"
                                   % (headers, t, t)).encode())


def queue_json(s):
    return json.loads(s.cli("queue", "list", "--json").stdout)


def rcpt_states(s):
    """{recipient: (state, error)} over the whole queue."""
    out = {}
    for m in queue_json(s):
        for r in m["recipients"]:
            out[r["address"]] = (r["state"], r["error"])
    return out


def owned_file(s, name, text, mode=0o600):
    path = os.path.join(s.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    if os.geteuid() == 0:
        shutil.chown(path, RUN_USER, RUN_USER)
    return path


def test_route_for_one_domain_others_by_mx(make_sluice, net):
    a = net["server"](HOSTS[1])
    mx = net["server"](HOSTS[5])
    s = make_sluice(conf(net, "route special.test,*.special.test via %s:%d\n"
                         % (HOSTS[1], net["port"])))
    t = tag()
    send(s, "ann@example.test", ["x@special.test", "y@sub.special.test",
                                 "z@mx.test"], t)
    wait_for(lambda: len(a.messages) == 1 and len(mx.messages) == 1,
             what="one message at the route, one at the MX")
    wait_for(s.queue_empty, what="the queue to empty")
    # both special recipients in one transaction (one route), not by MX
    assert sorted(a.messages[0]["rcpts"]) == ["x@special.test", "y@sub.special.test"]
    assert mx.messages[0]["rcpts"] == ["z@mx.test"]
    log = s.read_log()
    assert "to=<x@special.test> relay=%s[%s]:%d" % (HOSTS[1], HOSTS[1], net["port"]) in log
    assert "to=<z@mx.test> relay=mx.mx.test[%s]" % HOSTS[5] in log


def test_smarthost_starttls_auth(make_sluice, net, cert):
    auth = Auth(b"laptop", b"isp pass word")
    h = net["server"](HOSTS[0], tls_context=cert["ctx"], require_starttls=True,
                      authenticator=auth, auth_required=True)
    s = make_sluice("", start=False)
    authfile = owned_file(s, "isp.auth", "laptop isp pass word\n")
    with open(s.conf, "a") as f:
        f.write(conf(net, "relay-host smarthost.test:%d tls required auth %s\n"
                     "relay-ca-file %s\n" % (net["port"], authfile, cert["cert"])))
    s.start()
    t = tag()
    send(s, "ann@example.test", ["friend@far.test"], t)
    wait_for(lambda: h.messages, what="the message at the smarthost")
    wait_for(s.queue_empty, what="the queue to empty")
    m = h.messages[0]
    assert m["tls"] and m["auth"] and auth.calls == ["PLAIN"]
    assert m["rcpts"] == ["friend@far.test"] and t.encode() in m["content"]
    assert "relay=smarthost.test[%s]:%d" % (HOSTS[0], net["port"]) in s.read_log()


def test_smarthost_auth_file_others_can_read_defers(make_sluice, net, cert):
    auth = Auth(b"laptop", b"isp pass word")
    h = net["server"](HOSTS[0], tls_context=cert["ctx"], authenticator=auth,
                      auth_required=True)
    s = make_sluice("", start=False)
    authfile = owned_file(s, "isp.auth", "laptop isp pass word\n", mode=0o644)
    with open(s.conf, "a") as f:
        f.write(conf(net, "relay-host smarthost.test:%d auth %s\n"
                     "relay-ca-file %s\n" % (net["port"], authfile, cert["cert"])))
    s.start()
    t = tag()
    send(s, "ann@example.test", ["friend@far.test"], t)
    wait_for(lambda: rcpt_states(s).get("friend@far.test", ("",))[0] == "deferred",
             what="a deferral")
    state, err = rcpt_states(s)["friend@far.test"]
    assert "4.7.0" in err and "chmod 600" in err, err
    assert h.messages == [] and auth.calls == []
    assert "must belong to the queue's user" in s.read_log()
    os.chmod(authfile, 0o600)
    s.cli("queue", "flush")
    wait_for(lambda: h.messages, what="delivery once the file is private")
    wait_for(s.queue_empty, what="the queue to empty")
    assert len(h.messages) == 1


@pytest.mark.parametrize("content", ["laptop\n", "", " nopass\n"])
def test_smarthost_bad_auth_file_defers(make_sluice, net, cert, content):
    h = net["server"](HOSTS[0], tls_context=cert["ctx"],
                      authenticator=Auth(b"laptop", b"isp pass word"),
                      auth_required=True)
    s = make_sluice("", start=False)
    authfile = owned_file(s, "isp.auth", content)
    with open(s.conf, "a") as f:
        f.write(conf(net, "relay-host smarthost.test:%d auth %s\n"
                     "relay-ca-file %s\n" % (net["port"], authfile, cert["cert"])))
    s.start()
    send(s, "ann@example.test", ["friend@far.test"], tag())
    wait_for(lambda: rcpt_states(s).get("friend@far.test", ("",))[0] == "deferred",
             what="a deferral")
    assert 'want one line "USER PASSWORD"' in rcpt_states(s)["friend@far.test"][1]
    assert h.messages == []


def test_smarthost_tls_required_untrusted_certificate_defers(make_sluice, net, cert):
    h = net["server"](HOSTS[0], tls_context=cert["ctx"])
    # no relay-ca-file: the system store does not know this certificate
    s = make_sluice(conf(net, "relay-host smarthost.test:%d tls required\n"
                         % net["port"]))
    send(s, "ann@example.test", ["friend@far.test"], tag())
    wait_for(lambda: rcpt_states(s).get("friend@far.test", ("",))[0] == "deferred",
             what="a deferral")
    assert "certificate" in rcpt_states(s)["friend@far.test"][1]
    assert h.messages == []


def test_smarthost_name_that_does_not_resolve_defers(make_sluice, net):
    s = make_sluice(conf(net, "relay-host nowhere.test:%d\n" % net["port"]))
    send(s, "ann@example.test", ["friend@far.test"], tag())
    wait_for(lambda: rcpt_states(s).get("friend@far.test", ("",))[0] == "deferred",
             what="a deferral (never a bounce: the route is ours)")
    assert "route host nowhere.test" in rcpt_states(s)["friend@far.test"][1]


def online_conf(net, extra):
    return conf(net, "route * via %s:%d when dsl\n"
                "route * via %s:%d when wifi,hotel\n" % (
                    HOSTS[1], net["port"], HOSTS[2], net["port"]) + extra)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


def test_online_state_file_switches_routes(make_sluice, net):
    dsl = net["server"](HOSTS[1])
    wifi = net["server"](HOSTS[2])
    s = make_sluice("", start=False)
    state = os.path.join(s.dir, "online")
    with open(s.conf, "a") as f:
        f.write(online_conf(net, "online-state file %s\n" % state))
    s.start()
    # no file: offline, the message waits (never an error)
    t1 = tag()
    send(s, "ann@example.test", ["a@far.test"], t1)
    wait_for(lambda: rcpt_states(s).get("a@far.test", ("",))[0] == "waiting",
             what="waiting for a route")
    assert "waiting for a route (online state offline)" in \
        rcpt_states(s)["a@far.test"][1]
    assert "waiting for route" in s.cli("queue", "list").stdout
    # connected by DSL: flush re-reads the state and sends
    write(state, "dsl\n")
    s.cli("queue", "flush")
    wait_for(lambda: dsl.messages, what="the message through the dsl route")
    wait_for(s.queue_empty, what="the queue to empty")
    assert wifi.messages == [] and t1.encode() in dsl.messages[0]["content"]
    s.wait_log(r"online state: dsl \(was offline\)")
    # now on wifi: the next message takes the other route
    write(state, "wifi\n")
    s.cli("queue", "flush")
    s.wait_log(r"online state: wifi \(was dsl\)")
    t2 = tag()
    send(s, "ann@example.test", ["b@far.test"], t2)
    wait_for(lambda: wifi.messages, what="the message through the wifi route")
    # a state no route lists (and garbage) waits too; SIGHUP re-checks
    write(state, "mobile\n")
    s.cli("queue", "flush")
    s.wait_log(r"online state: mobile \(was wifi\)")
    t3 = tag()
    send(s, "ann@example.test", ["c@far.test"], t3)
    wait_for(lambda: rcpt_states(s).get("c@far.test", ("",))[0] == "waiting",
             what="waiting in an unknown state")
    write(state, "hotel\n")
    s.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(wifi.messages) == 2, what="sent after SIGHUP")
    wait_for(s.queue_empty, what="the queue to empty")
    assert len(dsl.messages) == 1
    assert t3.encode() in wifi.messages[1]["content"]


def test_online_state_command(make_sluice, net):
    dsl = net["server"](HOSTS[1])
    s = make_sluice("", start=False)
    state = os.path.join(s.dir, "netstate")
    write(state, "")
    with open(s.conf, "a") as f:
        f.write(online_conf(net, "online-state command /bin/cat %s\n"
                            "online-check-interval 5s\n" % state))
    s.start()
    send(s, "ann@example.test", ["a@far.test"], tag())
    wait_for(lambda: rcpt_states(s).get("a@far.test", ("",))[0] == "waiting",
             what="waiting for a route")
    write(state, "dsl extra words\n")
    # no flush: the periodic check notices the change
    wait_for(lambda: dsl.messages, what="the message after the periodic check")
    wait_for(s.queue_empty, what="the queue to empty")
    s.wait_log(r"online state: dsl \(was offline\)")


def test_online_state_failing_command_is_offline(make_sluice, net):
    net["server"](HOSTS[1])
    s = make_sluice(online_conf(net, "online-state command /bin/false\n"))
    send(s, "ann@example.test", ["a@far.test"], tag())
    wait_for(lambda: rcpt_states(s).get("a@far.test", ("",))[0] == "waiting",
             what="waiting for a route")
    s.wait_log(r"online-state command /bin/false: exit 1, state offline")
    assert "(online state offline)" in rcpt_states(s)["a@far.test"][1]


def test_route_for_a_lan_works_offline(make_sluice, net):
    lan = net["server"](HOSTS[3])
    s = make_sluice("", start=False)
    with open(s.conf, "a") as f:
        f.write(conf(net, "online-state file %s/none\n"
                     "route *.lan via %s:%d when *\n" % (s.dir, HOSTS[3], net["port"])))
    s.start()
    send(s, "ann@example.test", ["printer@office.lan", "x@far.test"], tag())
    wait_for(lambda: lan.messages, what="the LAN message while offline")
    wait_for(lambda: rcpt_states(s).get("x@far.test", ("",))[0] == "waiting",
             what="the other one waiting")
    assert lan.messages[0]["rcpts"] == ["printer@office.lan"]


def test_route_senders_and_rewriting(make_sluice, net):
    isp = net["server"](HOSTS[1])
    mx = net["server"](HOSTS[5])
    s = make_sluice(conf(net, "route * via %s:%d senders *@home.test,!boss@home.test "
                         "rewrite-sender me@isp.test rewrite-from me@isp.test\n"
                         % (HOSTS[1], net["port"])))
    t = tag()
    send(s, "ann@home.test", ["friend@mx.test"], t,
         headers="From: \"Ann Example\" <ann@home.test>\r\nX-Keep: yes\r\n")
    wait_for(lambda: isp.messages, what="the message through the isp route")
    m = isp.messages[0]
    assert m["from"] == "me@isp.test"
    body = m["content"].decode()
    assert "From: \"Ann Example\" <me@isp.test>\r\n" in body, body
    assert "ann@home.test" not in body.split("\r\n\r\n", 1)[0].split("Received:")[0]
    assert "X-Keep: yes\r\n" in body and ("body %s" % t) in body
    assert body.count("From:") == 1
    # a refused sender does not take the route: by MX instead, untouched
    t2 = tag()
    send(s, "boss@home.test", ["friend@mx.test"], t2,
         headers="From: boss@home.test\r\n")
    wait_for(lambda: mx.messages, what="the boss's message by MX")
    assert mx.messages[0]["from"] == "boss@home.test"
    assert b"From: boss@home.test\r\n" in mx.messages[0]["content"]
    assert len(isp.messages) == 1


def test_connection_reuse_under_a_destination_limit(make_sluice, net):
    h = net["server"](HOSTS[1])
    s = make_sluice(conf(net, "route * via %s:%d\n"
                         "relay-destination-connections 1\n" % (HOSTS[1], net["port"])))
    n = 24
    sent = []

    def burst(k):
        for i in range(n // 4):
            t = tag()
            send(s, "ann@example.test", ["r%d@far.test" % k], t)
            sent.append(t)

    threads = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wait_for(lambda: len(h.messages) == n, what="all messages downstream")
    wait_for(s.queue_empty, what="the queue to empty")
    seq = [m["session"] for m in h.messages]
    sessions = set(seq)
    assert len(sessions) < n, "one connection per message: no reuse"
    # one connection at a time: each session's messages are contiguous
    blocks = [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]
    assert len(blocks) == len(sessions), seq
    for t in sent:
        assert sum(t.encode() in m["content"] for m in h.messages) == 1


def test_double_bounce_goes_to_the_postmaster_once(make_sluice, net):
    bad = net["server"](HOSTS[4], Rec(refuse={"@bad.test": "550 5.1.1 no such user"}))
    s = make_sluice(conf(net, "route bad.test via %s:%d\n"
                         "double-bounce-to postmaster@example.test\n"
                         % (HOSTS[4], net["port"])))
    s.add_account("postmaster@example.test")
    t = tag()
    # the sender is at bad.test too: its DSN bounces as well
    send(s, "someone@bad.test", ["nobody@bad.test"], t)
    wait_for(lambda: s.messages("postmaster@example.test"),
             what="the double-bounce notice")
    wait_for(s.queue_empty, what="the queue to empty")
    notice = s.messages("postmaster@example.test")[0]
    assert b"someone@bad.test" in notice and b"550 5.1.1" in notice
    assert "double-bounce non-delivery notification" in s.read_log()
    assert bad.messages == []


def test_double_bounce_notice_that_bounces_is_dropped(make_sluice, net):
    net["server"](HOSTS[4], Rec(refuse={"@bad.test": "550 5.1.1 no such user"}))
    s = make_sluice(conf(net, "route bad.test via %s:%d\n"
                         "double-bounce-to pm@bad.test\n" % (HOSTS[4], net["port"])))
    send(s, "someone@bad.test", ["nobody@bad.test"], tag())
    s.wait_log(r"double-bounce non-delivery notification")
    s.wait_log(r"double bounce dropped \(null sender\)")
    wait_for(s.queue_empty, what="the queue to empty (no loop)")
    assert s.read_log().count("double-bounce non-delivery notification") == 1


def test_delay_warning_once(make_sluice, net):
    # nothing listens at the route's host: every try is deferred
    s = make_sluice(conf(net, "route far.test via %s:%d\ndelay-warning 1s\n"
                         % (HOSTS[3], net["port"])))
    t = tag()
    send(s, "demo@example.test", ["x@far.test"], t)
    warn = s.wait_messages("demo@example.test", 1)[0]
    assert b"Subject: Delayed Mail (still being retried)" in warn
    assert b"Action: delayed" in warn and b"Status: 4.4.1" in warn
    assert b"Final-Recipient: rfc822; x@far.test" in warn
    assert t.encode() in warn                       # its headers
    qid = s.wait_log(r"(\w+): sender delay notification: \w+").group(1)
    # more tries: still deferred, never a second warning
    for n in range(2):
        s.cli("queue", "flush")
        s.wait_log(r"%s: to=<x@far.test>.*status=deferred" % qid)
    attempts = rcpt_states(s)["x@far.test"]
    assert attempts[0] == "deferred"
    wait_for(lambda: s.read_log().count("%s: to=<x@far.test>" % qid) >= 4,
             what="two more tries")
    assert len(s.messages("demo@example.test")) == 1
    assert s.read_log().count("sender delay notification") == 1


def test_route_to_an_ipv6_host(make_sluice, net):
    from sluice_harness import free_port
    port = free_port()
    rec = Rec()
    ctl = Controller(rec, hostname="::1", port=port)
    ctl.start()
    try:
        s = make_sluice(conf(net, "route v6.test via [::1]:%d\n" % port))
        t = tag()
        send(s, "demo@example.test", ["x@v6.test"], t)
        wait_for(lambda: rec.messages, what="the message over IPv6")
        wait_for(s.queue_empty, what="the queue to empty")
        assert "relay=::1[::1]:%d" % port in s.read_log()
    finally:
        ctl.stop()


def test_many_messages_to_smtp_sink_over_few_connections(make_sluice, net):
    """Postfix's smtp-sink as the downstream: everything arrives, over
    reused connections (smtp-sink -c counts them)."""
    sink_bin = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    args = [sink_bin, "-c", "%s:%d" % (HOSTS[3], net["port"]), "100"]
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
    sink = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        s = make_sluice(conf(net, "route sink.test via %s:%d\n"
                             "relay-destination-connections 2\n"
                             % (HOSTS[3], net["port"])))
        n = 30
        with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
            for i in range(n):
                c.sendmail("demo@example.test", ["x%d@sink.test" % i],
                           b"Subject: sink %d\r\n\r\nbody\r\n" % i)
        wait_for(s.queue_empty, what="the queue to empty")
        log = s.read_log()
        assert log.count("status=sent") == n
        assert "status=deferred" not in log and "status=bounced" not in log
    finally:
        sink.terminate()
        out = sink.communicate()[0].decode("utf-8", "replace")
    # its count lines: "sess=S quit=Q mesg=M" (sessions so far, messages)
    counts = re.findall(r"sess=(\d+) quit=\d+ mesg=(\d+)", out)
    assert counts and int(counts[-1][1]) == n, out[-500:]
    assert int(counts[-1][0]) < n / 2, "few connections for %d messages: %s" % (
        n, counts[-1])


@pytest.mark.parametrize("idle,same", [("60s", True), ("0", False)])
def test_connection_cache(make_sluice, net, idle, same):
    """With relay-idle-time, a connection waits after a message for the
    next one to its destination; with 0 it says QUIT at once."""
    h = net["server"](HOSTS[1])
    s = make_sluice(conf(net, "route * via %s:%d\nrelay-idle-time %s\n"
                         % (HOSTS[1], net["port"], idle)))
    for n in (1, 2):
        send(s, "demo@example.test", ["x@far.test"], tag())
        wait_for(lambda: len(h.messages) == n, what="message %d" % n)
        wait_for(s.queue_empty, what="the queue to empty")
    assert (h.messages[0]["session"] == h.messages[1]["session"]) == same


def test_global_connection_limit(make_sluice, net):
    """relay-connections 1: two destinations, still one connection at a
    time in all (one recorder behind both servers sees the order)."""
    rec = Rec()
    net["server"](HOSTS[1], rec)
    net["server"](HOSTS[2], rec)
    s = make_sluice(conf(net, "route one.test via %s:%d\nroute two.test via %s:%d\n"
                         "relay-connections 1\nrelay-idle-time 0\n"
                         % (HOSTS[1], net["port"], HOSTS[2], net["port"])))
    n = 16

    def burst(k):
        for i in range(n // 4):
            send(s, "demo@example.test", ["x@%s.test" % ("one", "two")[(i + k) % 2]],
                 tag())

    threads = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wait_for(lambda: len(rec.messages) == n, what="all messages downstream")
    wait_for(s.queue_empty, what="the queue to empty")
    seq = [m["session"] for m in rec.messages]
    blocks = [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]
    assert len(blocks) == len(set(seq)), seq
    assert {tuple(m["rcpts"]) for m in rec.messages} == {("x@one.test",), ("x@two.test",)}
