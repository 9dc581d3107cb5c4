"""IMAP retrieval through a real Dovecot configured by `sluice dovecot-config`
(docs/imap.md): sluice delivers, Dovecot serves the same Maildirs and checks
passwords against the same accounts table, on SQLite and PostgreSQL."""
import os
import shutil
import smtplib
import ssl
import subprocess

import pytest

from dovecot_harness import Dovecot, dovecot_installed
from sluice_harness import RUN_USER, SLUICE, WAIT, Sluice, good_message, tag, wait_for

needs_dovecot = pytest.mark.skipif(
    not dovecot_installed(),
    reason="Dovecot is not installed (make deps: dovecot-imapd dovecot-sqlite "
           "dovecot-pgsql)")

ADDR = "demo@example.test"
PASSWORD = "correct horse battery"   # the harness's add_account default


def send(s, rcpt=ADDR, t=None):
    t = t or tag()
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=WAIT) as c:
        assert not c.sendmail("good@client.test", [rcpt], good_message(t))
    return t


def stored(s, addr, t):
    """The bytes sluice wrote to the Maildir for the message tagged t."""
    msgs = wait_for(lambda: [m for m in s.messages(addr) if t.encode() in m],
                    what="delivery of %s" % t)
    assert len(msgs) == 1
    return msgs[0]


def wire(on_disk):
    """What IMAP must send for a Maildir file: Maildir stores lines with LF,
    IMAP (RFC 3501) sends CRLF; nothing else may differ."""
    assert b"\r" not in on_disk
    return on_disk.replace(b"\n", b"\r\n")


def fetch_all(m):
    """Every message of INBOX as the server sends it (BODY.PEEK[])."""
    typ, data = m.select("INBOX", readonly=True)
    assert typ == "OK", data
    n = int(data[0])
    out = []
    for i in range(1, n + 1):
        typ, data = m.fetch(str(i), "(BODY.PEEK[])")
        assert typ == "OK", data
        out.append(data[0][1])
    return out


def dovecot_config(s, *args):
    return subprocess.run([SLUICE, "-c", s.conf, "dovecot-config"] + list(args),
                          capture_output=True, text=True)


@needs_dovecot
@pytest.mark.db_backends
def test_imap_fetch_is_byte_for_byte_what_sluice_stored(sluice, make_dovecot):
    d = make_dovecot(sluice)
    t = send(sluice)
    on_disk = stored(sluice, ADDR, t)
    assert on_disk.startswith(b"Return-Path: <good@client.test>")
    m = d.login(ADDR, PASSWORD)
    assert m is not None, "login refused"
    try:
        assert fetch_all(m) == [wire(on_disk)]
    finally:
        m.logout()
    # names are matched without case, as sluice does
    m = d.login("Demo@EXAMPLE.test", PASSWORD)
    assert m is not None
    m.logout()


@needs_dovecot
@pytest.mark.db_backends
def test_imap_refuses_wrong_password_and_unknown_users(sluice, make_dovecot):
    d = make_dovecot(sluice)
    assert d.login(ADDR, "wrong password") is None
    assert d.login("nobody@example.test", PASSWORD) is None
    assert d.login("demo", PASSWORD) is None             # no domain: no account
    assert d.login("x' OR '1'='1@example.test", PASSWORD) is None
    assert "Login: user=<" not in d.read_log()


@needs_dovecot
@pytest.mark.db_backends
def test_imap_after_passwd_old_fails_new_works(sluice, make_dovecot):
    d = make_dovecot(sluice)
    t = send(sluice)
    on_disk = stored(sluice, ADDR, t)
    sluice.cli("account", "passwd", ADDR, "--password-stdin",
               input="a brand new passphrase\n")
    assert d.login(ADDR, PASSWORD) is None
    m = d.login(ADDR, "a brand new passphrase")
    assert m is not None
    try:
        assert fetch_all(m) == [wire(on_disk)]
    finally:
        m.logout()


@needs_dovecot
@pytest.mark.db_backends
def test_imap_after_del_login_fails_and_maildir_is_gone(sluice, make_dovecot):
    d = make_dovecot(sluice)
    stored(sluice, ADDR, send(sluice))
    m = d.login(ADDR, PASSWORD)
    assert m is not None
    fetch_all(m)            # Dovecot writes its index files into the Maildir
    m.logout()
    sluice.cli("account", "del", ADDR, "--yes")
    assert not os.path.exists(sluice.maildir(ADDR))
    assert d.login(ADDR, PASSWORD) is None
    assert not os.path.exists(sluice.maildir(ADDR))


@needs_dovecot
def test_imap_with_tls_from_sluice_config(make_sluice, make_dovecot):
    s = make_sluice(tls=True)
    d = make_dovecot(s)
    assert "ssl = yes" in d.config_text
    stored(s, ADDR, send(s))
    m = d.imap()
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        m.starttls(ssl_context=ctx)
        m.login(ADDR, PASSWORD)
        assert len(fetch_all(m)) == 1
    finally:
        m.logout()


@needs_dovecot
def test_lmtp_delivery_through_dovecot(sluice, make_dovecot):
    """--lmtp: Dovecot's LMTP socket writes the same Maildir IMAP reads."""
    d = make_dovecot(sluice, lmtp=True)
    msg = good_message(tag())
    with smtplib.LMTP(d.lmtp_socket, timeout=WAIT) as c:
        assert not c.sendmail("good@client.test", [ADDR], msg)
    assert len(sluice.messages(ADDR)) == 1
    m = d.login(ADDR, PASSWORD)
    try:
        got = fetch_all(m)
    finally:
        m.logout()
    assert len(got) == 1 and got[0].endswith(msg)


@needs_dovecot
def test_hostile_paths_are_quoted(make_dovecot):
    """A database and mailboxes path with a space, '"', '\\', '$' and '%'
    reach Dovecot intact: it logs in and reads the mail sluice delivered."""
    s = Sluice()
    try:
        odd = os.path.join(s.dir, 'we"ird \\ $x%d')
        os.mkdir(odd)
        os.chmod(odd, 0o755)
        for sub in ("db", "mail"):
            os.mkdir(os.path.join(odd, sub))
            if os.geteuid() == 0:
                subprocess.run(["chown", RUN_USER + ":", os.path.join(odd, sub)],
                               check=True)
        with open(s.conf) as f:
            conf = f.read()
        conf = conf.replace("mailboxes %s" % s.mailboxes,
                            "mailboxes %s/mail" % odd)
        conf = conf.replace("database sqlite:%s/sluice.db" % s.dbdir,
                            "database sqlite:%s/db/sluice.db" % odd)
        with open(s.conf, "w") as f:
            f.write(conf)
        s.mailboxes = os.path.join(odd, "mail")
        assert s.cli("check").returncode == 0
        s.add_domain("example.test")
        s.add_account(ADDR)
        s.start()
        d = make_dovecot(s)
        on_disk = stored(s, ADDR, send(s))
        m = d.login(ADDR, PASSWORD)
        assert m is not None
        try:
            assert fetch_all(m) == [wire(on_disk)]
        finally:
            m.logout()
    finally:
        s.cleanup()


def test_refuses_what_dovecot_cannot_use(tmp_path):
    s = Sluice()
    try:
        sql = str(tmp_path / "sql.conf.ext")
        # the SQLite database does not exist yet: say how to create it
        r = dovecot_config(s, "--sql-file", sql)
        assert r.returncode == 69 and "sluice domain add" in r.stderr
        assert r.stdout == "" and not os.path.exists(sql)
        s.add_domain("example.test")
        assert dovecot_config(s, "--sql-file", sql).returncode == 0
        assert oct(os.stat(sql).st_mode & 0o777) == "0o600"
        # plaintext IMAP on a public address
        r = dovecot_config(s, "--sql-file", sql, "--imap-listen", "0.0.0.0:1143")
        assert r.returncode == 78 and "tls-cert" in r.stderr and r.stdout == ""
        # a Maildir path Dovecot's mail_location cannot express
        with open(s.conf, "a") as f:
            f.write("mailboxes %s/a:b\n" % s.dir)
        r = dovecot_config(s, "--sql-file", sql)
        assert r.returncode == 78 and "':'" in r.stderr and r.stdout == ""
    finally:
        s.cleanup()


def test_tls_path_dovecot_cannot_read_is_refused(tmp_path):
    """ssl_cert = <PATH cannot be quoted: an odd path is refused, not mangled."""
    s = Sluice(tls=True)
    try:
        s.add_domain("example.test")
        odd = os.path.join(s.dir, "a b")
        os.mkdir(odd)
        cert = os.path.join(s.dir, "cert.pem")
        shutil.copy(cert, os.path.join(odd, "cert.pem"))
        with open(s.conf) as f:
            conf = f.read().replace("tls-cert %s" % cert,
                                    "tls-cert %s/cert.pem" % odd)
        with open(s.conf, "w") as f:
            f.write(conf)
        r = dovecot_config(s, "--sql-file", str(tmp_path / "sql"))
        assert r.returncode == 78, r.stderr
        assert "tls-cert" in r.stderr and r.stdout == ""
    finally:
        s.cleanup()


def test_files_backend_is_refused_clearly(tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "domains").write_text("example.test\n")
    (tables / "accounts").write_text("demo@example.test\n")
    s = Sluice(database="files:%s" % tables)
    try:
        r = dovecot_config(s, "--sql-file", str(tmp_path / "sql"))
        assert r.returncode == 78
        assert "files" in r.stderr and "sqlite" in r.stderr and r.stdout == ""
    finally:
        s.cleanup()


def test_usage(tmp_path):
    s = Sluice()
    try:
        r = dovecot_config(s, "--help")
        assert r.returncode == 0 and "--imap-listen" in r.stdout
        assert dovecot_config(s, "--bogus").returncode == 64
        assert dovecot_config(s, "--imap-listen", "localhost:143").returncode == 64
        assert dovecot_config(s, "--sql-file", "relative").returncode == 64
        # the config in base_dir would be replaced by Dovecot's symlink
        s.add_domain("example.test")
        (tmp_path / "run").mkdir()
        conf = tmp_path / "run" / "dovecot.conf"
        with open(conf, "w") as out:
            r = subprocess.run([SLUICE, "-c", s.conf, "dovecot-config", "--sql-file",
                                str(tmp_path / "sql"), "--base-dir",
                                str(tmp_path / "run")], stdout=out,
                               stderr=subprocess.PIPE, text=True)
        assert r.returncode == 64 and "symlink" in r.stderr
        # ... but Dovecot's own symlink there (a config regenerated while it
        # ran before) is fine
        conf.unlink()
        conf.symlink_to(tmp_path / "dovecot.conf")
        with open(tmp_path / "dovecot.conf", "w") as out:
            r = subprocess.run([SLUICE, "-c", s.conf, "dovecot-config", "--sql-file",
                                str(tmp_path / "sql"), "--base-dir",
                                str(tmp_path / "run")], stdout=out,
                               stderr=subprocess.PIPE, text=True)
        assert r.returncode == 0, r.stderr
        assert "protocols = imap" in (tmp_path / "dovecot.conf").read_text()
        # a newline in the config's path would start a Dovecot directive
        odd = tmp_path / "a\nprotocols = pop3"
        shutil.copy(s.conf, odd)
        r = subprocess.run([SLUICE, "-c", str(odd), "dovecot-config", "--sql-file",
                            str(tmp_path / "sql2")], capture_output=True, text=True)
        assert r.returncode == 78 and "control character" in r.stderr
        assert r.stdout == "" and not os.path.exists(tmp_path / "sql2")
    finally:
        s.cleanup()
