"""The masked relay end to end (issue 6): a person writes to a service
address, the service's mailbox gets it from a user address, the service
answers, the person gets the answer from the service address; neither side
ever sees the other's real address in any header. Real peers: smtplib as
the clients, a local account and an aiosmtpd server as the two mailboxes.
Runs on SQLite and PostgreSQL."""
import json
import re

import pytest
from sluice_harness import RawSMTP, tag, wait_for

pytestmark = pytest.mark.db_backends     # every test on SQLite and PostgreSQL

MASKDOM = "relay.example.test"
KEY = "0123456789abcdef0123456789abcdef"
DESK = "desk@example.test"          # the service's real address (local)
ALICE = "alice@far.test"            # a person, behind the aiosmtpd peer


@pytest.fixture
def far(peer):
    """Alice's (and other offsite people's) mail server."""
    return peer


@pytest.fixture
def relay(make_sluice, far, db_backend):
    s = make_sluice("mask-domain %s\nmask-key %s\nroute far.test via 127.0.0.1:%d\n"
                    % (MASKDOM, KEY, far.port))
    s.add_account(DESK)
    s.far = far
    return s


def new_service(s, real=DESK, label="listing 42"):
    r = s.cli("mask", "service", "add", real, "--label", label, "--json")
    return json.loads(r.stdout)["address"]


def send(s, sender, rcpts, msg):
    c = RawSMTP(s.smtp_port)
    c.ehlo("client.test")
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % sender)
    for r in rcpts:
        c.expect(250, "2.1.5", "RCPT TO:<%s>" % r)
    c.expect(354, None, "DATA")
    c.send(msg.replace(b"\n", b"\r\n") + b".\r\n")
    c.expect(250, "2.0.0")
    c.expect(221, "2.0.0", "QUIT")


def header_section(raw):
    """The header section, CRLF made LF, folded lines unfolded."""
    h = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    return re.sub(rb"\n[ \t]+", b" ", h)


def first_contact(s, svc, t, extra=b""):
    send(s, ALICE, [svc], b"From: Alice Liddell <alice@far.test>\n"
         b"To: <" + svc.encode() + b">\nCc: Bob <bob@third.test>\n"
         b"Subject: about the listing " + t.encode() + b"\n"
         b"Message-ID: <m1." + t.encode() + b"@far.test>\n"
         b"X-Mailer: Leaky 1.0 alice@far.test\n" + extra +
         b"\nIs it still available? " + t.encode() + b"\n")
    try:
        got = wait_for(lambda: [m for m in s.messages(DESK) if t.encode() in m],
                       what="the copy in the service's mailbox")[0]
    except AssertionError:
        raise AssertionError("no copy; log:\n" + s.read_log()[-3000:])
    return got


def test_conversation_both_ways(relay):
    s = relay
    svc = new_service(s)
    assert re.fullmatch(r"service-[a-z2-7]{20}@" + re.escape(MASKDOM), svc)
    t = tag()
    got = first_contact(s, svc, t)
    hdr = header_section(got)
    # the service sees a user address, never Alice's
    assert b"alice@far.test" not in hdr.lower() and b"bob@third.test" not in hdr
    m = re.search(rb"^From: \"Alice Liddell via relay\.example\.test\" <(user-[a-z2-7]{20}@"
                  + re.escape(MASKDOM.encode()) + rb")>$", hdr, re.M)
    assert m, hdr
    user = m.group(1).decode()
    assert b"\nReply-To: <" + user.encode() + b">" in hdr
    assert re.search(rb"^To: <" + re.escape(svc.encode()) + rb">", hdr, re.M)
    assert b"Message-ID: <m1." + t.encode() + b"@far.test>" in hdr
    assert b"X-Mailer" not in hdr
    # the body is left alone
    assert b"Is it still available? " + t.encode() in got
    # a second message of the same person uses the same user address
    t2 = tag()
    got2 = first_contact(s, svc, t2)
    assert user.encode() in header_section(got2)

    # the service answers the user address from its real address
    r = tag()
    send(s, DESK, [user], b"From: Desk <desk@example.test>\nTo: <" + user.encode() +
         b">\nSubject: Re: about the listing\nIn-Reply-To: <m1." + t.encode() +
         b"@far.test>\nReferences: <m1." + t.encode() + b"@far.test>\n"
         b"\nYes it is. " + r.encode() + b"\n")
    wait_for(lambda: any(r.encode() in d for _, _, d in s.far.messages),
             what="the answer at Alice's server")
    env_from, rcpts, data = [x for x in s.far.messages if r.encode() in x[2]][0]
    assert rcpts == [ALICE]
    assert env_from.startswith("bounce-") and env_from.endswith("@" + MASKDOM)
    rh = header_section(data)
    assert b"desk@example.test" not in rh.lower()
    assert re.search(rb"^From: \"Desk via relay\.example\.test\" <" +
                     re.escape(svc.encode()) + rb">", rh, re.M), rh
    assert re.search(rb"^To: <alice@far\.test>", rh, re.M)
    assert b"In-Reply-To: <m1." + t.encode() + b"@far.test>" in rh


def test_pair_disable_and_enable(relay):
    """`mask pair disable` stops one person's user address (the service
    gets 550 5.1.1 writing to it); the service and other pairs go on;
    `enable` opens it again."""
    s = relay
    svc = new_service(s)
    got = first_contact(s, svc, tag())
    user = re.search(rb"Reply-To: <(user-[a-z2-7]+@[^>]+)>",
                     header_section(got)).group(1).decode()
    r = s.cli("mask", "pair", "disable", user.upper())
    assert r.stdout.strip() == "%s disabled" % user
    listed = s.cli("mask", "pairs", svc).stdout
    assert "disabled" in listed, listed
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % DESK)
    c.expect(550, "5.1.1", "RCPT TO:<%s>" % user)
    c.close()
    assert s.cli("mask", "pair", "enable", user.split("@")[0]).stdout \
        .strip() == "%s enabled" % user
    r = tag()
    send(s, DESK, [user], b"From: Desk <desk@example.test>\nTo: <" +
         user.encode() + b">\nSubject: " + r.encode() + b"\n\nback\n")
    wait_for(lambda: any(r.encode() in d for _, _, d in s.far.messages),
             what="the answer after enable")


def test_only_the_service_may_write_to_a_user_address(relay):
    s = relay
    svc = new_service(s)
    got = first_contact(s, svc, tag())
    user = re.search(rb"<(user-[a-z2-7]+@[^>]+)>", header_section(got)).group(1).decode()
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<mallory@evil.test>")
    c.expect(550, "5.7.1", "RCPT TO:<%s>" % user)
    c.expect(250, "2.0.0", "RSET")
    c.expect(250, "2.1.0", "MAIL FROM:<>")
    c.expect(550, "5.7.1", "RCPT TO:<%s>" % svc)       # a service takes no bounces
    c.expect(250, "2.0.0", "RSET")
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % user)     # a mask never writes a mask
    c.expect(550, "5.7.1", "RCPT TO:<%s>" % svc)


def test_unknown_forged_and_disabled_codes(relay):
    s = relay
    svc = new_service(s)
    code = svc.split("@")[0][len("service-"):]
    forged = "service-" + code[:-1] + ("a" if code[-1] != "a" else "b") + "@" + MASKDOM
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % ALICE)
    c.expect(550, "5.1.1", "RCPT TO:<%s>" % forged)
    c.expect(550, "5.1.1", "RCPT TO:<service-abc@%s>" % MASKDOM)
    c.expect(550, "5.1.1", "RCPT TO:<user-%s@%s>" % (code, MASKDOM))  # wrong kind
    c.expect(550, "5.1.1", "RCPT TO:<nobody@%s>" % MASKDOM)
    c.expect(250, "2.1.5", "RCPT TO:<%s>" % svc.upper())               # any case
    s.cli("mask", "service", "disable", svc)
    c.expect(550, "5.1.1", "RCPT TO:<%s>" % svc)
    s.cli("mask", "service", "enable", svc)
    c.expect(250, "2.1.5", "RCPT TO:<%s>" % svc)


def test_bcc_to_the_service_is_relayed(relay):
    s = relay
    svc = new_service(s)
    t = tag()
    send(s, ALICE, [svc], b"From: alice@far.test\nTo: friend@else.test\nSubject: " +
         t.encode() + b"\n\nbcc " + t.encode() + b"\n")
    got = wait_for(lambda: [m for m in s.messages(DESK) if t.encode() in m],
                   what="the copy")[0]
    hdr = header_section(got)
    assert b"alice@far.test" not in hdr and b"friend@else.test" not in hdr
    assert b"From: \"Someone via relay.example.test\" <user-" in hdr


def test_auto_replies_never_make_a_pair(relay):
    s = relay
    svc = new_service(s)
    t = tag()
    send(s, "robot@far.test", [svc], b"From: robot@far.test\nAuto-Submitted: auto-replied\n"
         b"Subject: Out of office " + t.encode() + b"\n\naway\n")
    wait_for(lambda: "not relayed: automatic message from a new correspondent" in s.read_log(),
             what="the drop")
    wait_for(s.queue_empty, what="an empty queue")
    assert not [m for m in s.messages(DESK) if t.encode() in m]
    assert json.loads(s.cli("mask", "pairs", svc, "--json").stdout) == []


def test_loop_mark_stops_a_second_pass(relay):
    s = relay
    svc = new_service(s)
    got = first_contact(s, svc, tag())
    mark = re.search(rb"^X-Sluice-Mask: (\S+)$", header_section(got), re.M).group(1)
    user = re.search(rb"<(user-[a-z2-7]+@[^>]+)>", header_section(got)).group(1)
    # the same message comes back for the same pair: dropped, logged
    t = tag()
    send(s, ALICE, [svc], b"From: alice@far.test\nX-Sluice-Mask: " + mark +
         b"\nSubject: " + t.encode() + b"\n\nagain\n")
    wait_for(lambda: "loop: the message already passed this relay" in s.read_log(),
             what="the loop drop")
    assert not [m for m in s.messages(DESK) if t.encode() in m]
    assert user


def test_stats_after_a_conversation(relay):
    """An auto-reply of the service goes through the pair but is no human
    reply; the human one is."""
    s = relay
    svc = new_service(s)
    got = first_contact(s, svc, tag())
    user = re.search(rb"<(user-[a-z2-7]+@[^>]+)>", header_section(got)).group(1).decode()
    a = tag()
    send(s, DESK, [user], b"From: desk@example.test\nAuto-Submitted: auto-replied\n"
         b"Subject: we got it\n\n" + a.encode() + b"\n")
    wait_for(lambda: any(a.encode() in d for _, _, d in s.far.messages),
             what="the auto-reply")
    st = json.loads(s.cli("mask", "stats", svc, "--json").stdout)
    assert '"replies": 0' in json.dumps(st), st
    r = tag()
    send(s, DESK, [user], b"From: desk@example.test\nSubject: re\n\n" + r.encode() + b"\n")
    wait_for(lambda: any(r.encode() in d for _, _, d in s.far.messages), what="the reply")
    st = json.loads(s.cli("mask", "stats", svc, "--json").stdout)
    text = json.dumps(st)
    assert '"replies": 1' in text and '"people": 1' in text, text


def test_offsite_service_and_reply_all(relay):
    """The service's mailbox is elsewhere (the aiosmtpd peer); its answer
    to everyone keeps the masks and drops the real third party."""
    s = relay
    s.add_account("carol@example.test")
    svc = new_service(s, real="shop@far.test")
    t = tag()
    send(s, "carol@example.test", [svc], b"From: Carol <carol@example.test>\n"
         b"To: <" + svc.encode() + b">\nSubject: " + t.encode() + b"\n\nq\n")
    wait_for(lambda: any(t.encode() in d for _, _, d in s.far.messages), what="the copy")
    env_from, rcpts, data = [x for x in s.far.messages if t.encode() in x[2]][0]
    assert rcpts == ["shop@far.test"] and env_from.startswith("bounce-")
    hdr = header_section(data)
    assert b"carol@example.test" not in hdr.lower()
    assert b"From: \"Carol via relay.example.test\" <user-" in hdr
    user = re.search(rb"Reply-To: <(user-[a-z2-7]+@[^>]+)>", hdr).group(1)
    r = tag()
    send(s, "shop@far.test", [user.decode()], b"From: Shop <shop@far.test>\nTo: <" +
         user + b">, <" + svc.encode() + b">\nCc: Boss <boss@far.test>\nSubject: " +
         r.encode() + b"\n\nanswer\n")
    got = wait_for(lambda: [m for m in s.messages("carol@example.test")
                            if r.encode() in m], what="the answer")[0]
    h = header_section(got)
    assert b"shop@far.test" not in h and b"boss@far.test" not in h, h
    assert re.search(rb"^To: <carol@example\.test>, <" + re.escape(svc.encode()) + rb">",
                     h, re.M), h


def test_bounces_become_notices_and_disable(make_sluice, far, db_backend):
    """The service's real address bounces: the person gets a notice that
    names only the service address; after mask-bounce-limit bounces the
    service is disabled (550 5.1.1 at RCPT, `mask list` says why)."""
    far.replies["gone@far.test"] = "550 5.1.1 no such user here"
    s = make_sluice("mask-domain %s\nmask-key %s\nmask-bounce-limit 2\n"
                    "route far.test via 127.0.0.1:%d\n" % (MASKDOM, KEY, far.port))
    s.add_account("carol@example.test")
    svc = new_service(s, real="gone@far.test")
    for n in range(2):
        t = tag()
        send(s, "carol@example.test", [svc], b"From: Carol <carol@example.test>\n"
             b"Subject: " + t.encode() + b"\n\nhello\n")
        notice = wait_for(lambda: [m for m in s.messages("carol@example.test")
                                   if b"Undelivered" in m and m.count(b"\n") > 3][n:],
                          what="notice %d" % n)[0]
        assert b"Final-Recipient: rfc822; " + svc.encode() in notice
        assert b"report-type=delivery-status" in notice
        assert b"gone@far.test" not in notice
        assert b"far.test" not in notice.replace(b"carol@example.test", b"")
    listing = s.cli("mask", "list").stdout
    assert "bounce" in listing, listing
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<carol@example.test>")
    c.expect(550, "5.1.1", "RCPT TO:<%s>" % svc)


def test_delivery_restarts_the_bounce_count(make_sluice, far, db_backend):
    """Bounces count "in a row": a copy delivered to the real address sets
    the count back to 0, so limit-1 bounces, a success and one more bounce
    leave the service active."""
    far.replies["flaky@far.test"] = "550 5.2.1 mailbox disabled for now"
    s = make_sluice("mask-domain %s\nmask-key %s\nmask-bounce-limit 2\n"
                    "route far.test via 127.0.0.1:%d\n" % (MASKDOM, KEY, far.port))
    s.add_account("carol@example.test")
    svc = new_service(s, real="flaky@far.test")

    def write():
        t = tag()
        send(s, "carol@example.test", [svc], b"From: Carol <carol@example.test>\n"
             b"Subject: " + t.encode() + b"\n\nhello\n")
        return t

    def bounces():
        line = [x for x in s.cli("mask", "list").stdout.splitlines()
                if svc in x][0]
        return int(re.search(r"bounces=(\d+)", line).group(1)), line

    write()
    wait_for(lambda: bounces()[0] == 1, what="one bounce counted")
    del far.replies["flaky@far.test"]
    t = write()
    wait_for(lambda: any(t.encode() in d for _, _, d in far.messages),
             what="the copy delivered")
    wait_for(lambda: bounces()[0] == 0, what="the count restarted")
    far.replies["flaky@far.test"] = "550 5.2.1 mailbox disabled again"
    write()
    wait_for(lambda: bounces()[0] == 1, what="one bounce counted again")
    assert "active" in bounces()[1], bounces()[1]


def test_bounce_addresses_take_only_real_bounces(relay):
    s = relay
    svc = new_service(s)
    got = first_contact(s, svc, tag())
    user = re.search(rb"<(user-[a-z2-7]+@[^>]+)>", header_section(got)).group(1).decode()
    r = tag()
    send(s, DESK, [user], b"From: desk@example.test\nSubject: re\n\n" + r.encode() + b"\n")
    wait_for(lambda: any(r.encode() in d for _, _, d in s.far.messages), what="the reply")
    verp = [f for f, _, d in s.far.messages if r.encode() in d][0]
    local, dom = verp.split("@")
    forged = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + dom
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<spammer@evil.test>")
    c.expect(550, "5.7.1", "RCPT TO:<%s>" % verp)      # only the null sender
    c.expect(250, "2.0.0", "RSET")
    c.expect(250, "2.1.0", "MAIL FROM:<>")
    c.expect(550, "5.1.1", "RCPT TO:<%s>" % forged)    # backscatter: refused
    # Alice's server bounces the reply later: the service hears of it,
    # naming only the user address, never Alice's
    c.expect(250, "2.1.5", "RCPT TO:<%s>" % verp)
    c.expect(354, None, "DATA")
    c.send(b"From: MAILER-DAEMON@far.test\r\nTo: <" + verp.encode() + b">\r\n"
           b"Subject: Undelivered\r\nContent-Type: multipart/report; "
           b"report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\n"
           b"mailbox of alice@far.test is full\r\n--b\r\nContent-Type: "
           b"message/delivery-status\r\n\r\nReporting-MTA: dns; far.test\r\n\r\n"
           b"Final-Recipient: rfc822; alice@far.test\r\nAction: failed\r\n"
           b"Status: 5.2.2\r\n--b--\r\n.\r\n")
    c.expect(250, "2.0.0")
    notice = wait_for(lambda: [m for m in s.messages(DESK) if b"Undelivered Mail" in m],
                      what="the notice to the service")[0]
    assert user.encode() in notice and b"alice" not in notice
    # a delay notice is neither told nor counted
    c.expect(250, "2.1.0", "MAIL FROM:<>")
    c.expect(250, "2.1.5", "RCPT TO:<%s>" % verp)
    c.expect(354, None, "DATA")
    c.send(b"Subject: Delayed\r\n\r\nFinal-Recipient: rfc822; alice@far.test\r\n"
           b"Action: delayed\r\n.\r\n")
    c.expect(250, "2.0.0")
    wait_for(lambda: "delay notice for pair" in s.read_log(), what="the delay drop")
    assert len([m for m in s.messages(DESK) if b"Undelivered Mail" in m]) == 1


def test_expired_service_is_unknown(relay):
    s = relay
    svc = new_service(s)
    code = svc.split("@")[0][len("service-"):]
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<%s>" % ALICE)
    c.expect(250, "2.1.5", "RCPT TO:<%s>" % svc)
    s.db.sql("UPDATE mask_services SET expires = 1000 WHERE code = '%s'" % code)
    c.expect(550, "5.1.1", "RCPT TO:<%s>" % svc)
