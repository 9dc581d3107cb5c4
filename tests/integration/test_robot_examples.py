"""The example robots of examples/robots/, each run end to end by a real
sluiced as robot-user (nobody when the tests run as root), replying
through the real `sluice sendmail`."""
import email
import email.policy
import os
import shutil
import smtplib
import subprocess

import pytest

from sluice_harness import REPO, SLUICE, tag, wait_for

EXAMPLES = os.path.join(REPO, "examples", "robots")


def robot_world(make_sluice, aliases):
    """A sluice whose aliases run copies of the example robots (copied so
    that any user can read them wherever the checkout is), with a state
    directory the robot's user may write, and a copy of the sluice
    command for their replies."""
    s = make_sluice(start=False)
    robots = os.path.join(s.dir, "robots")
    shutil.copytree(EXAMPLES, robots)
    bindir = os.path.join(s.dir, "bin")
    os.mkdir(bindir)
    shutil.copy2(SLUICE, os.path.join(bindir, "sluice"))
    state = os.path.join(s.dir, "state")
    os.mkdir(state)
    os.chmod(state, 0o1777)
    os.chmod(s.conf, 0o644)
    for p in (s.dir, robots, bindir):
        os.chmod(p, 0o755)
    sendmail = "%s -c %s sendmail" % (os.path.join(bindir, "sluice"), s.conf)
    text = aliases.format(robots=robots, state=state, sendmail=sendmail, dir=s.dir)
    path = os.path.join(s.dir, "aliases")
    with open(path, "w") as f:
        f.write(text)
    with open(s.conf, "a") as f:
        f.write("aliases %s\n" % path)
    s.add_account("sender@example.test")
    s.start()
    return s, state


def send(s, rcpt, subject, sender="sender@example.test", headers="", body="hello\n"):
    msg = "From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@client.test>\r\n%s\r\n%s" % (
        sender, rcpt, subject, tag(), headers, body.replace("\n", "\r\n"))
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.sendmail(sender, [rcpt], msg.encode())


def parsed(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_ticket_robot_files_and_replies(make_sluice):
    s, state = robot_world(make_sluice, 'support: "|/usr/bin/python3 {robots}/ticket.py '
                     '{state} {sendmail}"\n')
    send(s, "support@example.test", "printer on fire")
    send(s, "support@example.test", "still on fire")
    replies = s.wait_messages("sender@example.test", 2)
    wait_for(s.queue_empty, what="the queue to empty")
    subjects = sorted(parsed(r)["Subject"] for r in replies)
    assert subjects == ["[ticket #1] printer on fire", "[ticket #2] still on fire"] or \
        subjects == ["[ticket #1] still on fire", "[ticket #2] printer on fire"]
    for r in replies:
        m = parsed(r)
        assert m["Auto-Submitted"] == "auto-replied"
        assert m["In-Reply-To"]
    assert sorted(f for f in os.listdir(state) if f.endswith(".eml")) == \
        ["000001.eml", "000002.eml"]
    assert b"printer on fire" in open(os.path.join(state, "000001.eml"), "rb").read() + \
        open(os.path.join(state, "000002.eml"), "rb").read()


def test_ticket_robot_is_idempotent_and_silent_to_bulk(make_sluice, tmp_path):
    """The same DELIVERY_ID twice makes one ticket; bulk mail and bounces
    get no reply (run directly, as delivery would)."""
    state = tmp_path / "t"
    state.mkdir()
    env = {"PATH": "/usr/bin:/bin", "SENDER": "a@b.test", "DELIVERY_ID": "f" * 32}
    argv = ["/usr/bin/python3", os.path.join(EXAMPLES, "ticket.py"), str(state),
            "/bin/false"]        # a reply would fail: exit 75
    msg = b"Subject: x\nPrecedence: bulk\n\nhi\n"
    for _ in range(2):
        r = subprocess.run(argv, input=msg, env=env, capture_output=True)
        assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(state)) == [".lock", "000001.eml", "counter", "done"]
    env["SENDER"] = ""
    env["DELIVERY_ID"] = "e" * 32
    r = subprocess.run(argv, input=b"Subject: bounce\n\nx\n", env=env, capture_output=True)
    assert r.returncode == 0 and os.path.exists(state / "000002.eml")


def test_vacation_once_per_sender(make_sluice):
    s, state = robot_world(make_sluice, 'away: "|/usr/bin/python3 {robots}/vacation.py '
                     '{state} 7 {dir}/away.txt {sendmail}"\n')
    with open(os.path.join(s.dir, "away.txt"), "w") as f:
        f.write("Out of office\nBack on Monday.\n")
    os.chmod(os.path.join(s.dir, "away.txt"), 0o644)
    send(s, "away@example.test", "one")
    reply = s.wait_messages("sender@example.test", 1)[0]
    assert parsed(reply)["Subject"] == "Out of office"
    assert b"Back on Monday." in reply
    send(s, "away@example.test", "two")
    send(s, "away@example.test", "list mail", headers="Precedence: list\r\n")
    wait_for(s.queue_empty, what="the queue to empty")
    wait_for(lambda: s.read_log().count("delivered to command") >= 3, what="three runs")
    assert len(s.messages("sender@example.test")) == 1


def test_attachments_robot_saves_files_safely(make_sluice):
    s, state = robot_world(make_sluice, 'scans: "|/usr/bin/python3 {robots}/attachments.py '
                     '{state}"\n')
    body = ("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename=\"../../evil.txt\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n"
            "--b\r\nContent-Type: application/octet-stream\r\n"
            "Content-Disposition: attachment; filename=\"evil.txt\"\r\n\r\nsecond\r\n"
            "--b--\r\n")
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.sendmail("sender@example.test", ["scans@example.test"],
                   ("Subject: scan\r\n" + body).encode())
    wait_for(s.queue_empty, what="the queue to empty")
    dirs = os.listdir(state)
    assert len(dirs) == 1 and len(dirs[0]) == 32          # DELIVERY_ID
    files = sorted(os.listdir(os.path.join(state, dirs[0])))
    assert files == ["evil-1.txt", "evil.txt"]
    assert open(os.path.join(state, dirs[0], "evil.txt"), "rb").read() == b"hello world"
    assert not os.path.exists(os.path.join(s.dir, "evil.txt"))
