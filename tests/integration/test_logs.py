"""The log contract: one line per event, the queue ID first after the
process tag, key=value fields; `log-format json` gives the same as JSON."""
import json
import smtplib

import pytest

from sluice_harness import good_message, tag, wait_for

DEMO = "demo@example.test"


def send(s, t):
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.ehlo("log.client.test")
        c.mail("logger@client.test")
        c.rcpt(DEMO)
        code, text = c.data(good_message(t))
    assert code == 250
    return text.decode().split()[-1]


def test_text_log_traces_a_message_by_id(sluice):
    qid = send(sluice, tag())
    wait_for(lambda: "%s: removed" % qid in sluice.read_log(), what="removed")
    lines = [l for l in sluice.read_log().splitlines() if qid in l]
    for l in lines:
        # "<time> <proc>[<pid>]: <QID>: ..."
        assert l.split()[2] == qid + ":", l
    assert any("from=<logger@client.test>" in l for l in lines)
    sent = [l for l in lines if "status=sent" in l]
    assert len(sent) == 1
    assert "to=<demo@example.test>" in sent[0] and "relay=maildir" in sent[0]
    assert "delay=" in sent[0]


def test_text_log_records_rejections_and_disconnects(sluice):
    from sluice_harness import RawSMTP
    c = RawSMTP(sluice.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<x@client.test>")
    c.expect(550, "5.1.1", "RCPT TO:<nobody@example.test>")
    c.expect(221, "2.0.0", "QUIT")
    wait_for(lambda: "disconnect from 127.0.0.1" in sluice.read_log().split(
        "to=<nobody@example.test>")[-1], what="disconnect line")
    log = sluice.read_log()
    assert "unknown recipient from=<x@client.test> to=<nobody@example.test>" in log


def json_records(s):
    return [json.loads(l) for l in s.read_log().splitlines() if l.startswith("{")]


def json_run(make_sluice):
    s = make_sluice("log-format json\n")
    qid = send(s, tag())
    wait_for(lambda: any(str(r.get("status", "")).startswith("sent")
                         for r in json_records(s) if qid in json.dumps(r)),
             what="a JSON status=sent record")
    return s, qid, [r for r in json_records(s) if qid in json.dumps(r)]


def test_json_log(make_sluice):
    s, qid, recs = json_run(make_sluice)
    # every line of the log is a JSON object
    lines = [l for l in s.read_log().splitlines() if l.strip()]
    assert lines and all(isinstance(json.loads(l), dict) for l in lines)
    sent = [r for r in recs if str(r.get("status", "")).startswith("sent")]
    assert len(sent) == 1, recs
    r = sent[0]
    assert r["proc"] == "queue" and isinstance(r["pid"], int) and r["time"]
    assert r["to"] == "<demo@example.test>", r
    assert r["relay"] == "maildir", r
    assert "delay" in r


def test_json_log_has_the_from_field(make_sluice):
    s, qid, recs = json_run(make_sluice)
    assert any(x.get("from") == "<logger@client.test>" for x in recs), recs
    assert any(x.get("nrcpt") == "1" for x in recs), recs


def test_json_log_id_is_the_queue_id(make_sluice):
    s, qid, recs = json_run(make_sluice)
    assert all(r.get("id") == qid for r in recs), [r.get("id") for r in recs]
