"""Aliases in the database (issue 4): `sluice alias add|del|list` change
delivery at once, without a reload; commands and files only when the
administrator allows them; the schema is versioned and migrated.

Every test runs on both backends: [sqlite] and [postgresql] (a throwaway
server, pg_harness.py)."""
import json
import os
import signal
import smtplib
import sqlite3

import pytest

from sluice_harness import tag, wait_for
from test_aliases import robot, send

pytestmark = pytest.mark.db_backends


def test_alias_add_takes_effect_at_once(make_sluice):
    s = make_sluice()
    s.add_account("alice@example.test")
    s.add_account("bob@example.test")
    r = s.cli("alias", "add", "Team@Example.test", "alice", "<bob@example.test>",
              check=False)
    # an unqualified target is refused in the database: say which
    assert r.returncode == 65 and "alice" in r.stderr
    s.cli("alias", "add", "Team@Example.test", "alice@example.test", "<bob@example.test>")
    t = tag()
    send(s, ["team@example.test"], t)
    assert t.encode() in s.wait_messages("alice@example.test", 1)[0]
    assert t.encode() in s.wait_messages("bob@example.test", 1)[0]
    out = json.loads(s.cli("alias", "list", "--json").stdout)
    assert [(a["address"], a["target"]) for a in out] == [
        ("team@example.test", "alice@example.test"), ("team@example.test", "bob@example.test")]
    assert "team@example.test: bob@example.test" in s.cli("alias", "list", "example.test").stdout
    s.cli("alias", "del", "team@example.test", "bob@example.test")
    t2 = tag()
    send(s, ["team@example.test"], t2)
    s.wait_messages("alice@example.test", 2)
    wait_for(s.queue_empty, what="the queue to empty")
    assert len(s.messages("bob@example.test")) == 1
    s.cli("alias", "del", "team@example.test")
    r = s.cli("alias", "del", "team@example.test", check=False)
    assert r.returncode == 67 and "no such alias" in r.stderr


def test_alias_bad_input(make_sluice):
    s = make_sluice()
    for args, code in [
            (("add", "x@nowhere.test", "a@b.test"), 67),       # not a local domain
            (("add", "noat", "a@b.test"), 65),
            (("add", "a*b*@example.test", "a@b.test"), 65),
            (("add", "x@example.test", "not an address"), 65),
            (("add", "x@example.test", "a@b.test\nEvil: yes"), 65),
            (("add", "x@example.test", "|/usr/bin/robot"), 77),  # not allowed
            (("add", "x@example.test", "/tmp/file.mbox"), 77),
            (("add", "x@example.test", "a@b.test", "--owner", "no-such-user"), 67),
            (("add", "x@example.test", "a@b.test", "--owner", "root"), 65),
            (("frobnicate",), 64)]:
        r = s.cli("alias", *args, check=False)
        assert r.returncode == code, (args, r.returncode, r.stderr)
    assert json.loads(s.cli("alias", "list", "--json").stdout) == []
    # SQL metacharacters are data, not SQL
    s.cli("alias", "add", "o'neil@example.test", "x'--@remote.test")
    assert "o'neil@example.test: x'--@remote.test" in s.cli("alias", "list").stdout
    r = s.cli("alias", "add", "o'neil;drop@example.test", "x@remote.test", check=False)
    assert r.returncode == 65


def test_database_robot_only_when_allowed(make_sluice):
    s = make_sluice(start=False)
    r, out = robot(s, "dbbot", "cat > %s/got\n" % os.path.join(s.dir, "out"))
    s.start()
    s.add_account("sender@example.test")
    # a row written behind sluice's back (a web form): never run
    s.db.sql("INSERT INTO aliases (address, target, owner, created) "
             "VALUES ('form@example.test', '|%s', '', 0)" % r)
    # with its only target ignored the alias does not exist: refused at RCPT
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.ehlo()
        c.mail("sender@example.test")
        assert c.rcpt("form@example.test")[0] == 550
    s.wait_log(r"alias form@example.test: target .* ignored: commands and files "
               r"in database aliases need alias-database-commands yes")
    assert not os.path.exists(os.path.join(out, "got"))
    # allowed by the administrator: runs, as --owner
    with open(s.conf, "a") as f:
        f.write("alias-database-commands yes\n")
    s.proc.send_signal(signal.SIGHUP)
    s.wait_log(r"reloading configuration")
    s.cli("alias", "add", "robot@example.test", "|%s" % r, "--owner", "nobody")
    t = tag()

    def accepted():     # the lookup process reloads a moment after the log line
        try:
            send(s, ["robot@example.test"], t)
            return True
        except smtplib.SMTPRecipientsRefused:
            return False
    wait_for(accepted, what="the reloaded lookup process to accept robot@")
    wait_for(lambda: os.path.exists(os.path.join(out, "got")) and
             t.encode() in open(os.path.join(out, "got"), "rb").read(), what="the robot")


V1_SQLITE = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('schema_version', '1');
    CREATE TABLE domains (name TEXT PRIMARY KEY COLLATE NOCASE, created INTEGER NOT NULL);
    CREATE TABLE accounts (local TEXT NOT NULL COLLATE NOCASE,
        domain TEXT NOT NULL COLLATE NOCASE REFERENCES domains(name),
        password TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (local, domain));
    INSERT INTO domains VALUES ('old.test', 1);
    INSERT INTO accounts VALUES ('keep', 'old.test', 'x', 1);
"""
V1_PG = """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO meta VALUES ('schema_version', '1');
    CREATE TABLE domains (name TEXT PRIMARY KEY, created BIGINT NOT NULL);
    CREATE TABLE accounts (local TEXT NOT NULL,
        domain TEXT NOT NULL REFERENCES domains(name),
        password TEXT NOT NULL, created BIGINT NOT NULL, PRIMARY KEY (local, domain));
    INSERT INTO domains VALUES ('old.test', 1);
    INSERT INTO accounts VALUES ('keep', 'old.test', 'x', 1);
"""


def test_db_migrate_from_version_1(make_sluice, database):
    s = make_sluice(start=False)
    if database is None:
        path = os.path.join(s.dbdir, "sluice.db")
        os.remove(path) if os.path.exists(path) else None
        db = sqlite3.connect(path)
        db.executescript(V1_SQLITE)
        db.commit()
        db.close()
        if os.geteuid() == 0:
            import shutil
            from sluice_harness import RUN_USER
            shutil.chown(path, RUN_USER, RUN_USER)
    else:
        s.db.sql("DROP TABLE mask_events; DROP TABLE mask_pairs; DROP TABLE mask_services; "
                 "DROP TABLE aliases; DROP TABLE reset_tokens; DROP TABLE accounts; "
                 "DROP TABLE domains; DROP TABLE meta;")
        s.db.sql(V1_PG)
    r = s.cli("db", "migrate")
    assert "schema version 4" in r.stdout
    assert s.db.sql("SELECT value FROM meta WHERE key='schema_version'") == [["4"]]
    assert s.db.sql("SELECT local FROM accounts") == [["keep"]]
    # version 3: the account keeps its row, with empty recovery and send_as
    assert s.db.sql("SELECT recovery, send_as FROM accounts") == [["", ""]]
    s.db.sql("SELECT address, token_hash, expires FROM reset_tokens")
    s.db.sql("SELECT address, target, owner, created FROM aliases")
    # version 4: the masked relay's tables, empty
    assert s.db.sql("SELECT count(*) FROM mask_services") == [["0"]]
    assert s.db.sql("SELECT count(*) FROM mask_pairs") == [["0"]]
    s.db.sql("SELECT service, pair, kind, at FROM mask_events")
    # a newer schema than this sluice knows is refused, not changed
    s.db.sql("UPDATE meta SET value='99' WHERE key='schema_version'")
    r = s.cli("db", "migrate", check=False)
    assert r.returncode != 0 and "newer than this sluice" in r.stderr
    assert s.db.sql("SELECT value FROM meta WHERE key='schema_version'") == [["99"]]


def test_wildcard_catchall_and_case_in_the_database(make_sluice):
    s = make_sluice()
    s.add_domain("other.test")
    for a in ("alice", "bob", "carol"):
        s.add_account("%s@example.test" % a)
    s.cli("alias", "add", "Robot-*@Example.TEST", "alice@example.test")
    s.cli("alias", "add", "@other.test", "bob@example.test")
    # a row a script wrote in capitals is still found (names compare
    # case-insensitively on both backends); targets keep their order
    s.db.sql("INSERT INTO aliases (address, target, owner, created) "
             "VALUES ('Sales@EXAMPLE.test', 'carol@example.test', '', 1)")
    s.db.sql("INSERT INTO aliases (address, target, owner, created) "
             "VALUES ('Sales@EXAMPLE.test', 'alice@example.test', '', 1)")
    t1, t2, t3 = tag(), tag(), tag()
    send(s, ["robot-anything@example.test"], t1)
    send(s, ["whoever@Other.test"], t2)
    send(s, ["SALES@example.test"], t3)
    assert t1.encode() in s.wait_messages("alice@example.test", 1)[0]
    assert t2.encode() in s.wait_messages("bob@example.test", 1)[0]
    assert t3.encode() in s.wait_messages("carol@example.test", 1)[0]
    s.wait_messages("alice@example.test", 2)
    wait_for(s.queue_empty, what="the queue to empty")
    out = json.loads(s.cli("alias", "list", "example.test", "--json").stdout)
    assert [(a["address"], a["target"]) for a in out] == [   # sorted ignoring case
        ("robot-*@example.test", "alice@example.test"),
        ("Sales@EXAMPLE.test", "carol@example.test"),
        ("Sales@EXAMPLE.test", "alice@example.test")]
    s.cli("alias", "del", "sales@example.test", "carol@example.test")
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.ehlo()
        c.mail("x@client.test")
        assert c.rcpt("nobody@example.test")[0] == 550
        assert c.rcpt("sales@example.test")[0] == 250
