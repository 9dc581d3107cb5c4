"""Integration tests of the `sluice` command: check, domain, account, queue,
sendmail (daemon down: maildrop; daemon up: a fake ESMTP peer on the unix
socket that records exactly what the client sends).

Self-contained: binaries from $SLUICE_BUILD (default /work/main/build),
everything else under pytest's tmp_path.
"""
import ctypes
import ctypes.util
import json
import os
import pathlib
import re
import shutil
import socketserver
import sqlite3
import stat
import subprocess
import tempfile
import threading

import pytest

from sluice_harness import RUN_USER, ensure_user

BUILD = os.environ.get("SLUICE_BUILD", "/work/main/build")
SLUICE = os.path.join(BUILD, "sluice")

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL, EX_CONFIG = 64, 65, 67, 75, 78
QID = "0123456789ABCDEF0123"


@pytest.fixture
def env(database):
    """A config in a fresh directory; returns a runner for `sluice -c CONF`.
    Its database is SQLite, or PostgreSQL in the [postgresql] run of a test
    marked db_backends (conftest.py).

    Run as root, the admin commands become the configured unprivileged
    user, so the directory belongs to that user (as sluiced's would).
    """
    ensure_user()
    tmp_path = pathlib.Path(tempfile.mkdtemp(prefix="sluice-cli-", dir="/tmp"))
    os.chmod(tmp_path, 0o755)
    conf = tmp_path / "sluice.conf"
    conf.write_text(
        "hostname mx.example.test\n"
        f"spool {tmp_path}/spool\n"
        f"mailboxes {tmp_path}/mail\n"
        f"database {database.dsn if database else 'sqlite:%s/sluice.db' % tmp_path}\n"
        f"user {RUN_USER}\n"
        "max-message-size 100k\n")
    (tmp_path / "spool").mkdir()
    if os.geteuid() == 0:
        shutil.chown(tmp_path, RUN_USER, RUN_USER)
        shutil.chown(tmp_path / "spool", RUN_USER, RUN_USER)

    class Env:
        path = tmp_path
        config = conf
        spool = tmp_path / "spool"
        mail = tmp_path / "mail"
        db = tmp_path / "sluice.db"
        backend = "postgresql" if database else "sqlite"

        def sql(self, statement):
            """Rows of statement, as tuples of strings, on either backend."""
            if database:
                return [tuple(r) for r in database.sql(statement)]
            with sqlite3.connect(self.db) as db:
                return [tuple("" if v is None else str(v) for v in row)
                        for row in db.execute(statement).fetchall()]

        def run(self, *args, input=None, config=True):
            cmd = [SLUICE] + (["-c", str(conf)] if config else []) + \
                list(args)
            e = dict(os.environ, SLUICE_CONFIG=str(conf))
            # a new session: no controlling terminal, like cron or a script
            return subprocess.run(cmd, input=input, capture_output=True,
                                  timeout=60, env=e, start_new_session=True)

        def run_as(self, argv0, *args, input=None):
            e = dict(os.environ, SLUICE_CONFIG=str(conf))
            return subprocess.run([argv0] + list(args), input=input,
                                  capture_output=True, timeout=60, env=e,
                                  executable=SLUICE, start_new_session=True)

    yield Env()
    shutil.rmtree(tmp_path, ignore_errors=True)


def owner_ids():
    import pwd
    pw = pwd.getpwnam(RUN_USER)
    return pw.pw_uid, pw.pw_gid


def out(r):
    return r.stdout.decode(errors="replace")


def err(r):
    return r.stderr.decode(errors="replace")


# --- check ---------------------------------------------------------------

def test_check_ok(env):
    r = env.run("check")
    assert r.returncode == 0, err(r)
    assert f"{env.config}: configuration ok" in out(r)


def test_check_uses_env_config(env):
    r = env.run("check", config=False)
    assert r.returncode == 0, err(r)
    assert "configuration ok" in out(r)


def test_check_bad_directive(env):
    with open(env.config, "a") as f:
        f.write("# fine\nfrobnicate yes\n")
    r = env.run("check")
    assert r.returncode == EX_CONFIG
    assert f"{env.config}:8: unknown directive" in err(r)


def test_check_bad_value(env):
    with open(env.config, "a") as f:
        f.write("max-recipients lots\n")
    r = env.run("check")
    assert r.returncode == EX_CONFIG
    assert re.search(rf"{re.escape(str(env.config))}:7: max-recipients",
                     err(r))


def test_check_missing_file(env, tmp_path):
    r = subprocess.run([SLUICE, "-c", str(tmp_path / "nope.conf"), "check"],
                       capture_output=True, timeout=30)
    assert r.returncode == EX_CONFIG
    assert "nope.conf" in err(r)


def test_check_dump(env):
    r = env.run("check", "--dump")
    assert r.returncode == 0
    assert "hostname mx.example.test" in out(r)
    assert "max-message-size 102400" in out(r)
    assert "max-recipients" not in out(r)   # a default: not dumped


def test_check_routes(env):
    auth = env.path / "isp.auth"
    auth.write_text("laptop secret\n")
    os.chmod(auth, 0o644)
    if os.geteuid() == 0:
        shutil.chown(auth, RUN_USER, RUN_USER)
    with open(env.config, "a") as f:
        f.write("route *.lan via [10.0.0.1]:25 when *\n"
                f"relay-host smtp.isp.test:587\n    auth {auth}\n"
                f"online-state file {env.path}/online\n")
    r = env.run("check")
    assert r.returncode == EX_CONFIG
    assert f"{env.config}:8: auth {auth} must belong to {RUN_USER}" in err(r)
    os.chmod(auth, 0o600)
    r = env.run("check", "--dump")
    assert r.returncode == 0, err(r)
    assert "online-state file" in err(r) and "offline" in err(r)   # warning
    assert "route *.lan via [10.0.0.1]:25 when *" in out(r)
    assert f"relay-host smtp.isp.test:587 auth {auth}" in out(r)
    with open(env.config, "a") as f:
        f.write(f"relay-ca-file {env.path}/nope.pem\n")
    r = env.run("check")
    assert r.returncode == EX_CONFIG and "relay-ca-file" in err(r)


def test_check_online_command_not_executable(env):
    with open(env.config, "a") as f:
        f.write(f"online-state command {env.path}/which-net\n")
    r = env.run("check")
    assert r.returncode == EX_CONFIG
    assert "online-state command" in err(r)


def test_check_postgresql_unreachable(env):
    from sluice_harness import free_port
    with open(env.config, "a") as f:
        f.write("database postgresql://u:secret@127.0.0.1:%d/db\n" % free_port())
    r = env.run("check")
    assert r.returncode != 0
    assert "postgresql: connection to server at \"127.0.0.1\"" in err(r), err(r)
    assert "secret" not in err(r) + out(r)


@pytest.mark.db_backends
def test_check_and_migrate(env):
    r = env.run("check")
    assert r.returncode == 0, err(r)
    r = env.run("db", "migrate")
    assert r.returncode == 0, err(r)
    assert "schema version 4" in out(r)
    assert env.sql("SELECT value FROM meta WHERE key = 'schema_version'") == [("4",)]


# --- usage and help ----------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--help"], ["check", "--help"], ["domain", "--help"],
    ["domain", "add", "--help"], ["account", "--help"],
    ["account", "add", "--help"], ["account", "del", "--help"],
    ["account", "passwd", "--help"], ["account", "list", "--help"],
    ["queue", "--help"], ["queue", "show", "--help"],
    ["sendmail", "--help"],
])
def test_help(env, args):
    r = env.run(*args)
    assert r.returncode == 0
    assert out(r).startswith("usage:")


def test_help_needs_no_config(tmp_path):
    r = subprocess.run([SLUICE, "-c", str(tmp_path / "none"), "domain",
                        "--help"], capture_output=True, timeout=30)
    assert r.returncode == 0


@pytest.mark.parametrize("args", [
    [], ["frobnicate"], ["-x", "check"], ["check", "extra"],
    ["domain"], ["domain", "add"], ["domain", "add", "a.test", "b.test"],
    ["domain", "rename", "a.test"], ["domain", "list", "--bogus"],
    ["account", "add"], ["account", "del"], ["account", "list", "a", "b"],
    ["account", "add", "a@b.test", "--yes"], ["queue", "show"],
    ["queue", "flarp"], ["sendmail", "-Q"],
])
def test_bad_usage(env, args):
    r = env.run(*args)
    assert r.returncode == EX_USAGE, (args, out(r), err(r))
    assert "usage:" in err(r)
    assert out(r) == ""


# --- domain ------------------------------------------------------------------

@pytest.mark.db_backends
def test_domain_add_list_del(env):
    r = env.run("domain", "add", "Example.ORG")
    assert r.returncode == 0, err(r)
    r = env.run("domain", "add", "b.example")
    assert r.returncode == 0
    r = env.run("domain", "list")
    lines = out(r).splitlines()
    assert [ln.split()[0] for ln in lines] == ["b.example", "example.org"]
    r = env.run("domain", "list", "--json")
    data = json.loads(out(r))
    assert [d["domain"] for d in data] == ["b.example", "example.org"]
    assert all(isinstance(d["created"], int) for d in data)
    assert env.run("domain", "del", "EXAMPLE.org").returncode == 0
    data = json.loads(out(env.run("domain", "list", "--json")))
    assert [d["domain"] for d in data] == ["b.example"]


@pytest.mark.db_backends
def test_domain_list_empty_json(env):
    r = env.run("domain", "list", "--json")
    assert r.returncode == 0
    assert json.loads(out(r)) == []


@pytest.mark.db_backends
def test_domain_duplicate(env):
    assert env.run("domain", "add", "example.org").returncode == 0
    r = env.run("domain", "add", "EXAMPLE.ORG")
    assert r.returncode == EX_DATAERR
    assert "domain already exists" in err(r)


@pytest.mark.db_backends
@pytest.mark.parametrize("bad", [
    "-bad.test", "bad-.test", "a..b", ".a.b", "a_b.test", "a b", "x" * 64 +
    ".test", "a/b", "ex\u00e4mple.test", "",
])
def test_domain_invalid(env, bad):
    r = env.run("domain", "add", "--", bad)
    assert r.returncode in (EX_DATAERR, EX_USAGE), err(r)
    assert json.loads(out(env.run("domain", "list", "--json"))) == []


@pytest.mark.db_backends
def test_domain_del_unknown(env):
    r = env.run("domain", "del", "nowhere.test")
    assert r.returncode == EX_NOUSER
    assert "no such domain" in err(r)


@pytest.mark.db_backends
def test_domain_del_with_accounts_refused(env):
    env.run("domain", "add", "example.org")
    for u in ("a", "b"):
        r = env.run("account", "add", f"{u}@example.org", "--password-stdin",
                    input=b"correct horse\n")
        assert r.returncode == 0, err(r)
    r = env.run("domain", "del", "example.org")
    assert r.returncode == EX_DATAERR
    assert "2 accounts" in err(r)
    assert "example.org" in out(env.run("domain", "list"))


# --- account -----------------------------------------------------------------

def libcrypt_crypt(pw, setting):
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib.crypt(pw.encode(), setting.encode()).decode()


def add_account(env, addr, pw=b"correct horse\n"):
    return env.run("account", "add", addr, "--password-stdin", input=pw)


@pytest.mark.db_backends
def test_account_add_creates_maildir_and_hash(env):
    env.run("domain", "add", "example.org")
    r = add_account(env, "Bob@Example.org", b"s3cret-pass\r\n")
    assert r.returncode == 0, err(r)
    md = env.mail / "example.org" / "bob"
    for sub in ("cur", "new", "tmp"):
        assert (md / sub).is_dir()
    assert stat.S_IMODE(os.stat(md).st_mode) == 0o700
    (local, dom, pw), = env.sql("SELECT local, domain, password FROM accounts")
    assert (local, dom) == ("bob", "example.org")
    assert pw.startswith("$y$")
    # the Dovecot passdb query from docs/cli.md
    row = env.sql("SELECT local || '@' || domain AS user, password FROM "
                  "accounts WHERE local = 'bob' AND domain = "
                  "'example.org'")[0]
    assert row[0] == "bob@example.org"
    # the hash verifies the password, CR/LF stripped (libxcrypt's crypt)
    assert libcrypt_crypt("s3cret-pass", pw) == pw
    assert libcrypt_crypt("s3cret-pass\r", pw) != pw


@pytest.mark.db_backends
def test_account_list(env):
    env.run("domain", "add", "example.org")
    env.run("domain", "add", "b.test")
    add_account(env, "zed@example.org")
    add_account(env, "amy@example.org")
    add_account(env, "x@b.test")
    r = env.run("account", "list")
    assert [ln.split()[0] for ln in out(r).splitlines()] == \
        ["x@b.test", "amy@example.org", "zed@example.org"]
    data = json.loads(out(env.run("account", "list", "example.org",
                                  "--json")))
    assert [d["address"] for d in data] == ["amy@example.org",
                                            "zed@example.org"]
    assert {d["domain"] for d in data} == {"example.org"}
    assert all(isinstance(d["created"], int) for d in data)
    r = env.run("account", "list", "nowhere.test")
    assert r.returncode == EX_NOUSER


@pytest.mark.db_backends
def test_account_duplicate(env):
    env.run("domain", "add", "example.org")
    assert add_account(env, "bob@example.org").returncode == 0
    r = add_account(env, "BOB@example.org")
    assert r.returncode == EX_DATAERR
    assert "already exists" in err(r)


@pytest.mark.db_backends
@pytest.mark.parametrize("pw,msg", [
    (b"\n", "empty"), (b"", "empty"), (b"short\n", "too short"),
    (b"1234567\r\n", "too short"),
])
def test_account_weak_password(env, pw, msg):
    env.run("domain", "add", "example.org")
    r = add_account(env, "bob@example.org", pw)
    assert r.returncode == EX_DATAERR
    assert msg in err(r)
    assert not (env.mail / "example.org" / "bob").exists()
    assert json.loads(out(env.run("account", "list", "--json"))) == []


@pytest.mark.db_backends
def test_account_unknown_domain(env):
    r = add_account(env, "bob@example.org")
    assert r.returncode == EX_NOUSER
    assert ("example.org is not a local domain: add it with "
            "`sluice domain add example.org`") in err(r)


@pytest.mark.db_backends
@pytest.mark.parametrize("addr", [
    "bob", "@example.org", "bob@", ".bob@example.org", "bob.@example.org",
    "a..b@example.org", "a/b@example.org", "..@example.org",
    "bob@-x.org", "x" * 65 + "@example.org", '"b b"@example.org',
])
def test_account_bad_address(env, addr):
    env.run("domain", "add", "example.org")
    r = add_account(env, addr)
    assert r.returncode == EX_DATAERR, err(r)
    assert list((env.mail).glob("*/*")) == [] if env.mail.exists() else True


@pytest.mark.db_backends
def test_account_no_tty_password(env):
    env.run("domain", "add", "example.org")
    r = env.run("account", "add", "bob@example.org", input=b"whatever12\n")
    assert r.returncode != 0
    assert "--password-stdin" in err(r)


@pytest.mark.db_backends
def test_account_passwd(env):
    env.run("domain", "add", "example.org")
    add_account(env, "bob@example.org")
    old = env.sql("SELECT password FROM accounts")[0][0]
    r = env.run("account", "passwd", "bob@example.org", "--password-stdin",
                input=b"another-pass\n")
    assert r.returncode == 0, err(r)
    new = env.sql("SELECT password FROM accounts")[0][0]
    assert new != old and new.startswith("$y$")
    r = env.run("account", "passwd", "bob@example.org", "--password-stdin",
                input=b"short\n")
    assert r.returncode == EX_DATAERR
    r = env.run("account", "passwd", "nobody@example.org",
                "--password-stdin", input=b"another-pass\n")
    assert r.returncode == EX_NOUSER


@pytest.mark.db_backends
def test_account_del(env):
    env.run("domain", "add", "example.org")
    add_account(env, "bob@example.org")
    md = env.mail / "example.org" / "bob"
    (md / "new" / "1.msg").write_text("mail\n")
    (md / ".Sub" / "cur").mkdir(parents=True)
    outside = env.path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep me\n")
    os.symlink(outside, md / "link")
    if os.geteuid() == 0:   # as if sluiced (running as RUN_USER) made them
        for root, dirs, files in os.walk(md):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), *owner_ids())
    # no tty, no --yes: refused, nothing removed
    r = env.run("account", "del", "bob@example.org")
    assert r.returncode == EX_USAGE
    assert "--yes" in err(r)
    assert md.is_dir()
    r = env.run("account", "del", "bob@example.org", "--yes")
    assert r.returncode == 0, err(r)
    assert not md.exists()
    assert (outside / "keep").read_text() == "keep me\n"  # link not followed
    assert json.loads(out(env.run("account", "list", "--json"))) == []
    r = env.run("account", "del", "bob@example.org", "--yes")
    assert r.returncode == EX_NOUSER
    assert env.run("domain", "del", "example.org").returncode == 0


# --- queue -------------------------------------------------------------------

ENVELOPE = (
    "sluice-envelope 1\n"
    f"id {QID}\n"
    "created 1700000000\n"
    "from alice@example.org\n"
    "helo client.example\n"
    "client-addr 127.0.0.1\n"
    "proto ESMTP\n"
    "flags 1\n"
    "size 42\n"
    "hops 0\n"
    "rcpt pending 0 0 bob@example.net\n"
    "rcpt deferred 2 1700003600 carol@example.com\n"
    "rcpt-error 451 4.4.1 connection timed out\n"
    "end\n")


def test_queue_empty(env):
    for args in (["queue"], ["queue", "list"]):
        r = env.run(*args)
        assert r.returncode == 0, err(r)
        assert out(r).strip() == "Mail queue is empty"
    r = env.run("queue", "--json")
    assert json.loads(out(r)) == []
    r = env.run_as("mailq")
    assert r.returncode == 0 and "Mail queue is empty" in out(r)


def queue_setup(env):
    for d in ("incoming", "outgoing", "data"):
        (env.spool / d).mkdir()
    (env.spool / "outgoing" / QID).write_text(ENVELOPE)
    (env.spool / "data" / QID).write_text(
        "Subject: hello\nFrom: alice@example.org\n\nbody\n")
    (env.spool / "incoming" / "0123456789ABCDEF0000").write_text("garbage\n")
    (env.spool / "incoming" / "tmp.notanid").write_text("x")


def test_queue_list(env):
    queue_setup(env)
    r = env.run("queue")
    assert r.returncode == 0, err(r)
    text = out(r)
    assert "0123456789ABCDEF0000  (corrupt:" in text
    assert re.search(rf"^{QID}  42  \S+  <alice@example.org>$", text, re.M)
    assert re.search(r"^\s+<carol@example.com>  deferred.*4\.4\.1 "
                     r"connection timed out", text, re.M)
    assert text.index("0123456789ABCDEF0000") < text.index(QID)
    assert text.rstrip().endswith("-- 2 messages")
    assert "tmp.notanid" not in text
    data = json.loads(out(env.run("queue", "list", "--json")))
    assert data[0]["corrupt"]
    m = data[1]
    assert m["id"] == QID and m["sender"] == "alice@example.org"
    assert m["size"] == 42 and m["queue"] == "outgoing"
    assert [(x["address"], x["state"]) for x in m["recipients"]] == \
        [("bob@example.net", "pending"), ("carol@example.com", "deferred")]
    assert out(env.run("sendmail", "-bp")) == text


def test_queue_show(env):
    queue_setup(env)
    r = env.run("queue", "show", QID)
    assert r.returncode == 0, err(r)
    assert "from: <alice@example.org>" in out(r)
    assert "carol@example.com" in out(r)
    assert "Subject: hello" in out(r)
    assert "body" not in out(r)
    r = env.run("queue", "show", "0123456789ABCDEF0000")
    assert r.returncode == 0 and "(corrupt:" in out(r)
    r = env.run("queue", "show", "0123456789ABCDEF9999")
    assert r.returncode == EX_NOUSER
    for bad in ("123", "../../etc/passwd", QID.lower(), QID + "0"):
        assert env.run("queue", "show", bad).returncode == EX_USAGE


# --- sendmail: daemon down -> maildrop --------------------------------------

def maildrop_files(env):
    d = env.spool / "maildrop"
    return sorted(p for p in d.iterdir()) if d.exists() else []


def parse_maildrop(path):
    data = path.read_bytes()
    head, _, body = data.partition(b"end\n")
    lines = head.decode().splitlines()
    assert lines[0] == "sluice-maildrop 1"
    rec = {"rcpt": []}
    for ln in lines[1:]:
        k, _, v = ln.partition(" ")
        if k == "rcpt":
            rec["rcpt"].append(v)
        else:
            rec[k] = v
    return rec, body


def test_sendmail_maildrop(env):
    (env.spool / "maildrop").mkdir()
    msg = b"Subject: hi\r\nTo: x@example.net\r\n\r\nline one\r\n..dots\r\n"
    r = env.run("sendmail", "-f", "alice@example.org", "x@example.net",
                "Y@Example.NET", input=msg)
    assert r.returncode == 0, err(r)
    assert out(r) == "" and err(r) == ""
    files = maildrop_files(env)
    assert len(files) == 1
    assert re.fullmatch(r"\d+\.\d{6}\.\d+", files[0].name)
    rec, body = parse_maildrop(files[0])
    assert rec["from"] == "alice@example.org"
    assert rec["rcpt"] == ["x@example.net", "Y@example.net"]
    assert rec["uid"] == str(os.getuid())
    assert body == b"Subject: hi\nTo: x@example.net\n\nline one\n..dots\n"


def test_sendmail_null_sender_and_default_sender(env):
    (env.spool / "maildrop").mkdir()
    assert env.run("sendmail", "-f", "<>", "x@example.net",
                   input=b"a\n").returncode == 0
    rec, _ = parse_maildrop(maildrop_files(env)[0])
    assert rec["from"] == ""
    for p in maildrop_files(env):
        p.unlink()
    assert env.run("sendmail", "root", input=b"a\n").returncode == 0
    rec, _ = parse_maildrop(maildrop_files(env)[0])
    import pwd
    assert rec["from"] == pwd.getpwuid(os.getuid()).pw_name + \
        "@mx.example.test"
    assert rec["rcpt"] == ["root@mx.example.test"]


def test_sendmail_as_argv0(env):
    (env.spool / "maildrop").mkdir()
    r = env.run_as("sendmail", "-oi", "-f", "a@example.org", "b@example.net",
                   input=b"x\n")
    assert r.returncode == 0, err(r)
    assert len(maildrop_files(env)) == 1
    r = env.run_as("newaliases")
    assert r.returncode == 0
    assert "nothing to do" in out(r)


def test_sendmail_t(env):
    (env.spool / "maildrop").mkdir()
    msg = (b"From: alice@example.org\n"
           b"To: \"Doe, John\" <john@example.net>, plain@example.net\n"
           b"Cc: undisclosed-recipients:;, team: a@example.com (A),\n"
           b"  \"b q\"@example.com;\n"
           b"bcc: Secret <hidden@example.net>,\n"
           b"\tother@example.net\n"
           b"Subject: test\n"
           b"\n"
           b"Bcc: not-a-header@example.net\n")
    r = env.run("sendmail", "-t", "-f", "a@example.org", "plain@example.net",
                "extra@example.org", input=msg)
    assert r.returncode == 0, err(r)
    rec, body = parse_maildrop(maildrop_files(env)[0])
    assert rec["rcpt"] == ["plain@example.net", "extra@example.org",
                           "john@example.net", "a@example.com",
                           '"b q"@example.com', "hidden@example.net",
                           "other@example.net"]
    assert b"hidden" not in body and b"other@" not in body
    assert b"Subject: test\n\nBcc: not-a-header@example.net\n" in body
    assert body.startswith(b"From: alice@example.org\nTo: ")


def test_sendmail_bcc_stripped_without_t(env):
    (env.spool / "maildrop").mkdir()
    r = env.run("sendmail", "r@example.net",
                input=b"Bcc: h@example.net\nSubject: s\n\nb\n")
    assert r.returncode == 0
    rec, body = parse_maildrop(maildrop_files(env)[0])
    assert rec["rcpt"] == ["r@example.net"]
    assert body == b"Subject: s\n\nb\n"


def test_sendmail_dot_ends_input(env):
    (env.spool / "maildrop").mkdir()
    r = env.run("sendmail", "r@example.net",
                input=b"Subject: s\n\nbefore\n.\nafter\n")
    assert r.returncode == 0
    _, body = parse_maildrop(maildrop_files(env)[0])
    assert body == b"Subject: s\n\nbefore\n"


@pytest.mark.parametrize("flag", ["-i", "-oi"])
def test_sendmail_dot_with_i(env, flag):
    (env.spool / "maildrop").mkdir()
    r = env.run("sendmail", flag, "r@example.net",
                input=b"Subject: s\n\nbefore\n.\nafter")
    assert r.returncode == 0
    _, body = parse_maildrop(maildrop_files(env)[0])
    assert body == b"Subject: s\n\nbefore\n.\nafter\n"


def test_sendmail_F(env):
    (env.spool / "maildrop").mkdir()
    r = env.run("sendmail", "-F", "Alice Q. User", "-f", "a@example.org",
                "r@example.net", input=b"Subject: s\n\nb\n")
    assert r.returncode == 0
    _, body = parse_maildrop(maildrop_files(env)[0])
    assert body.startswith(b'From: "Alice Q. User" <a@example.org>\n')


@pytest.mark.parametrize("args,msg,code,text", [
    ([], b"Subject: s\n\nb\n", EX_USAGE, "no recipients"),
    (["-t"], b"Subject: s\n\nb\n", EX_USAGE, "no recipients"),
    (["-t"], b"To: undisclosed-recipients:;\n\nb\n", EX_USAGE,
     "no recipients"),
    (["r@example.net"], b"a\x00b\n", EX_DATAERR, "NUL"),
    (["bad@@example.net"], b"a\n", EX_DATAERR, "bad recipient"),
    (["-t"], b"To: <unterminated@example.net\n\nb\n", EX_DATAERR,
     "unterminated"),
    (["-t"], b"To: John Doe\n\nb\n", EX_DATAERR, "bad recipient"),
    (["-f", "a@@b", "r@example.net"], b"a\n", EX_DATAERR, "bad sender"),
    (["r@example.net"], None, EX_DATAERR, "too big"),
    (["-bs"], b"", EX_USAGE, "not supported"),
], ids=lambda v: None if not isinstance(v, bytes) else repr(v)[:30])
def test_sendmail_refused(env, args, msg, code, text):
    (env.spool / "maildrop").mkdir()
    if msg is None:     # over max-message-size (100k in the config)
        msg = b"Subject: big\n\n" + (b"x" * 999 + b"\n") * 120
    r = env.run("sendmail", *args, input=msg)
    assert r.returncode == code, err(r)
    assert text in err(r)
    assert maildrop_files(env) == []


def test_sendmail_maildrop_unwritable(env):
    # the maildrop is not a directory: exit 75, a clear message
    (env.spool / "maildrop").write_text("not a directory\n")
    r = env.run("sendmail", "r@example.net", input=b"a\n")
    assert r.returncode == EX_TEMPFAIL
    assert "maildrop" in err(r)


# --- sendmail: daemon up (fake ESMTP peer on the unix socket) ---------------

class FakeSMTP(socketserver.StreamRequestHandler):
    """Records the client's lines; replies per self.server.replies."""

    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self):
        srv = self.server
        self.reply("220-fake.test ESMTP\r\n220 ready")
        in_data = False
        while True:
            line = self.rfile.readline()
            if not line:
                return
            srv.lines.append(line)
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    self.reply(srv.replies.get("END", "250 2.0.0 queued"))
                else:
                    srv.data.append(line)
                continue
            verb = line.strip().split(b":")[0].split(b" ")[0].upper()
            verb = verb.decode()
            if verb == "EHLO":
                self.reply("250-fake.test\r\n250-PIPELINING\r\n"
                           "250 SMTPUTF8")
            elif verb == "DATA":
                rep = srv.replies.get("DATA", "354 go ahead")
                self.reply(rep)
                in_data = rep.startswith("354")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            elif verb == "RCPT" and b"<bad" in line:
                self.reply(srv.replies.get("BADRCPT", "550 5.1.1 no such"))
            else:
                self.reply(srv.replies.get(verb, "250 ok"))


@pytest.fixture
def daemon(env):
    (env.spool / "public").mkdir()
    (env.spool / "maildrop").mkdir()
    sock = str(env.spool / "public" / "submit.sock")
    assert len(sock) < 100
    srv = socketserver.ThreadingUnixStreamServer(sock, FakeSMTP)
    srv.lines, srv.data, srv.replies = [], [], {}
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_sendmail_session(env, daemon):
    msg = b"Subject: s\n\n.leading\nmid\n..two\n"
    r = env.run("sendmail", "-i", "-f", "a@example.org", "r1@example.net",
                "r2@example.net", input=msg)
    assert r.returncode == 0, err(r)
    assert daemon.lines[:5] == [
        b"EHLO localhost\r\n", b"MAIL FROM:<a@example.org>\r\n",
        b"RCPT TO:<r1@example.net>\r\n", b"RCPT TO:<r2@example.net>\r\n",
        b"DATA\r\n"]
    assert b"".join(daemon.data) == \
        b"Subject: s\r\n\r\n..leading\r\nmid\r\n...two\r\n"
    assert daemon.lines[-1] == b"QUIT\r\n"
    assert maildrop_files(env) == []


def test_sendmail_session_smtputf8(env, daemon):
    r = env.run("sendmail", "-f", "a@example.org",
                "j\u00f6rg@example.net".encode().decode(), input=b"x\n")
    assert r.returncode == 0, err(r)
    assert daemon.lines[1] == b"MAIL FROM:<a@example.org> SMTPUTF8\r\n"


@pytest.mark.parametrize("where,reply,code", [
    ("MAIL", "553 5.1.8 sender refused", EX_DATAERR),
    ("MAIL", "451 4.3.0 try later", EX_TEMPFAIL),
    ("BADRCPT", "550 5.1.1 no such user", EX_NOUSER),
    ("BADRCPT", "550 5.7.1 relay denied", EX_DATAERR),
    ("BADRCPT", "450 4.2.0 greylisted", EX_TEMPFAIL),
    ("DATA", "554 5.5.1 no valid recipients", EX_DATAERR),
    ("END", "552-5.3.4 message too big\r\n552 5.3.4 really", EX_DATAERR),
    ("END", "452 4.3.1 disk full", EX_TEMPFAIL),
])
def test_sendmail_session_refused(env, daemon, where, reply, code):
    daemon.replies[where] = reply
    rcpt = "bad@example.net" if where == "BADRCPT" else "good@example.net"
    r = env.run("sendmail", "-f", "a@example.org", rcpt, input=b"x\n")
    assert r.returncode == code, err(r)
    assert reply.split("\r\n")[-1] in err(r)
    assert maildrop_files(env) == []
