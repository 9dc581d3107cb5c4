"""The files table backend (issue 4: "files, SQLite, PostgreSQL"):
domains and accounts in two plain files, read again when they change;
read-only for the commands; an unreadable file is a temporary failure."""
import os
import shutil
import smtplib

import pytest

from sluice_harness import RUN_USER, Sluice, tag, wait_for


@pytest.fixture
def files_sluice():
    s = Sluice()
    tables = os.path.join(s.dir, "tables")
    os.mkdir(tables)
    with open(os.path.join(tables, "domains"), "w") as f:
        f.write("# the domains of this server\nExample.test\n\n")
    with open(os.path.join(tables, "accounts"), "w") as f:
        f.write("alice@example.test  $y$j9T$fake$hash   # a comment\nBOB@example.test\n")
    if os.geteuid() == 0:
        for p in (tables, os.path.join(tables, "domains"), os.path.join(tables, "accounts")):
            shutil.chown(p, RUN_USER, RUN_USER)
    with open(s.conf, "a") as f:
        f.write("database files:%s\n" % tables)
    s.tables = tables
    try:
        s.start()
        yield s
    finally:
        s.cleanup()


def rcpt(s, addr):
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.ehlo()
        c.mail("x@client.test")
        return c.rcpt(addr)


def test_accounts_from_files(files_sluice):
    s = files_sluice
    t = tag()
    with smtplib.SMTP("127.0.0.1", s.smtp_port) as c:
        c.sendmail("x@client.test", ["alice@example.test", "bob@EXAMPLE.test"],
                   ("Subject: %s\r\n\r\nhi\r\n" % t).encode())
    assert t.encode() in s.wait_messages("alice@example.test", 1)[0]
    assert t.encode() in s.wait_messages("bob@example.test", 1)[0]
    assert rcpt(s, "carol@example.test")[0] == 550
    assert rcpt(s, "someone@elsewhere.test")[0] == 554      # not ours: no relay
    out = s.cli("account", "list").stdout
    assert "alice@example.test" in out and "bob@example.test" in out


def test_an_edit_applies_to_the_next_message(files_sluice):
    s = files_sluice
    assert rcpt(s, "carol@example.test")[0] == 550
    with open(os.path.join(s.tables, "accounts"), "a") as f:
        f.write("carol@example.test\n")
    assert rcpt(s, "carol@example.test")[0] == 250


def test_read_only_for_the_commands(files_sluice):
    s = files_sluice
    r = s.cli("account", "add", "dave@example.test", "--password-stdin",
              input="correct horse battery staple\n", check=False)
    assert r.returncode != 0 and "read-only" in r.stderr
    r = s.cli("domain", "add", "other.test", check=False)
    assert r.returncode != 0 and "read-only" in r.stderr
    assert s.cli("check").returncode == 0


def test_unreadable_file_is_a_temporary_failure(files_sluice):
    s = files_sluice
    path = os.path.join(s.tables, "accounts")
    os.rename(path, path + ".away")
    code, text = rcpt(s, "alice@example.test")
    assert code == 451, (code, text)
    os.rename(path + ".away", path)
    wait_for(lambda: rcpt(s, "alice@example.test")[0] == 250, what="recovery")
