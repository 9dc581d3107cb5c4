"""Issue 7's full loop with real components: `sluice inject` sends a PDF
through the submission port with STARTTLS and AUTH, Dovecot serves it over
IMAP (as an offline IMAP sync would fetch it), `sluice dissect --extract`
gets the PDF back byte for byte and prints the command that would print
it. Then the robot variant: an alias `|sluice dissect --extract DIR` does
the same on delivery."""
import hashlib
import os
import pathlib
import shlex
import shutil
import subprocess
import tempfile

import pytest

from dovecot_harness import dovecot_installed
from sluice_harness import DEMO_PASSWORD, SLUICE, WAIT, tag, wait_for

DEMO = "demo@example.test"

# a small, valid PDF (one empty page)
PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
       b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
       b"xref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n"
       b"0000000052 00000 n \n0000000101 00000 n \n"
       b"trailer<</Size 4/Root 1 0 R>>\nstartxref\n170\n%%EOF\n" +
       bytes(range(256)))          # and some binary, to exercise base64


def sha(b):
    return hashlib.sha256(b).hexdigest()


def inject(s, *args, env_password=True):
    env = dict(os.environ)
    if env_password:
        env["SLUICE_PASSWORD"] = DEMO_PASSWORD
    return subprocess.run([SLUICE, "-c", s.conf, "inject"] + list(args),
                          capture_output=True, text=True, timeout=WAIT, env=env)


@pytest.mark.skipif(not dovecot_installed(), reason="Dovecot is not installed")
def test_inject_submission_imap_dissect(make_sluice, make_dovecot, tmp_path):
    s = make_sluice(tls=True)
    pdf = tmp_path / "Quartalsbericht März.pdf"
    pdf.write_bytes(PDF)
    t = tag()
    r = inject(s, "--server", "127.0.0.1:%d" % s.submission_port, "--starttls",
               "--tls-name", "mx.example.test", "--ca-file", os.path.join(s.dir, "cert.pem"),
               "--auth-user", DEMO, "--from", DEMO, "--to", DEMO,
               "--subject", "report " + t, "--attach", str(pdf))
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: [m for m in s.messages(DEMO) if t.encode() in m], what="delivery")

    # fetch it over IMAP from Dovecot, as a mail client or offlineimap would
    d = make_dovecot(s)
    m = d.login(DEMO, DEMO_PASSWORD)
    assert m is not None, d.read_log()
    m.select("INBOX")
    typ, ids = m.search(None, "SUBJECT", t)
    assert typ == "OK" and len(ids[0].split()) == 1
    typ, data = m.fetch(ids[0].split()[0], "(RFC822)")
    m.logout()
    raw = data[0][1]
    eml = tmp_path / "fetched.eml"
    eml.write_bytes(raw)

    out = tmp_path / "out"
    out.mkdir()
    r = subprocess.run([SLUICE, "dissect", "--extract", str(out), "--print-command",
                        "lp {}", str(eml)], capture_output=True, text=True, timeout=WAIT)
    assert r.returncode == 0, r.stderr
    got = out / "Quartalsbericht März.pdf"
    assert sha(got.read_bytes()) == sha(PDF)
    assert r.stdout.strip() == "lp " + shlex.quote(str(got)), r.stdout


@pytest.fixture
def shared_dir():
    """A directory the daemon's user and the robot's user can reach
    (pytest's tmp_path is private to the test's user)."""
    d = tempfile.mkdtemp(prefix="sluice-robot-", dir="/tmp")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


def test_dissect_robot_on_delivery(make_sluice, shared_dir):
    """An alias pipes the message to `sluice dissect --extract DIR` (the
    robot runs as robot-user, nobody); the PDF lands in DIR intact."""
    tmp_path = shared_dir
    out = tmp_path / "robot-out"
    out.mkdir()
    if os.geteuid() == 0:
        shutil.chown(out, "nobody")
    aliases = tmp_path / "aliases"
    aliases.write_text('pdfbot: "|%s dissect --extract %s"\n' % (SLUICE, out))
    s = make_sluice("aliases %s\n" % aliases)
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(PDF)
    r = inject(s, "--from", DEMO, "--to", "pdfbot@example.test", "--subject", "scan",
               "--attach", str(pdf), env_password=False)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: (out / "scan.pdf").exists(), what="the robot's extraction")
    wait_for(s.queue_empty, what="the delivery to finish")
    assert sha((out / "scan.pdf").read_bytes()) == sha(PDF)
    assert "pdfbot@example.test" in s.read_log() and "status=sent" in s.read_log()
