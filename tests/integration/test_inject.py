"""`sluice inject` (issue 7): the message it composes, parsed back by
Python's email package (headers, attachment types, base64 byte for byte,
RFC 2231 file names, RFC 2047 subjects); sending through the local
sendmail path and over SMTP (STARTTLS and implicit TLS, AUTH PLAIN,
certificate verification); and the inputs it must refuse."""
import email
import email.policy
import hashlib
import os
import struct
import subprocess
import zlib

import pytest
from sluice_harness import DEMO_PASSWORD, SLUICE, tag, wait_for

DEMO = "demo@example.test"
PDF_NAME = "Übersicht März.pdf"


def inject(*args, input=None, env=None, conf=None, user=None):
    """Run `sluice inject`; user: a uid to run it as (tests run as root)."""
    cmd = [SLUICE] + (["-c", conf] if conf else []) + ["inject"] + list(args)
    e = dict(os.environ)
    e.pop("SLUICE_PASSWORD", None)
    e.update(env or {})
    return subprocess.run(cmd, input=input, capture_output=True, env=e,
                          timeout=120, preexec_fn=(lambda: os.setuid(user))
                          if user is not None else None)


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def small_pdf():
    """A minimal valid PDF (one empty page) with a correct xref table."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"]
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offs = []
    for i, o in enumerate(objs, 1):
        offs.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offs)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objs) + 1, xref)
    return out


def small_png():
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    raw = b"".join(b"\0" + bytes((x * 16, y * 16, 128)) * 1 * 16
                   for y in range(16) for x in range(1))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def files(tmp_path):
    d = tmp_path
    (d / PDF_NAME).write_bytes(small_pdf())
    (d / "pixel.png").write_bytes(small_png())
    (d / "blob.bin").write_bytes(bytes(range(256)) * 40)
    (d / "body.txt").write_bytes("Hello from a robot.\n.a leading dot\nÄrger? Nein.\n".encode())
    return d


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ---- the composed message (--dry-run) ----

def test_dry_run_message(files):
    r = inject("--from", "robot@example.test", "--to", DEMO, "--to", "x@example.test",
               "--cc", "cc@example.test", "--bcc", "hidden@example.test",
               "--subject", "Bericht für März ✓", "--body", str(files / "body.txt"),
               "--attach", str(files / PDF_NAME), "--attach", str(files / "pixel.png"),
               "--attach", str(files / "blob.bin"),
               "--header", "X-Robot: inject-test", "--header", "Reply-To: r@example.test",
               "--dry-run")
    assert r.returncode == 0, r.stderr
    m = parse(r.stdout)
    assert m["From"] == "robot@example.test"
    assert [a.addr_spec for a in m["To"].addresses] == [DEMO, "x@example.test"]
    assert m["Cc"] == "cc@example.test"
    assert m["Bcc"] is None and b"hidden@" not in r.stdout   # envelope only
    assert m["Subject"] == "Bericht für März ✓"
    assert b"=?" in r.stdout.split(b"\n\n")[0]               # RFC 2047 on the wire
    assert m["MIME-Version"] == "1.0"
    assert m["Date"].datetime is not None
    mid = m["Message-ID"]
    assert mid.startswith("<") and mid.endswith(">") and "@" in mid
    assert m["X-Robot"] == "inject-test" and m["Reply-To"] == "r@example.test"
    assert m.get_content_type() == "multipart/mixed"
    # everything 7-bit on the wire
    assert all(b < 0x80 for b in r.stdout)
    parts = list(m.iter_parts())
    assert len(parts) == 4
    body = parts[0]
    assert body.get_content_type() == "text/plain"
    assert body.get_content_charset() == "utf-8"
    assert body.get_content() == (files / "body.txt").read_text()
    want = [(PDF_NAME, "application/pdf"), ("pixel.png", "image/png"),
            ("blob.bin", "application/octet-stream")]
    for part, (name, ctype) in zip(parts[1:], want):
        assert part.get_content_type() == ctype
        assert part.get_filename() == name
        assert part.get_content_disposition() == "attachment"
        assert part["Content-Transfer-Encoding"] == "base64"
        assert sha(part.get_payload(decode=True)) == sha((files / name).read_bytes())
    # the non-ASCII name is RFC 2231 (name*=UTF-8''...), not an RFC 2047 word
    assert b"filename*=UTF-8''%C3%9Cbersicht%20M%C3%A4rz.pdf" in r.stdout


def test_dry_run_minimal_and_ids_differ():
    outs = []
    for _ in range(2):
        r = inject("--from", "a@example.test", "--bcc", DEMO, "--dry-run")
        assert r.returncode == 0, r.stderr
        outs.append(parse(r.stdout))
    m = outs[0]
    assert m.get_content_type() == "text/plain"     # no multipart without attachments
    assert m.get_content_charset() == "us-ascii"
    assert m.get_content() == ""
    assert m["To"] is None and m["Bcc"] is None
    assert outs[0]["Message-ID"] != outs[1]["Message-ID"]


def test_body_from_stdin_ascii():
    r = inject("--from", "a@example.test", "--to", DEMO, "--body", "-",
               "--dry-run", input=b"line one\r\nline two\n")
    assert r.returncode == 0, r.stderr
    m = parse(r.stdout)
    assert m.get_content_charset() == "us-ascii"
    assert m["Content-Transfer-Encoding"] in (None, "7bit")
    assert m.get_content() == "line one\nline two\n"


def test_help_lists_every_option():
    r = inject("--help")
    assert r.returncode == 0
    for opt in ("--from", "--to", "--cc", "--bcc", "--subject", "--body", "--attach",
                "--header", "--dry-run", "--server", "--starttls", "--tls", "--ca-file",
                "--tls-name", "--insecure", "--auth-user", "--password-file",
                "--timeout", "SLUICE_PASSWORD", "exit:"):
        assert opt.encode() in r.stdout, opt


# ---- bad input ----

@pytest.mark.parametrize("args,code,says", [
    (["--to", DEMO], 64, b"--from"),
    (["--from", "a@example.test"], 64, b"recipient"),
    (["--from", "not an address", "--to", DEMO], 65, b"--from"),
    (["--from", "a@example.test", "--to", "b@@example.test"], 65, b"recipient"),
    (["--from", "a@example.test", "--to", "<>"], 65, b"recipient"),
    (["--from", "a@example.test", "--to", DEMO, "--header", "X: a\r\nBcc: x"], 65, b"CR or LF"),
    (["--from", "a@example.test", "--to", DEMO, "--header", "X: a\nBcc: x"], 65, b"CR or LF"),
    (["--from", "a@example.test", "--to", DEMO, "--header", "From: x@example.test"], 65, b"itself"),
    (["--from", "a@example.test", "--to", DEMO, "--header", "content-type: text/html"], 65, b"itself"),
    (["--from", "a@example.test", "--to", DEMO, "--header", "Bad Name: v"], 65, b"ftext"),
    (["--from", "a@example.test", "--to", DEMO, "--header", "NoColon"], 65, b"Name: value"),
    (["--from", "a@example.test", "--to", DEMO, "--subject", "a\r\nBcc: x"], 65, b"--subject"),
    (["--from", "a@example.test", "--to", DEMO, "--subject", "a\x1bb"], 65, b"--subject"),
    (["--from", "a@example.test", "--to", DEMO, "--attach", "/nonexistent/file.pdf"], 66, b"file.pdf"),
    (["--from", "a@example.test", "--to", DEMO, "--attach", "/tmp"], 66, b"directory"),
    (["--from", "a@example.test", "--to", DEMO, "--body", "/nonexistent"], 66, b"nonexistent"),
    (["--from", "a@example.test", "--to", DEMO, "--bogus"], 64, b"unknown option"),
    (["--from", "a@example.test", "--to", DEMO, "--starttls"], 64, b"--server"),
    (["--from", "a@example.test", "--to", DEMO, "--server", "127.0.0.1:25",
      "--starttls", "--tls"], 64, b"not both"),
    # AUTH without TLS is refused by inject itself, before any connection
    (["--from", "a@example.test", "--to", DEMO, "--server", "127.0.0.1:9",
      "--auth-user", DEMO], 64, b"AUTH without TLS"),
    (["--from", "a@example.test", "--to", DEMO, "--server", "127.0.0.1"], 64, b"HOST:PORT"),
])
def test_bad_input(args, code, says):
    r = inject(*args, "--dry-run" if "--server" not in args else "--timeout=5")
    assert r.returncode == code, (r.returncode, r.stderr)
    assert says in r.stderr, r.stderr
    assert r.stdout == b"" or b"usage" in r.stdout


def test_backslash_escapes_are_just_text():
    """--header 'X: a\\r\\nBcc: x' from a shell is backslashes, not a line
    end: it stays one field and adds no Bcc."""
    r = inject("--from", "a@example.test", "--to", DEMO, "--header",
               "X-Test: a\\r\\nBcc: x@example.test", "--dry-run")
    assert r.returncode == 0, r.stderr
    m = parse(r.stdout)
    assert m["Bcc"] is None
    assert m["X-Test"] == "a\\r\\nBcc: x@example.test"


def test_bad_body(tmp_path):
    (tmp_path / "bin").write_bytes(b"abc\0def")
    (tmp_path / "latin1").write_bytes("Grüße".encode("latin-1"))
    for f in ("bin", "latin1"):
        r = inject("--from", "a@example.test", "--to", DEMO, "--body",
                   str(tmp_path / f), "--dry-run")
        assert r.returncode == 65 and b"not UTF-8" in r.stderr, r.stderr


def test_attachment_name_with_newline(tmp_path):
    f = tmp_path / "evil\nBcc: x@example.test.pdf"
    f.write_bytes(small_pdf())
    r = inject("--from", "a@example.test", "--to", DEMO, "--attach", str(f), "--dry-run")
    assert r.returncode == 65 and b"control characters" in r.stderr, r.stderr
    assert r.stdout == b""


def test_unreadable_attachment(tmp_path):
    f = tmp_path / "secret.pdf"
    f.write_bytes(small_pdf())
    f.chmod(0)
    # root reads any file: then run inject as nobody
    r = inject("--from", "a@example.test", "--to", DEMO, "--attach", str(f), "--dry-run",
               user=65534 if os.geteuid() == 0 else None)
    assert r.returncode == 66 and b"secret.pdf" in r.stderr, r.stderr
    assert r.stdout == b""


def test_password_file_mode_refused(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(DEMO_PASSWORD + "\n")
    pw.chmod(0o644)
    r = inject("--from", DEMO, "--to", DEMO, "--server", "127.0.0.1:9", "--starttls",
               "--auth-user", DEMO, "--password-file", str(pw))
    assert r.returncode == 65 and b"chmod 600" in r.stderr, r.stderr


def test_connect_refused():
    from sluice_harness import free_port
    r = inject("--from", "a@example.test", "--to", DEMO, "--server",
               "127.0.0.1:%d" % free_port(), "--timeout", "5")
    assert r.returncode == 69 and b"cannot connect" in r.stderr, r.stderr


# ---- sending ----

@pytest.fixture
def sub(make_sluice):
    return make_sluice("auth-failure-delay 0\n", tls=True)


def cert(s):
    return os.path.join(s.dir, "cert.pem")


def delivered(s, t, n=1):
    def found():
        ms = [parse(m) for m in s.messages(DEMO)]
        ms = [m for m in ms if m["Subject"] and t in m["Subject"]]
        return ms if len(ms) >= n else None
    return wait_for(found, what="message %s in the demo Maildir" % t)


def test_send_through_sendmail(sub, files):
    t = tag()
    r = inject("--from", "robot@example.test", "--to", DEMO, "--subject", "via sendmail " + t,
               "--attach", str(files / PDF_NAME), conf=sub.conf)
    assert r.returncode == 0, r.stderr
    m = delivered(sub, t)[0]
    att = [p for p in m.iter_attachments()][0]
    assert att.get_filename() == PDF_NAME
    assert sha(att.get_payload(decode=True)) == sha(small_pdf())


def smtp_args(s, t, *extra):
    return ["--from", DEMO, "--to", DEMO, "--subject", "via smtp " + t,
            "--timeout", "20"] + list(extra)


def test_send_starttls_auth(sub, files):
    t = tag()
    r = inject(*smtp_args(sub, t, "--server", "127.0.0.1:%d" % sub.submission_port,
                          "--starttls", "--auth-user", DEMO, "--ca-file", cert(sub),
                          "--tls-name", "mx.example.test",
                          "--attach", str(files / PDF_NAME),
                          "--attach", str(files / "pixel.png")),
               env={"SLUICE_PASSWORD": DEMO_PASSWORD})
    assert r.returncode == 0, r.stderr
    m = delivered(sub, t)[0]
    atts = list(m.iter_attachments())
    assert [a.get_content_type() for a in atts] == ["application/pdf", "image/png"]
    assert sha(atts[0].get_payload(decode=True)) == sha(small_pdf())
    assert sha(atts[1].get_payload(decode=True)) == sha(small_png())


def test_send_tls_password_file(sub, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(DEMO_PASSWORD + "\nignored second line\n")
    pw.chmod(0o600)
    t = tag()
    r = inject(*smtp_args(sub, t, "--server", "127.0.0.1:%d" % sub.smtps_port, "--tls",
                          "--auth-user", DEMO, "--password-file", str(pw),
                          "--ca-file", cert(sub), "--tls-name", "mx.example.test"),
               input=b"")
    assert r.returncode == 0, r.stderr
    delivered(sub, t)


def test_wrong_password(sub):
    t = tag()
    r = inject(*smtp_args(sub, t, "--server", "127.0.0.1:%d" % sub.submission_port,
                          "--starttls", "--auth-user", DEMO, "--ca-file", cert(sub),
                          "--tls-name", "mx.example.test"),
               env={"SLUICE_PASSWORD": "wrong horse"})
    assert r.returncode in (77, 69), r.stderr
    assert b"535" in r.stderr, r.stderr
    assert not any(t.encode() in m for m in sub.messages(DEMO))


def test_certificate_verification(sub):
    port = "127.0.0.1:%d" % sub.submission_port
    env = {"SLUICE_PASSWORD": DEMO_PASSWORD}
    # the system store does not know the test's self-signed certificate
    t = tag()
    r = inject(*smtp_args(sub, t, "--server", port, "--starttls", "--auth-user", DEMO),
               env=env)
    assert r.returncode == 69 and b"not trusted" in r.stderr, r.stderr
    # the right CA, but the name checked is the address 127.0.0.1
    r = inject(*smtp_args(sub, t, "--server", port, "--starttls", "--auth-user", DEMO,
                          "--ca-file", cert(sub)), env=env)
    assert r.returncode == 69 and b"not trusted" in r.stderr, r.stderr
    # a CA file that holds no certificate
    r = inject(*smtp_args(sub, t, "--server", port, "--starttls", "--ca-file", "/dev/null"))
    assert r.returncode == 66, r.stderr
    assert not any(t.encode() in m for m in sub.messages(DEMO))
    # --insecure: sent, with a loud warning
    r = inject(*smtp_args(sub, t, "--server", port, "--starttls", "--auth-user", DEMO,
                          "--insecure"), env=env)
    assert r.returncode == 0, r.stderr
    assert b"WARNING" in r.stderr and b"NOT verified" in r.stderr
    delivered(sub, t)


def test_rcpt_refused_sends_nothing(sub):
    t = tag()
    r = inject("--from", "someone@elsewhere.test", "--to", "nobody@example.test",
               "--subject", t, "--server", "127.0.0.1:%d" % sub.smtp_port, "--timeout", "20")
    assert r.returncode == 67, r.stderr
    assert b"nobody@example.test" in r.stderr and b"550" in r.stderr


def test_peer_gets_canonical_data(peer):
    """Against aiosmtpd: CRLF, dot-stuffing undone by the peer, envelope
    with Bcc, no STARTTLS needed without AUTH."""
    t = tag()
    r = inject("--from", "robot@example.test", "--to", "a@peer.test", "--bcc", "b@peer.test",
               "--subject", t, "--body", "-", "--server", "127.0.0.1:%d" % peer.port,
               input=b".starts with a dot\n..two dots\n.\nend\n")
    assert r.returncode == 0, r.stderr
    got = wait_for(lambda: peer.messages, what="the peer's message")
    mail_from, rcpts, data = got[0]
    assert mail_from == "robot@example.test"
    assert rcpts == ["a@peer.test", "b@peer.test"]
    assert b"b@peer.test" not in data
    # canonical CRLF on the wire, every line; the dots back as they were
    assert b"\n" not in data.replace(b"\r\n", b"")
    m = parse(data.replace(b"\r\n", b"\n"))
    assert m.get_content() == ".starts with a dot\n..two dots\n.\nend\n"


def test_silent_server_times_out():
    """A server that accepts and never greets: --timeout, then 75."""
    import socket
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        r = inject("--from", "a@example.test", "--to", DEMO, "--server",
                   "127.0.0.1:%d" % srv.getsockname()[1], "--timeout", "1")
    assert r.returncode == 75 and b"timed out" in r.stderr, r.stderr


def test_big_attachment_round_trip(tmp_path):
    data = os.urandom(3 << 20)
    (tmp_path / "big.dat").write_bytes(data)
    r = inject("--from", "a@example.test", "--to", DEMO, "--attach",
               str(tmp_path / "big.dat"), "--dry-run")
    assert r.returncode == 0, r.stderr
    att = list(parse(r.stdout).iter_attachments())[0]
    assert att.get_content_type() == "application/octet-stream"
    assert sha(att.get_payload(decode=True)) == sha(data)
    assert max(len(l) for l in r.stdout.split(b"\n")) <= 78
