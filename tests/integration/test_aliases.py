"""Aliases (issue 4): the aliases file with local, remote, pipe (robot)
and file targets, :include:, extensions, wildcards, catch-all, loops,
reload on change and SIGHUP; robots run by a real sluiced as their user
with the contract's environment."""
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import stat
import textwrap

import pytest

from sluice_harness import RUN_USER, tag, wait_for

ROBOT_USER = "nobody"


def write_aliases(s, text, owner=None):
    path = os.path.join(s.dir, "aliases")
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    os.chmod(path, 0o644)
    if owner and os.geteuid() == 0:
        shutil.chown(path, owner, owner)
    return path


def robot(s, name, body):
    """An executable robot script in a directory every user may read."""
    d = os.path.join(s.dir, "robots")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    out = os.path.join(s.dir, "out")
    os.makedirs(out, exist_ok=True)
    os.chmod(out, 0o1777)
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + textwrap.dedent(body))
    os.chmod(path, 0o755)
    return path, out


def start(make_sluice, aliases_text, extra=""):
    s = make_sluice(extra, start=False)
    path = write_aliases(s, aliases_text.replace("DIR", s.dir))
    with open(s.conf, "a") as f:
        f.write("aliases %s\n" % path)
    return s


def send(s, rcpts, t, sender="sender@client.test", extra_headers=""):
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.sendmail(sender, rcpts, ("%sSubject: %s\r\n\r\nbody %s\r\n"
                                   % (extra_headers, t, t)).encode())


@pytest.mark.db_backends  # the accounts they reach are in the database
def test_alias_to_local_accounts(make_sluice):
    s = start(make_sluice, """\
        team: alice, bob@example.test
        # a comment
        staff: team,
          carol
        """)
    for a in ("alice", "bob", "carol"):
        s.add_account("%s@example.test" % a)
    s.start()
    t = tag()
    send(s, ["staff@example.test"], t)
    for a in ("alice", "bob", "carol"):
        m = s.wait_messages("%s@example.test" % a, 1)[0]
        assert t.encode() in m
        assert b"Delivered-To: %s@example.test" % a.encode() in m
    wait_for(s.queue_empty, what="the queue to empty")
    log = s.read_log()
    assert "to=<staff@example.test>" in log and "status=expanded (alias to 3 targets)" in log


@pytest.mark.db_backends  # the accounts they reach are in the database
def test_self_reference_and_dedupe(make_sluice):
    s = start(make_sluice, """\
        alice: alice, bob
        both: alice, bob, alice@example.test
        """)
    s.add_account("alice@example.test")
    s.add_account("bob@example.test")
    s.start()
    t = tag()
    send(s, ["both@example.test"], t)
    s.wait_messages("alice@example.test", 1)
    s.wait_messages("bob@example.test", 1)
    wait_for(s.queue_empty, what="the queue to empty")
    assert len(s.messages("alice@example.test")) == 1
    assert len(s.messages("bob@example.test")) == 1


@pytest.mark.db_backends  # the accounts they reach are in the database
def test_alias_loop_bounces(make_sluice):
    s = start(make_sluice, """\
        a: b
        b: a
        """)
    s.add_account("sender@example.test")
    s.start()
    t = tag()
    send(s, ["a@example.test"], t, sender="sender@example.test")
    dsn = s.wait_messages("sender@example.test", 1)[0]
    assert b"Status: 5.4.6" in dsn and b"alias loop" in dsn
    wait_for(s.queue_empty, what="the queue to empty")


@pytest.mark.db_backends  # the accounts they reach are in the database
def test_extension_and_wildcard_and_catchall(make_sluice):
    s = start(make_sluice, """\
        robot-*: alice
        @other.test: bob@example.test
        """)
    s.add_domain("other.test")
    s.add_account("alice@example.test")
    s.add_account("bob@example.test")
    s.add_account("carol@example.test")
    s.start()
    t1, t2, t3 = tag(), tag(), tag()
    send(s, ["carol+news@example.test"], t1)
    send(s, ["robot-anything@example.test"], t2)
    send(s, ["whoever@other.test"], t3)
    assert t1.encode() in s.wait_messages("carol@example.test", 1)[0]
    assert t2.encode() in s.wait_messages("alice@example.test", 1)[0]
    assert t3.encode() in s.wait_messages("bob@example.test", 1)[0]
    wait_for(s.queue_empty, what="the queue to empty")
    # unknown without a catch-all: refused at RCPT time
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.ehlo()
        c.mail("x@client.test")
        code, _ = c.rcpt("nobody@example.test")
        assert code == 550


def test_pipe_robot_environment_and_user(make_sluice):
    s = make_sluice(start=False)
    # a robot that records its environment, its uid, argv and stdin
    r, out = robot(s, "envbot", """\
        d=%s
        env | sort > "$d/env"
        id -u > "$d/uid"
        printf '%%s\\n' "$@" > "$d/argv"
        cat > "$d/stdin"
        ls /proc/self/fd > "$d/fds"
        """ % os.path.join(s.dir, "out"))
    path = write_aliases(s, """\
        robot: "|%s one 'two three' $HOME ;rm"
        """ % r)
    with open(s.conf, "a") as f:
        f.write("aliases %s\n" % path)
    s.start()
    t = tag()
    send(s, ["robot+x1@example.test"], t)
    wait_for(lambda: os.path.exists(os.path.join(out, "fds")), what="the robot to run")
    wait_for(s.queue_empty, what="the queue to empty")
    env = dict(l.split("=", 1) for l in open(os.path.join(out, "env")).read().splitlines())
    assert env["SENDER"] == "sender@client.test"
    assert env["RECIPIENT"] == "robot@example.test"
    assert env["LOCAL"] == "robot" and env["DOMAIN"] == "example.test"
    assert env["EXTENSION"] == "x1"
    assert env["ORIGINAL_RECIPIENT"] == "robot+x1@example.test"
    assert len(env["DELIVERY_ID"]) == 32 and env["QUEUE_ID"]
    assert env["PATH"].startswith("/usr/local/bin:/usr/bin:/bin")
    assert not set(env) - {"SENDER", "RECIPIENT", "LOCAL", "DOMAIN", "EXTENSION",
                           "ORIGINAL_RECIPIENT", "QUEUE_ID", "DELIVERY_ID", "PATH",
                           "HOME", "USER", "LOGNAME", "PWD", "SHLVL", "_"}, env
    argv = open(os.path.join(out, "argv")).read().splitlines()
    assert argv == ["one", "two three", "$HOME", ";rm"]        # no shell
    stdin = open(os.path.join(out, "stdin"), "rb").read()
    assert stdin.startswith(b"Return-Path: <sender@client.test>\nDelivered-To: ")
    assert t.encode() in stdin and b"\r\n" not in stdin
    assert sorted(open(os.path.join(out, "fds")).read().split()) == ["0", "1", "2", "3"]
    if os.geteuid() == 0:       # the aliases file is root's: robot-user runs it
        assert open(os.path.join(out, "uid")).read().strip() == \
            str(pwd.getpwnam(ROBOT_USER).pw_uid)
    assert "delivered to command" in s.read_log()


@pytest.mark.parametrize("code,state,text", [
    (0, None, None), (99, None, None), (75, "deferred", "4."), (111, "deferred", "4."),
    (2, "bounced", "5."),
])
def test_robot_exit_codes(make_sluice, code, state, text):
    s = make_sluice(start=False)
    r, out = robot(s, "exitbot", "cat >/dev/null\necho 'robot says no' >&2\nexit %d\n" % code)
    path = write_aliases(s, 'bot: "|%s"\n' % r)
    with open(s.conf, "a") as f:
        f.write("aliases %s\nretry-interval 1h\n" % path)
    s.add_account("sender@example.test")
    s.start()
    send(s, ["bot@example.test"], tag(), sender="sender@example.test")
    if state is None:
        wait_for(s.queue_empty, what="the queue to empty")
        assert "status=sent (delivered to command" in s.read_log()
    elif state == "deferred":
        s.wait_log(r"to=<bot@example.test>.*status=deferred")
        assert not s.queue_empty()
    else:
        dsn = s.wait_messages("sender@example.test", 1)[0]
        assert b"robot says no" in dsn
    assert "robot stderr: robot says no" in s.read_log() or code in (0, 99)


def test_robot_enhanced_status_and_missing_command(make_sluice):
    s = make_sluice(start=False)
    r, out = robot(s, "pickybot", "cat >/dev/null\necho '5.7.1 not for me'\nexit 0\n")
    path = write_aliases(s, 'picky: "|%s"\nghost: "|/nonexistent/robot"\n' % r)
    with open(s.conf, "a") as f:
        f.write("aliases %s\n" % path)
    s.add_account("sender@example.test")
    s.start()
    send(s, ["picky@example.test"], tag(), sender="sender@example.test")
    dsn = s.wait_messages("sender@example.test", 1)[0]
    assert b"5.7.1 not for me" in dsn
    send(s, ["ghost@example.test"], tag(), sender="sender@example.test")
    dsn = s.wait_messages("sender@example.test", 2)[1]
    assert b"/nonexistent/robot" in dsn
    wait_for(s.queue_empty, what="the queue to empty")


def test_file_target_mbox(make_sluice):
    s = make_sluice(start=False)
    box = os.path.join(s.dir, "archive")
    os.makedirs(box)
    os.chmod(box, 0o1777)
    mbox = os.path.join(box, "all.mbox")
    path = write_aliases(s, "archive: %s\n" % mbox)
    with open(s.conf, "a") as f:
        f.write("aliases %s\n" % path)
    s.start()
    t = tag()
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.sendmail("sender@client.test", ["archive@example.test"],
                   ("Subject: %s\r\n\r\nFrom here on\r\n>From there\r\n" % t).encode())
    wait_for(lambda: os.path.exists(mbox) and t.encode() in open(mbox, "rb").read(),
             what="the mbox")
    wait_for(s.queue_empty, what="the queue to empty")
    data = open(mbox, "rb").read()
    assert data.startswith(b"From sender@client.test ")
    assert b"\n>From here on\n>>From there\n" in data


def test_sequential_robot_exit_99_stops_the_rest(make_sluice):
    s = make_sluice(start=False)
    r, out = robot(s, "stopbot", "cat >/dev/null\nexit 99\n")
    path = write_aliases(s, 'chain: "|%s", alice\n' % r)
    with open(s.conf, "a") as f:
        f.write("aliases %s\n" % path)
    s.add_account("alice@example.test")
    s.start()
    send(s, ["chain@example.test"], tag())
    wait_for(s.queue_empty, what="the queue to empty")
    assert s.messages("alice@example.test") == []
    assert "skipped: a robot before it exited 99" in s.read_log()


def test_reload_on_change_and_bad_file_keeps_table(make_sluice):
    s = start(make_sluice, "one: alice\n")
    s.add_account("alice@example.test")
    s.add_account("bob@example.test")
    s.start()
    send(s, ["one@example.test"], tag())
    s.wait_messages("alice@example.test", 1)
    # a change is noticed without a signal
    write_aliases(s, "one: bob\n")
    os.utime(os.path.join(s.dir, "aliases"), (1, 1))
    send(s, ["one@example.test"], tag())
    s.wait_messages("bob@example.test", 1)
    # a broken file: error logged, the previous table stays
    write_aliases(s, "one bob\n")
    s.proc.send_signal(signal.SIGHUP)
    s.wait_log(r"aliases: .*aliases:1: .*keeping the previous table")
    send(s, ["one@example.test"], tag())
    s.wait_messages("bob@example.test", 2)


def test_check_reports_alias_errors(make_sluice):
    s = start(make_sluice, "a: b\nb: a\n")
    r = s.cli("check", check=False)
    assert r.returncode == 78
    assert "alias loop" in r.stderr
    write_aliases(s, "a b\n")
    r = s.cli("check", check=False)
    assert r.returncode == 78 and "aliases:1:" in r.stderr


@pytest.mark.db_backends  # the accounts they reach are in the database
def test_postmaster_of_the_hostname(make_sluice):
    """RFC 5321 4.5.1: <Postmaster> (qualified with the host name, always a
    local domain) reaches the bare postmaster alias."""
    s = start(make_sluice, "postmaster: admin@example.test\n")
    s.add_account("admin@example.test")
    s.start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.ehlo()
        c.mail("x@client.test")
        assert c.rcpt("<Postmaster>")[0] == 250
        assert c.data(b"Subject: hi\r\n\r\nhello\r\n")[0] == 250
    wait_for(lambda: len(s.messages("admin@example.test")) == 1, what="the message")


def test_robot_test_dry_run(make_sluice):
    s = make_sluice(start=False)
    r, out = robot(s, "drybot", """\
        d=%s
        env | sort > "$d/env"
        cat > "$d/stdin"
        echo "4.2.1 try later please" >&2
        exit 0
        """ % os.path.join(s.dir, "out"))
    path = write_aliases(s, 'helpdesk: alice, "|%s", %s/helpdesk.mbox\nloop1: loop2\nloop2: loop1\n'
                         % (r, s.dir))
    with open(s.conf, "a") as f:
        f.write("aliases %s\n" % path)
    s.add_account("alice@example.test")
    res = s.cli("robot", "test", "helpdesk+x@example.test", "--sender", "a@b.test",
                input=b"Subject: dry\n\nhello\n", check=False)
    assert res.returncode == 75, res          # the robot said 4.2.1
    out_text = res.stdout.decode() if isinstance(res.stdout, bytes) else res.stdout
    assert "mailbox alice@example.test (not written: dry run)" in out_text
    assert "file %s/helpdesk.mbox (not written: dry run)" % s.dir in out_text
    assert "outcome: deferred" in out_text and "4.2.1 try later please" in out_text
    env = dict(l.split("=", 1) for l in open(os.path.join(out, "env")).read().splitlines())
    assert env["RECIPIENT"] == "helpdesk@example.test" and env["EXTENSION"] == "x"
    assert env["SENDER"] == "a@b.test" and len(env["DELIVERY_ID"]) == 32
    assert open(os.path.join(out, "stdin"), "rb").read() == \
        b"Return-Path: <a@b.test>\nDelivered-To: helpdesk@example.test\nSubject: dry\n\nhello\n"
    assert not os.path.exists(os.path.join(s.dir, "helpdesk.mbox"))
    assert s.spool_files("incoming") == [] and s.messages("alice@example.test") == []
    res = s.cli("robot", "test", "nobody@example.test", input=b"", check=False)
    assert res.returncode == 67
    res = s.cli("robot", "test", "loop1@example.test", input=b"", check=False)
    assert res.returncode == 65


def test_broken_robot_is_held_not_spun(make_sluice):
    """After robot-max-failures temporary failures in a row the robot's
    mail is held; release runs it again."""
    s = make_sluice(start=False)
    flag = os.path.join(s.dir, "out", "fixed")
    r, out = robot(s, "flaky", "cat >/dev/null\n[ -e %s ] && exit 0\nexit 75\n" % flag)
    path = write_aliases(s, 'flaky: "|%s"\n' % r)
    with open(s.conf, "a") as f:
        f.write("aliases %s\nretry-interval 1s\nretry-max 1s\nrobot-max-failures 2\n"
                % path)
    s.start()
    send(s, ["flaky@example.test"], tag())
    m = s.wait_log(r"(\w+): held: the robot of <flaky@example.test> keeps failing")
    qid = m.group(1)
    wait_for(lambda: any(e["held"] for e in json.loads(
        s.cli("queue", "list", "--json").stdout)), what="the message held")
    runs = s.read_log().count("to=<flaky@example.test>")
    # held: no more runs however long we wait for the retry timer
    s.cli("queue", "flush")
    assert s.read_log().count("to=<flaky@example.test>") == runs
    open(flag, "w").close()
    os.chmod(flag, 0o644)
    s.cli("queue", "release", qid)
    wait_for(s.queue_empty, what="delivery after release")
    assert "status=sent (delivered to command" in s.read_log()


def test_shell_metacharacters_in_the_address_reach_the_robot_as_data(make_sluice):
    s = make_sluice(start=False)
    r, out = robot(s, "extbot", 'printf "%%s" "$EXTENSION" > %s/ext\n' % os.path.join(
        s.dir, "out"))
    path = write_aliases(s, 'bot: "|%s"\n' % r)
    with open(s.conf, "a") as f:
        f.write("aliases %s\n" % path)
    s.start()
    ext = "a'b`id`$HOME%c|d{e}"        # atext: legal in an address
    send(s, ["bot+%s@example.test" % ext], tag())
    wait_for(lambda: os.path.exists(os.path.join(out, "ext")), what="the robot")
    # the shell makes the file before printf writes it: read it once the
    # robot has exited (its message is then off the queue)
    wait_for(s.queue_empty, what="the queue to empty")
    assert open(os.path.join(out, "ext")).read() == ext


def test_ten_thousand_target_alias(make_sluice):
    """A 10,000-target alias (an :include: list) expands and is delivered,
    each target once, over a few reused connections to an smtp-sink."""
    import subprocess
    from sluice_harness import free_port
    port = free_port()
    args = [shutil.which("smtp-sink") or "/usr/sbin/smtp-sink", "-c",
            "127.0.0.1:%d" % port, "100"]
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
    sink = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        s = make_sluice(start=False)
        lst = os.path.join(s.dir, "big.list")
        with open(lst, "w") as f:
            f.write("".join("u%d@far.test\n" % i for i in range(10000)))
        os.chmod(lst, 0o644)
        path = write_aliases(s, "big: :include:%s\n" % lst)
        with open(s.conf, "a") as f:
            f.write("aliases %s\nroute far.test via 127.0.0.1:%d\n" % (path, port))
        s.start()
        send(s, ["big@example.test"], tag())
        wait_for(s.queue_empty, timeout=180, what="10,000 deliveries")
        log = s.read_log()
        assert "status=expanded (alias to 10000 targets)" in log
        assert log.count("status=sent") == 10000
        assert "status=deferred" not in log and "status=bounced" not in log
    finally:
        sink.terminate()
        out = sink.communicate()[0].decode("utf-8", "replace")
    counts = re.findall(r"sess=(\d+) quit=\d+ mesg=(\d+)", out)
    assert counts and int(counts[-1][1]) == 200          # 50 recipients each
    assert int(counts[-1][0]) <= 20, counts[-1]          # reused connections


def test_robot_that_always_defers_bounces_at_queue_lifetime(make_sluice):
    s = make_sluice(start=False)
    r, out = robot(s, "busybot", "cat >/dev/null\necho 'busy, come back later' >&2\nexit 75\n")
    path = write_aliases(s, 'busy: "|%s"\n' % r)
    with open(s.conf, "a") as f:
        f.write("aliases %s\nretry-interval 1s\nretry-max 1s\nrobot-max-failures 1000\n"
                "max-queue-lifetime 3s\n" % path)
    s.add_account("sender@example.test")
    s.start()
    send(s, ["busy@example.test"], tag(), sender="sender@example.test")
    dsn = s.wait_messages("sender@example.test", 1)[0]
    assert b"5.4.7" in dsn and b"busy, come back later" in dsn
    wait_for(s.queue_empty, what="the queue to empty")
    assert s.read_log().count("to=<busy@example.test>") >= 2     # it was retried


def test_robot_concurrency_limit(make_sluice):
    """robot-concurrency 1: runs of one robot never overlap."""
    s = make_sluice(start=False)
    d = os.path.join(s.dir, "out")
    r, out = robot(s, "slowbot", """\
        cat >/dev/null
        if ! mkdir %s/running 2>/dev/null; then touch %s/overlap; fi
        sleep 0.2
        echo x >> %s/runs
        rmdir %s/running 2>/dev/null
        exit 0
        """ % (d, d, d, d))
    path = write_aliases(s, 'slow: "|%s"\n' % r)
    with open(s.conf, "a") as f:
        f.write("aliases %s\nrobot-concurrency 1\n" % path)
    s.start()
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        for i in range(4):
            c.sendmail("a@client.test", ["slow@example.test"], b"Subject: %d\r\n\r\nx\r\n" % i)
    wait_for(s.queue_empty, what="the queue to empty")
    assert open(os.path.join(out, "runs")).read().count("x") == 4
    assert not os.path.exists(os.path.join(out, "overlap"))
