"""Account commands of issue 5: reset tokens (printed or mailed to the
recovery address), `account set` (recovery, send-as), `del` removing the
aliases that point at the account, `export` / `import` (a tar: the rows and
the Maildir; no duplicates; hostile archives refused before anything is
written).

Tests marked db_backends run on SQLite and on a throwaway PostgreSQL."""
import io
import os
import re
import shutil
import smtplib
import tarfile

import pytest

from sluice_harness import RUN_USER, Sluice, tag, wait_for

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_NOPERM = 64, 65, 67, 77
PW = "correct horse battery"
TOKEN_RE = re.compile(r"^[a-z2-7]{32}$")


def chown_tree(path):
    if os.geteuid() != 0:
        return
    for root, dirs, files in os.walk(path):
        shutil.chown(root, RUN_USER, RUN_USER)
        for n in dirs + files:
            os.lchown(os.path.join(root, n), *_ids())


def _ids():
    import pwd
    p = pwd.getpwnam(RUN_USER)
    return p.pw_uid, p.pw_gid


def backup_dir(s):
    d = os.path.join(s.dir, "backup")
    os.makedirs(d, exist_ok=True)
    chown_tree(d)
    return d


def password_hash(s, local="demo"):
    return s.db.sql("SELECT password FROM accounts WHERE local = '%s'" % local)[0][0]


def passwd(s, addr, token, pw="a new password 1"):
    return s.cli("account", "passwd", addr, "--password-stdin", "--token", token,
                 input=pw + "\n", check=False)


def send(s, rcpt, t, extra=""):
    msg = "From: a@remote.test\r\nTo: %s\r\nSubject: %s\r\n%s\r\nbody %s\r\n" % (
        rcpt, t, extra, t)
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=30) as c:
        c.sendmail("a@remote.test", [rcpt], msg)


def snapshot(top):
    """{relative path: bytes or 'dir'} of everything under top."""
    out = {}
    for root, dirs, files in os.walk(top):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), top)] = "dir"
        for f in files:
            p = os.path.join(root, f)
            if os.path.islink(p):
                out[os.path.relpath(p, top)] = "link"
            elif not os.path.isfile(p):
                out[os.path.relpath(p, top)] = "special"
            else:
                with open(p, "rb") as fh:
                    out[os.path.relpath(p, top)] = fh.read()
    return out


# ---- reset tokens ----

@pytest.mark.db_backends
def test_reset_token_works_once(make_sluice):
    s = make_sluice(start=False)
    before = password_hash(s)
    tok = s.cli("account", "reset", "demo@example.test").stdout.strip()
    assert TOKEN_RE.match(tok), tok
    stored = s.db.sql("SELECT token_hash FROM reset_tokens")[0][0]
    assert tok not in stored and re.match(r"^[0-9a-f]{64}$", stored)
    # a wrong token: refused, the password unchanged, the token still good
    r = passwd(s, "demo@example.test", "a" * 32)
    assert r.returncode == EX_NOPERM and "invalid or expired reset token" in r.stderr
    r = passwd(s, "demo@example.test", "not-a-token; rm -rf /")
    assert r.returncode == EX_NOPERM
    assert password_hash(s) == before
    r = passwd(s, "demo@example.test", tok)
    assert r.returncode == 0, r.stderr
    after = password_hash(s)
    assert after != before and after.startswith("$y$")
    # once only
    r = passwd(s, "demo@example.test", tok, pw="yet another password")
    assert r.returncode == EX_NOPERM
    assert password_hash(s) == after
    assert s.db.sql("SELECT count(*) FROM reset_tokens") == [["0"]]


@pytest.mark.db_backends
def test_reset_token_expired(make_sluice):
    s = make_sluice(start=False)
    before = password_hash(s)
    tok = s.cli("account", "reset", "demo@example.test", "--ttl", "60").stdout.strip()
    s.db.sql("UPDATE reset_tokens SET expires = 1000")
    r = passwd(s, "demo@example.test", tok)
    assert r.returncode == EX_NOPERM
    assert password_hash(s) == before
    assert s.db.sql("SELECT count(*) FROM reset_tokens") == [["0"]]
    # a new reset replaces an earlier token
    t1 = s.cli("account", "reset", "demo@example.test").stdout.strip()
    t2 = s.cli("account", "reset", "demo@example.test").stdout.strip()
    assert passwd(s, "demo@example.test", t1).returncode == EX_NOPERM
    assert passwd(s, "demo@example.test", t2).returncode == 0


def test_reset_bad_input(make_sluice):
    s = make_sluice(start=False)
    for args, code in [
            (("reset", "demo@example.test", "--ttl", "59"), EX_USAGE),
            (("reset", "demo@example.test", "--ttl", "604801"), EX_USAGE),
            (("reset", "demo@example.test", "--ttl", "1h"), EX_USAGE),
            (("reset", "demo@example.test", "--ttl"), EX_USAGE),
            (("reset", "nobody@example.test"), EX_NOUSER),
            (("reset", "demo@example.test", "--yes"), EX_USAGE),
            (("passwd", "nobody@example.test", "--token", "x"), EX_NOUSER)]:
        r = s.cli("account", *args, input="whatever password\n", check=False)
        assert r.returncode == code, (args, r.returncode, r.stderr)
    assert s.db.sql("SELECT count(*) FROM reset_tokens") == [["0"]]


@pytest.mark.db_backends
def test_reset_mail_to_recovery(make_sluice):
    s = make_sluice()
    r = s.cli("account", "reset", "demo@example.test", "--mail", check=False)
    assert r.returncode == EX_NOUSER and "recovery address" in r.stderr
    s.add_account("rescue@example.test")
    s.cli("account", "set", "demo@example.test", "--recovery", "Rescue@Example.test")
    assert s.db.sql("SELECT recovery FROM accounts WHERE local = 'demo'") == [
        ["rescue@example.test"]]
    r = s.cli("account", "reset", "demo@example.test", "--mail")
    assert r.stdout == ""            # not printed: mailed
    msg = s.wait_messages("rescue@example.test", 1)[0].decode()
    tok = re.search(r"^    ([a-z2-7]{32})$", msg, re.M).group(1)
    assert "demo@example.test" in msg
    before = password_hash(s)
    assert passwd(s, "demo@example.test", tok).returncode == 0
    assert password_hash(s) != before
    # add --recovery sets it at once
    s.cli("account", "add", "bob@example.test", "--password-stdin", "--recovery",
          "rescue@example.test", input=PW + "\n")
    assert s.db.sql("SELECT recovery FROM accounts WHERE local = 'bob'") == [
        ["rescue@example.test"]]


# ---- account set ----

@pytest.mark.db_backends
def test_set_send_as_and_recovery(make_sluice):
    s = make_sluice(start=False)
    s.cli("account", "set", "demo@example.test", "--send-as", "  *@Example.test   info@other.test ")
    assert s.db.sql("SELECT send_as FROM accounts WHERE local = 'demo'") == [
        ["*@example.test info@other.test"]]
    s.cli("account", "set", "demo@example.test", "--send-as", "*", "--recovery", "x@remote.test")
    assert s.db.sql("SELECT send_as, recovery FROM accounts WHERE local = 'demo'") == [
        ["*", "x@remote.test"]]
    s.cli("account", "set", "demo@example.test", "--recovery", "")
    assert s.db.sql("SELECT send_as, recovery FROM accounts WHERE local = 'demo'") == [
        ["*", ""]]
    for args, code in [
            (("--send-as", "foo"), EX_DATAERR),                # no '@'
            (("--send-as", "@example.test"), EX_DATAERR),
            (("--send-as", "a@b@c"), EX_DATAERR),
            (("--send-as", "a@b.test\tc@d.test"), EX_DATAERR),  # control char
            (("--send-as", "a@b.test\nEvil: x"), EX_DATAERR),
            (("--send-as", "x" * 300 + "@b.test"), EX_DATAERR),
            (("--send-as", " ".join("u%d@example.test" % i for i in range(80))), EX_DATAERR),
            (("--send-as", "a\"b@example.test"), EX_DATAERR),
            (("--recovery", "not an address"), EX_DATAERR),
            (("--recovery", "a@b@c"), EX_DATAERR),
            ((), EX_USAGE)]:
        r = s.cli("account", "set", "demo@example.test", *args, check=False)
        assert r.returncode == code, (args, r.returncode, r.stderr)
    r = s.cli("account", "set", "nobody@example.test", "--send-as", "*", check=False)
    assert r.returncode == EX_NOUSER
    assert s.db.sql("SELECT send_as, recovery FROM accounts WHERE local = 'demo'") == [
        ["*", ""]]
    help_ = s.cli("account", "--help").stdout
    for word in ("reset", "export", "import", "--send-as", "--token"):
        assert word in help_


# ---- del ----

@pytest.mark.db_backends
def test_del_removes_aliases_token_and_maildir(make_sluice):
    s = make_sluice(start=False)
    s.add_account("bob@example.test")
    s.cli("alias", "add", "info@example.test", "demo@example.test")
    s.cli("alias", "add", "team@example.test", "Demo@Example.test", "bob@example.test")
    s.cli("account", "reset", "demo@example.test")
    md = s.maildir("demo@example.test")
    assert os.path.isdir(md)
    r = s.cli("account", "del", "demo@example.test", check=False)   # no terminal
    assert r.returncode == EX_USAGE and os.path.isdir(md)
    s.cli("account", "del", "demo@example.test", "--yes")
    assert not os.path.exists(md)
    rows = s.db.sql("SELECT address, target FROM aliases ORDER BY address")
    assert rows == [["team@example.test", "bob@example.test"]]
    assert s.db.sql("SELECT count(*) FROM reset_tokens") == [["0"]]
    assert s.db.sql("SELECT count(*) FROM accounts WHERE local = 'demo'") == [["0"]]


# ---- export / import ----

def fill_maildir(s, addr, n=3):
    """Deliver n messages by SMTP, flag one into cur/, add a Maildir++ folder."""
    tags = [tag() for _ in range(n)]
    for t in tags:
        send(s, addr, t)
    s.wait_messages(addr, n)
    wait_for(s.queue_empty, what="the queue to empty")
    md = s.maildir(addr)
    first = sorted(os.listdir(os.path.join(md, "new")))[0]
    os.rename(os.path.join(md, "new", first), os.path.join(md, "cur", first + ":2,S"))
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, ".Archive", sub))
    with open(os.path.join(md, ".Archive", "cur", "1700000000.M1P1.host:2,RS"), "wb") as f:
        f.write(b"From: old@remote.test\r\nSubject: archived\r\n\r\nold\r\n")
    with open(os.path.join(md, ".Archive", "maildirfolder"), "wb") as f:
        f.write(b"")
    with open(os.path.join(md, "subscriptions"), "wb") as f:
        f.write(b"Archive\n")
    os.symlink("/etc/passwd", os.path.join(md, "cur", "evil-link"))
    os.mkfifo(os.path.join(md, "fifo"))
    chown_tree(md)
    return tags


def restorable(snap):
    """What import restores: everything but links, fifos and tmp/ files."""
    return {k: v for k, v in snap.items() if v not in ("link", "special")}


@pytest.mark.db_backends
def test_export_del_import_restores_everything(make_sluice):
    s = make_sluice()
    s.cli("alias", "add", "info@example.test", "demo@example.test")
    s.cli("account", "set", "demo@example.test", "--recovery", "r@remote.test",
          "--send-as", "*@example.test")
    fill_maildir(s, "demo@example.test")
    md = s.maildir("demo@example.test")
    before = restorable(snapshot(md))
    hash_before = password_hash(s)
    bdir = backup_dir(s)
    out = os.path.join(bdir, "demo.tar")
    s.cli("account", "export", "demo@example.test", out)
    assert os.path.exists(out) and not os.path.exists(out + ".tmp")
    with tarfile.open(out) as tf:
        names = tf.getnames()
        rec = tf.extractfile("sluice-account.txt").read().decode()
    assert "Maildir/cur/evil-link" not in names and "Maildir/fifo" not in names
    assert rec.startswith("sluice-account\t1\n") and rec.endswith("end\n")
    assert "alias\tinfo@example.test\tdemo@example.test\t" in rec
    assert "send_as\t*@example.test\n" in rec and "recovery\tr@remote.test\n" in rec

    s.cli("account", "del", "demo@example.test", "--yes")
    assert not os.path.exists(md)
    assert s.db.sql("SELECT count(*) FROM aliases") == [["0"]]
    r = s.cli("account", "import", out)
    assert "imported" in r.stdout
    after = snapshot(md)
    assert after == before
    assert password_hash(s) == hash_before
    assert s.db.sql("SELECT recovery, send_as FROM accounts WHERE local = 'demo'") == [
        ["r@remote.test", "*@example.test"]]
    assert s.db.sql("SELECT address, target FROM aliases") == [
        ["info@example.test", "demo@example.test"]]
    # the password still works for AUTH-less delivery: the account receives
    t = tag()
    send(s, "info@example.test", t)
    wait_for(lambda: any(t.encode() in m for m in s.messages("demo@example.test")),
             what="mail through the restored alias")

    # again: refused without --force; with it nothing is duplicated
    r = s.cli("account", "import", out, check=False)
    assert r.returncode == EX_DATAERR and "exists" in r.stderr
    n = len(s.messages("demo@example.test"))
    r = s.cli("account", "import", out, "--force")
    assert "0 files restored" in r.stdout
    assert len(s.messages("demo@example.test")) == n
    # a message moved to cur/ with other flags is still "present"
    cur = os.path.join(md, "cur")
    flagged = [f for f in os.listdir(cur) if f.endswith(":2,S")][0]
    os.rename(os.path.join(cur, flagged), os.path.join(cur, flagged[:-4] + ":2,RS"))
    s.cli("account", "import", out, "--force")
    assert len(s.messages("demo@example.test")) == n
    # export to stdout gives the same archive contents
    r = s.cli("account", "export", "demo@example.test", "-", input=b"")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        assert "sluice-account.txt" in tf.getnames()


def test_import_onto_another_server(make_sluice):
    s = make_sluice()
    fill_maildir(s, "demo@example.test", n=2)
    before = restorable(snapshot(s.maildir("demo@example.test")))
    out = os.path.join(backup_dir(s), "demo.tar")
    s.cli("account", "export", "demo@example.test", out)
    s2 = Sluice()
    try:
        shutil.copy(out, os.path.join(s2.dir, "demo.tar"))
        out2 = os.path.join(s2.dir, "demo.tar")
        # the domain must exist there
        r = s2.cli("account", "import", out2, check=False)
        assert r.returncode == EX_NOUSER and "not a local domain" in r.stderr
        s2.add_domain("example.test")
        s2.add_domain("new.test")
        s2.cli("account", "import", out2)
        assert restorable(snapshot(s2.maildir("demo@example.test"))) == before
        # under another name
        s2.cli("account", "import", out2, "--as", "moved@new.test")
        assert restorable(snapshot(s2.maildir("moved@new.test"))) == before
        assert s2.db_hash("moved") == s2.db_hash("demo")
    finally:
        s2.cleanup()


def _db_hash(self, local):
    import sqlite3
    db = sqlite3.connect(os.path.join(self.dbdir, "sluice.db"))
    try:
        return db.execute("SELECT password FROM accounts WHERE local = ?",
                          (local,)).fetchone()[0]
    finally:
        db.close()


Sluice.db_hash = _db_hash


# ---- hostile archives ----

RECORD = (b"sluice-account\t1\naddress\tnew@example.test\n"
          b"password\t$y$j9T$abcdefgh$ijklmnopqrstuvwxyz0123456789ABCDEFGHIJ\n"
          b"recovery\t\nsend_as\t\ncreated\t0\nend\n")


def _add(tf, name, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    for k, v in kw.items():
        setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data) if data else None)


def _tar(*entries, record=True):
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.GNU_FORMAT) as tf:
        if record:
            _add(tf, "sluice-account.txt", RECORD)
        _add(tf, "Maildir/", type=tarfile.DIRTYPE)
        _add(tf, "Maildir/cur/", type=tarfile.DIRTYPE)
        _add(tf, "Maildir/cur/1.M1P1.h:2,S", b"Subject: ok\r\n\r\nok\r\n")
        for e in entries:
            e(tf)
    return bio.getvalue()


def _huge():
    ti = tarfile.TarInfo("Maildir/cur/huge")
    ti.size = 2 ** 40
    bio = io.BytesIO(_tar())
    data = bio.getvalue()[:-1024 * 2]   # drop the end-of-archive blocks
    data = data.rstrip(b"\0")
    data = data + b"\0" * (-len(data) % 512)
    return data + ti.tobuf(format=tarfile.GNU_FORMAT) + b"x" * 512 + b"\0" * 1024


def _truncated():
    big = _tar(lambda tf: _add(tf, "Maildir/cur/2.M2P2.h", b"y" * 20000))
    return big[:len(big) - 1024 - 10000]


HOSTILE = {
    "dotdot": _tar(lambda tf: _add(tf, "../../evil", b"evil")),
    "absolute": _tar(lambda tf: _add(tf, "/tmp/x-sluice-evil", b"evil")),
    "symlink": _tar(lambda tf: _add(tf, "Maildir/cur/link", type=tarfile.SYMTYPE,
                                    linkname="/etc/passwd")),
    "hardlink": _tar(lambda tf: _add(tf, "Maildir/cur/hl", type=tarfile.LNKTYPE,
                                     linkname="Maildir/cur/1.M1P1.h:2,S")),
    "device": _tar(lambda tf: _add(tf, "Maildir/cur/dev", type=tarfile.CHRTYPE,
                                   devmajor=1, devminor=3)),
    "fifo": _tar(lambda tf: _add(tf, "Maildir/cur/fifo", type=tarfile.FIFOTYPE)),
    "inner-dotdot": _tar(lambda tf: _add(tf, "Maildir/../x", b"evil")),
    "deep-dotdot": _tar(lambda tf: _add(tf, "Maildir/cur/../../../x", b"evil")),
    "outside": _tar(lambda tf: _add(tf, "etc/passwd", b"evil")),
    "hidden-file": _tar(lambda tf: _add(tf, "Maildir/.profile", b"evil")),
    "empty-component": _tar(lambda tf: _add(tf, "Maildir//cur/x", b"evil")),
    "file-in-tmp": _tar(lambda tf: _add(tf, "Maildir/tmp/x", b"evil")),
    "other-dir": _tar(lambda tf: _add(tf, "Maildir/bin/", type=tarfile.DIRTYPE)),
    "no-record": _tar(record=False),
    "bad-record": _tar(lambda tf: _add(tf, "sluice-account.txt", b"garbage\n")),
    "corrupt": b"this is not a tar archive at all\n" * 40,
    "truncated": _truncated(),
    "huge": _huge(),
    "empty": b"",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_refused(make_sluice, case):
    s = make_sluice(start=False)
    path = os.path.join(s.dir, "hostile.tar")
    with open(path, "wb") as f:
        f.write(HOSTILE[case])
    before = snapshot(s.dir)
    db_before = s.db.sql("SELECT local, domain, password FROM accounts ORDER BY local")
    r = s.cli("account", "import", path, check=False)
    assert r.returncode == EX_DATAERR, (case, r.returncode, r.stderr)
    assert "import: %s:" % path in r.stderr, r.stderr
    assert snapshot(s.dir) == before
    assert s.db.sql("SELECT local, domain, password FROM accounts ORDER BY local") == db_before
    assert not os.path.exists("/tmp/x-sluice-evil")
    assert not os.path.exists(os.path.join(os.path.dirname(s.dir), "evil"))
    assert not os.path.exists(s.maildir("new@example.test"))


def test_hostile_entry_named_in_message(make_sluice):
    s = make_sluice(start=False)
    path = os.path.join(s.dir, "hostile.tar")
    with open(path, "wb") as f:
        f.write(HOSTILE["dotdot"])
    r = s.cli("account", "import", path, check=False)
    assert 'entry "../../evil"' in r.stderr
    # the good archive this was built on does import
    with open(path, "wb") as f:
        f.write(_tar())
    s.cli("account", "import", path)
    assert len(s.messages("new@example.test")) == 1


def test_deleted_account_with_queued_mail_bounces(make_sluice):
    """The documented rule: mail still queued for a deleted account bounces
    later as "user unknown"; nothing crashes."""
    s = make_sluice(start=False)
    s.add_account("sender@example.test")
    t = tag()
    # the daemon is down: the message waits in the maildrop
    s.cli("sendmail", "-f", "sender@example.test", "demo@example.test",
          input="Subject: %s\n\nqueued for demo\n" % t)
    s.cli("account", "del", "demo@example.test", "--yes")
    s.start()
    dsn = wait_for(lambda: [m for m in s.messages("sender@example.test")
                            if b"demo@example.test" in m],
                   what="the bounce to sender@")[0]
    assert b"5.1.1" in dsn or b"unknown" in dsn.lower()
    assert not os.path.exists(s.maildir("demo@example.test"))
    assert s.sanitizer_reports() == []
