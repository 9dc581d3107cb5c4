"""DKIM signing (issue 8): keys made by `sluice dkim keygen`, their TXT
records served by our own dnsmasq, mail relayed through a route to an
aiosmtpd peer and verified there by an outside verifier: Debian's
python3-dkim (dkimpy), both as a library asking the dnsmasq (dnspython)
and as the `dkimverify` command pointed at it; rsa-sha256, ed25519-sha256
and both at once. Tampering breaks the signature (the check can fail);
mail of a domain without a key is not signed; bad key files are refused
by `sluice check`; huge headers never lose a message.
"""
import json
import os
import shutil
import smtplib
import subprocess
import tempfile

import pytest

from dns_harness import DNSMasq
from sluice_harness import RUN_USER, tag, wait_for

dkim = pytest.importorskip("dkim")
dns_resolver = pytest.importorskip("dns.resolver")

DKIMVERIFY = shutil.which("dkimverify") or "/usr/bin/dkimverify"

# dkimverify asks the system's resolver: point dnspython at our dnsmasq
SITECUSTOMIZE = """\
import os
import dns.resolver
_r = dns.resolver.Resolver(configure=False)
_r.nameservers = [os.environ["SLUICE_TEST_DNS_HOST"]]
_r.port = int(os.environ["SLUICE_TEST_DNS_PORT"])
dns.resolver.default_resolver = _r
"""


def keygen(s, domain, typ, selector):
    r = s.cli("dkim", "keygen", domain, "--type", typ, "--selector", selector,
              "--dir", os.path.join(s.dir, "dkim"), "--json")
    k = json.loads(r.stdout)
    st = os.stat(k["keyfile"])
    assert st.st_mode & 0o777 == 0o600
    if os.geteuid() == 0:
        import pwd
        assert st.st_uid == pwd.getpwnam(RUN_USER).pw_uid
    return k


def txt_arg(k):
    """dnsmasq's --txt-record, the value in strings of at most 255 octets"""
    v = k["dns_txt"]
    parts = [v[i:i + 255] for i in range(0, len(v), 255)]
    return "--txt-record=%s,%s" % (k["dns_name"], ",".join(parts))


class Signer:
    """A sluice relaying *.remote.test to the peer, with dkim-sign keys
    for `keys` [(domain, type, selector)], and a dnsmasq with their
    records."""

    def __init__(self, make_sluice, peer, keys, extra=""):
        self.peer = peer
        self.s = make_sluice("trusted-networks 127.0.0.0/8\n"
                             "route remote.test via 127.0.0.1:%d\n%s"
                             % (peer.port, extra), start=False)
        self.keys = [keygen(self.s, d, t, sel) for d, t, sel in keys]
        with open(self.s.conf, "a") as f:
            for k in self.keys:
                f.write(k["config"] + "\n")
        self.dns = DNSMasq([txt_arg(k) for k in self.keys]).start()
        r = self.s.cli("check")
        assert "configuration ok" in r.stdout
        self.s.start()
        self.res = dns_resolver.Resolver(configure=False)
        self.res.nameservers = ["127.0.0.1"]
        self.res.port = self.dns.port
        self.site = tempfile.mkdtemp(prefix="sluice-dkimpy-", dir="/tmp")
        with open(os.path.join(self.site, "sitecustomize.py"), "w") as f:
            f.write(SITECUSTOMIZE)

    def cleanup(self):
        self.dns.cleanup()
        shutil.rmtree(self.site, ignore_errors=True)

    def dnsfunc(self, name, timeout=5):
        """the TXT record through the dnsmasq, as a receiver gets it"""
        name = name.decode() if isinstance(name, bytes) else name
        try:
            ans = self.res.resolve(name.rstrip("."), "TXT", lifetime=timeout)
        except (dns_resolver.NXDOMAIN, dns_resolver.NoAnswer):
            return None
        return b"".join(b"".join(r.strings) for r in ans)

    def send(self, sender, rcpt, msg):
        n = len(self.peer.messages)
        with smtplib.SMTP("127.0.0.1", self.s.smtp_port, timeout=30) as c:
            c.sendmail(sender, [rcpt], msg)
        wait_for(lambda: len(self.peer.messages) > n,
                 what="the message at the peer")
        return self.peer.messages[n][2]

    def verify(self, content, idx=0):
        try:
            return dkim.DKIM(content).verify(idx=idx, dnsfunc=self.dnsfunc)
        except dkim.DKIMException:     # some failures raise (body hash)
            return False

    def dkimverify(self, content, idx=0):
        env = dict(os.environ, PYTHONPATH=self.site,
                   SLUICE_TEST_DNS_HOST="127.0.0.1",
                   SLUICE_TEST_DNS_PORT=str(self.dns.port))
        r = subprocess.run(["/usr/bin/python3", DKIMVERIFY, "--index",
                            str(idx)], input=content, env=env,
                           capture_output=True, timeout=60)
        return r.returncode == 0 and b"signature ok" in r.stdout


@pytest.fixture
def signer(make_sluice, peer):
    made = []

    def make(keys, extra=""):
        sg = Signer(make_sluice, peer, keys, extra)
        made.append(sg)
        return sg

    yield make
    for sg in made:
        sg.cleanup()


def message(t, frm="Demo <demo@example.test>", extra="", body=None):
    body = body if body is not None else (
        "Hello %s,\r\n\r\n  some  spaced   text  \t\r\n.a dot line\r\n\r\n\r\n"
        % t)
    return ("From: %s\r\nTo: Bob <bob@remote.test>\r\nSubject: test %s\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@example.test>\r\n%s\r\n%s"
            % (frm, t, t, extra, body)).encode()


def sig_fields(content):
    head = content.split(b"\r\n\r\n", 1)[0]
    return [f for f in head.replace(b"\r\n\t", b" ").replace(b"\r\n ", b" ")
            .split(b"\r\n") if f.lower().startswith(b"dkim-signature:")]


@pytest.mark.parametrize("types", [["rsa"], ["ed25519"], ["rsa", "ed25519"]])
def test_signed_and_verified(signer, types):
    sg = signer([("example.test", t, "%s1" % t) for t in types])
    t = tag()
    got = sg.send("demo@example.test", "bob@remote.test", message(t))
    sigs = sig_fields(got)
    assert len(sigs) == len(types), got
    assert got.startswith(b"DKIM-Signature:")       # first in the header
    for line in got.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        assert len(line) < 78, line                 # folded
    for i, ty in enumerate(types):
        a = b"a=rsa-sha256" if ty == "rsa" else b"a=ed25519-sha256"
        assert [s for s in sigs if a in s], sigs
        assert b"h=from:from:" in sigs[i].replace(b" ", b"")   # oversigned
        assert b"c=relaxed/relaxed" in sigs[i]
        assert sg.verify(got, i), "dkimpy rejects signature %d" % i
        assert sg.dkimverify(got, i), "dkimverify rejects signature %d" % i
    # the verifier can say no: a changed body, a changed subject
    bad = got.replace(b"some  spaced", b"some  spiced")
    assert bad != got
    for i in range(len(types)):
        assert not sg.verify(bad, i)
        assert not sg.dkimverify(bad, i)
    bad = got.replace(b"Subject: test", b"Subject: Test")
    assert not sg.verify(bad, 0)
    # an added From: (a DMARC trick) breaks it: From is oversigned
    head, body = got.split(b"\r\n\r\n", 1)
    assert not sg.verify(head + b"\r\nFrom: ceo@example.test\r\n\r\n" + body, 0)
    assert sg.s.log_search("dkim: signed d=example.test")


def test_who_is_signed(signer):
    sg = signer([("example.test", "ed25519", "e1")])
    # a From: of a domain without a key: not signed, even if the
    # envelope sender's domain has one
    got = sg.send("demo@example.test", "bob@remote.test",
                  message(tag(), frm="someone@other.test"))
    assert not sig_fields(got)
    # no From: at all: the envelope sender's domain signs
    t = tag()
    got = sg.send("demo@example.test", "bob@remote.test",
                  b"To: bob@remote.test\r\nSubject: %s\r\n\r\nno from\r\n" %
                  t.encode())
    assert len(sig_fields(got)) == 1 and sg.verify(got)
    # ... and without a key, not
    got = sg.send("x@other.test", "bob@remote.test",
                  b"To: bob@remote.test\r\nSubject: y\r\n\r\nno from\r\n")
    assert not sig_fields(got)
    # an empty body (relaxed: hashed as empty) and a body of empty lines
    for body in ("", "\r\n\r\n\r\n"):
        got = sg.send("demo@example.test", "bob@remote.test",
                      message(tag(), body=body))
        assert len(sig_fields(got)) == 1 and sg.verify(got)
        assert sg.dkimverify(got)


def test_sign_after_rewrite_from(make_sluice, peer, signer):
    sg = signer([("isp.test", "rsa", "r1")],
                extra="route * via 127.0.0.1:%d rewrite-from me@isp.test\n"
                % peer.port)
    got = sg.send("ann@home.test", "friend@far.test",
                  message(tag(), frm="Ann <ann@home.test>"))
    assert b"From: Ann <me@isp.test>\r\n" in got
    assert b"d=isp.test" in sig_fields(got)[0]
    assert sg.verify(got) and sg.dkimverify(got)


def test_check_refuses_bad_keys(make_sluice):
    s = make_sluice(start=False)
    k = keygen(s, "example.test", "rsa", "r1")
    with open(s.conf, "a") as f:
        f.write(k["config"] + "\n")
    lineno = sum(1 for _ in open(s.conf))
    assert s.cli("check").returncode == 0
    os.chmod(k["keyfile"], 0o644)       # readable by others
    r = s.cli("check", check=False)
    assert r.returncode == 78, r.stderr
    assert "%s:%d: dkim-sign" % (s.conf, lineno) in r.stderr, r.stderr
    assert "chmod 600" in r.stderr
    os.chmod(k["keyfile"], 0o600)
    with open(k["keyfile"], "w") as f:  # garbage PEM
        f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n"
                "-----END PRIVATE KEY-----\n")
    r = s.cli("check", check=False)
    assert r.returncode == 78, r.stderr
    assert "%s:%d: dkim-sign" % (s.conf, lineno) in r.stderr
    assert "not a PEM private key" in r.stderr
    # keygen never overwrites a key
    r = s.cli("dkim", "keygen", "example.test", "--selector", "r1", "--dir",
              os.path.join(s.dir, "dkim"), check=False)
    assert r.returncode == 73 and "not overwritten" in r.stderr
    # a bad line is a FILE:LINE error too
    with open(s.conf, "a") as f:
        f.write("dkim-sign example.test\n")
    r = s.cli("check", check=False)
    assert r.returncode == 78 and "%s:%d:" % (s.conf, lineno + 1) in r.stderr


def test_unloadable_key_sends_unsigned(signer):
    sg = signer([("example.test", "ed25519", "e1")])
    with open(sg.keys[0]["keyfile"], "w") as f:
        f.write("garbage\n")
    sg.s.proc.send_signal(1)            # SIGHUP: reload, the key is bad now
    wait_for(lambda: sg.s.log_search("dkim-sign example.test e1"),
             what="the reload's complaint about the key")
    got = sg.send("demo@example.test", "bob@remote.test", message(tag()))
    assert not sig_fields(got) and b"Subject: test" in got


def test_huge_headers_never_lost(signer):
    sg = signer([("example.test", "rsa", "r1")])
    # 1000 header fields
    many = "".join("X-Many-%d: value %d\r\n" % (i, i) for i in range(1000))
    t = tag()
    got = sg.send("demo@example.test", "bob@remote.test",
                  message(t, extra=many))
    assert b"X-Many-999: value 999" in got and t.encode() in got
    assert len(sig_fields(got)) == 1 and sg.verify(got)   # signed, even so
    # a folded field of 100 KB
    folded = "X-Folded: start" + "".join("\r\n\tpart %d xxxxxxxxxxxxxxxxxxxx"
                                         % i for i in range(3300)) + "\r\n"
    assert len(folded) > 100 * 1024
    t = tag()
    got = sg.send("demo@example.test", "bob@remote.test",
                  message(t, extra=folded))
    assert b"part 3299 xxx" in got and t.encode() in got
    assert len(sig_fields(got)) == 1 and sg.verify(got)   # signed, even so
