"""Inbound authenticity (issue 8): SPF, DKIM and DMARC checked by the smtp
process against our own dnsmasq, recorded in an Authentication-Results:
field (RFC 8601) and acted on per `dmarc` and `multiple-from`.

Signatures are made by an outside signer, Debian's python3-dkim (dkimpy):
rsa-sha256 with a key made by openssl, ed25519-sha256 with one made by
PyNaCl. Bad inputs: tampered bodies, l= with content appended, bad base64
in b=, SPF include loops and more than 10 lookups, a DNS server that never
answers (temperror: never a reject), two From: addresses, a forged
Authentication-Results claiming our authserv-id, 1,000 header fields and a
100 KB folded one. Mail from trusted networks and submission is not
checked.
"""
import base64
import os
import re
import shutil
import smtplib
import subprocess
import tempfile

import pytest

from dns_harness import DNSMasq, StubDNS
from sluice_harness import WAIT, RawSMTP, tag, wait_for

dkim = pytest.importorskip("dkim")
nacl_signing = pytest.importorskip("nacl.signing")

DEMO = "demo@example.test"
AUTHSERV = "mx.example.test"        # the harness's hostname


# ---- keys and records ----

class Keys:
    """An RSA key (openssl) and an Ed25519 key (PyNaCl), with their TXT
    record values."""

    def __init__(self):
        d = tempfile.mkdtemp(prefix="sluice-verify-", dir="/tmp")
        try:
            self.rsa_priv, self.rsa_txt = self.rsa(d, 2048)
            self.weak_priv, self.weak_txt = self.rsa(d, 512)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        sk = nacl_signing.SigningKey.generate()
        self.ed_priv = base64.b64encode(bytes(sk))
        self.ed_txt = ("v=DKIM1; k=ed25519; p=" +
                       base64.b64encode(bytes(sk.verify_key)).decode())

    @staticmethod
    def rsa(d, bits):
        """a PKCS#1 private key and its TXT record"""
        key = os.path.join(d, "rsa%d.pem" % bits)
        subprocess.run(["openssl", "genrsa", "-traditional", "-out", key,
                        str(bits)], check=True, capture_output=True)
        with open(key, "rb") as f:
            priv = f.read()
        der = subprocess.run(["openssl", "rsa", "-in", key, "-pubout",
                              "-outform", "DER"], check=True,
                             capture_output=True).stdout
        return priv, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def keys():
    return Keys()


def txt(name, value):
    """dnsmasq's --txt-record: strings of at most 255 octets"""
    parts = [value[i:i + 255] for i in range(0, len(value), 255)]
    return "--txt-record=%s,%s" % (name, ",".join(parts))


def records(k):
    r = [
        # SPF
        txt("pass.test", "v=spf1 ip4:127.0.0.0/8 -all"),
        txt("fail.test", "v=spf1 ip4:192.0.2.0/24 -all"),
        txt("soft.test", "v=spf1 ~all"),
        txt("bad.test", "v=spf1 ip4:127.0.0.1/33 -all"),
        txt("loop.test", "v=spf1 include:loop2.test -all"),
        txt("loop2.test", "v=spf1 include:loop.test -all"),
        txt("many.test", "v=spf1 " + " ".join(
            "include:n%d.test" % i for i in range(1, 12)) + " +all"),
        txt("mxok.test", "v=spf1 mx -all"),
        "--mx-host=mxok.test,mail.mxok.test,10",
        "--host-record=mail.mxok.test,127.0.0.1",
        # DKIM keys and DMARC
        txt("rsa._domainkey.dk.test", k.rsa_txt),
        txt("ed._domainkey.dk.test", k.ed_txt),
        txt("weak._domainkey.dk.test", k.weak_txt),
        txt("_dmarc.dk.test", "v=DMARC1; p=reject"),
        txt("rsa._domainkey.quar.test", k.rsa_txt),
        txt("rsa._domainkey.testing.test", k.rsa_txt + "; t=y"),
        txt("_dmarc.testing.test", "v=DMARC1; p=reject"),
        txt("_dmarc.quar.test", "v=DMARC1; p=quarantine"),
        txt("_dmarc.pass.test", "v=DMARC1; p=reject"),
        txt("_dmarc.none.test", "v=DMARC1; p=none"),
    ]
    r += [txt("n%d.test" % i, "v=spf1 ?all") for i in range(1, 12)]
    return r


@pytest.fixture(scope="module")
def dns(keys):
    with DNSMasq(records(keys)) as d:
        yield d


# ---- messages ----

def message(t, frm="alice@dk.test", extra="", body=None):
    body = body if body is not None else "Hello %s,\r\n\r\nsome text\r\n" % t
    return ("From: Alice <%s>\r\nTo: demo@example.test\r\nSubject: %s\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <%s@dk.test>\r\n%s\r\n%s"
            % (frm, t, t, extra, body)).encode()


def sign(msg, k, selector=b"rsa", domain=b"dk.test", **kw):
    if selector == b"ed":
        sig = dkim.sign(msg, selector, domain, k.ed_priv,
                        signature_algorithm=b"ed25519-sha256",
                        canonicalize=(b"relaxed", b"relaxed"), **kw)
    else:
        priv = k.weak_priv if selector == b"weak" else k.rsa_priv
        sig = dkim.sign(msg, selector, domain, priv,
                        canonicalize=(b"relaxed", b"simple"), **kw)
    return sig + msg


def send(s, sender, msg, helo="client.test", source=None):
    """smtplib; the exception of a refused DATA is returned, not raised"""
    with smtplib.SMTP("127.0.0.1", s.smtp_port, timeout=WAIT,
                      source_address=(source, 0) if source else None) as c:
        c.ehlo(helo)
        try:
            c.sendmail(sender, [DEMO], msg)
        except smtplib.SMTPDataError as e:
            return e
    return None


def delivered(s, t):
    wait_for(lambda: [m for m in s.messages(DEMO) if t.encode() in m],
             what="message %s delivered" % t)
    (m,) = [m for m in s.messages(DEMO) if t.encode() in m]
    return m


def header_section(m):
    return m.split(b"\r\n\r\n", 1)[0].replace(b"\r\n", b"\n")


def authres(m):
    """Our Authentication-Results fields, unfolded; {method: [(result,
    rest)]}"""
    fields = re.findall(rb"^Authentication-Results:(.*(?:\n[ \t].*)*)",
                        header_section(m), re.M | re.I)
    ours = [re.sub(rb"\s+", b" ", f).decode().strip() for f in fields]
    ours = [f for f in ours if f.split(";")[0].strip() == AUTHSERV]
    assert len(ours) == 1, ours
    out = {}
    for part in ours[0].split(";")[1:]:
        part = part.strip()
        mm = re.match(r"(\w+)=(\w+)(.*)", part)
        assert mm, part
        out.setdefault(mm.group(1), []).append((mm.group(2), mm.group(3)))
    return out


def result(m, method):
    (r,) = authres(m)[method]
    return r


@pytest.fixture
def verifier(make_sluice, dns):
    def make(extra=""):
        return make_sluice("resolver %s\n%s" % (dns.server, extra))
    return make


# ---- SPF ----

@pytest.mark.parametrize("domain,want", [
    ("pass.test", "pass"), ("fail.test", "fail"), ("soft.test", "softfail"),
    ("nothing.test", "none"), ("bad.test", "permerror"),
    ("loop.test", "permerror"), ("many.test", "permerror"),
    ("mxok.test", "pass"),
])
def test_spf(verifier, domain, want):
    s = verifier()
    t = tag()
    assert send(s, "bob@%s" % domain, message(t, frm="bob@%s" % domain)) \
        is None
    m = delivered(s, t)
    r, rest = result(m, "spf")
    assert r == want, rest
    assert "smtp.mailfrom=bob@%s" % domain in rest


def test_spf_null_sender_checks_helo(verifier):
    s = verifier()
    t = tag()
    assert send(s, "", message(t, frm="bob@pass.test"),
                helo="pass.test") is None
    r, rest = result(delivered(s, t), "spf")
    assert r == "pass" and "smtp.helo=pass.test" in rest


def test_spf_fail_is_recorded_not_rejected(verifier):
    """SPF alone never rejects: forwarding breaks it; DMARC decides."""
    s = verifier("dmarc enforce\n")
    t = tag()
    assert send(s, "bob@fail.test", message(t, frm="bob@fail.test")) is None
    assert result(delivered(s, t), "spf")[0] == "fail"


# ---- DKIM ----

@pytest.mark.parametrize("sel", [b"rsa", b"ed"])
def test_dkim_pass_and_dmarc_pass(verifier, keys, sel):
    s = verifier()
    t = tag()
    assert send(s, "bounce@elsewhere.test", sign(message(t), keys, sel)) \
        is None
    m = delivered(s, t)
    r, rest = result(m, "dkim")
    assert r == "pass", rest
    assert "header.d=dk.test" in rest and "header.s=%s" % sel.decode() in rest
    r, rest = result(m, "dmarc")
    assert r == "pass" and "header.from=dk.test" in rest


def test_two_signatures(verifier, keys):
    s = verifier()
    t = tag()
    msg = sign(sign(message(t), keys, b"rsa"), keys, b"ed")
    assert send(s, "bounce@elsewhere.test", msg) is None
    rs = authres(delivered(s, t))["dkim"]
    assert sorted(r for r, _ in rs) == ["pass", "pass"]


def test_dkim_tampered_body_fails(verifier, keys):
    s = verifier()
    t = tag()
    msg = sign(message(t), keys).replace(b"some text", b"some TEXT")
    assert send(s, "bounce@elsewhere.test", msg) is None
    m = delivered(s, t)
    assert result(m, "dkim")[0] == "fail"
    # no aligned identifier: dmarc fails, but only a header by default
    r, rest = result(m, "dmarc")
    assert r == "fail" and "p=reject" in rest


def test_dkim_l_tag_with_appended_content(verifier, keys):
    s = verifier()
    t, t2 = tag(), tag()
    # l= covering the whole body verifies
    assert send(s, "x@elsewhere.test", sign(message(t), keys, length=True)) \
        is None
    assert result(delivered(s, t), "dkim")[0] == "pass"
    # content appended after the signed length: not a pass
    msg = sign(message(t2), keys, length=True) + b"Click here: evil\r\n"
    assert send(s, "x@elsewhere.test", msg) is None
    m = delivered(s, t2)
    r, rest = result(m, "dkim")
    assert r == "policy", rest
    assert result(m, "dmarc")[0] == "fail"


def test_dkim_bad_base64(verifier, keys):
    s = verifier()
    t = tag()
    msg = sign(message(t), keys)
    msg = re.sub(rb"(\bb=)([A-Za-z0-9+/])", rb"\1!*\2", msg, count=1)
    assert send(s, "x@elsewhere.test", msg) is None
    assert result(delivered(s, t), "dkim")[0] == "permerror"


def test_dkim_weak_key(verifier, keys):
    """RFC 8301: RSA keys under 1024 bits are not accepted."""
    s = verifier()
    t = tag()
    assert send(s, "x@elsewhere.test", sign(message(t), keys, b"weak")) \
        is None
    assert result(delivered(s, t), "dkim")[0] in ("permerror", "fail")


def test_no_signature(verifier):
    s = verifier()
    t = tag()
    assert send(s, "x@elsewhere.test", message(t, frm="x@elsewhere.test")) \
        is None
    m = delivered(s, t)
    assert result(m, "dkim")[0] == "none"
    r, rest = result(m, "dmarc")
    assert r == "none" and "no DMARC record" in rest and "p=" not in rest


# ---- DMARC ----

def test_dmarc_enforce_reject(verifier, keys):
    s = verifier("dmarc enforce\n")
    t = tag()
    msg = sign(message(t), keys).replace(b"some text", b"other text")
    e = send(s, "x@elsewhere.test", msg)
    assert e is not None and e.smtp_code == 550
    assert b"5.7.1" in e.smtp_error and b"DMARC" in e.smtp_error
    s.wait_log(r"rejected .*DMARC policy of dk\.test")
    assert not [m for m in s.messages(DEMO) if t.encode() in m]
    # a passing message of the same domain flows
    t2 = tag()
    assert send(s, "x@elsewhere.test", sign(message(t2), keys)) is None
    assert result(delivered(s, t2), "dmarc")[0] == "pass"


def test_dmarc_spf_alignment(verifier):
    s = verifier("dmarc enforce\n")
    t = tag()
    assert send(s, "bob@pass.test", message(t, frm="alice@pass.test")) \
        is None
    r, rest = result(delivered(s, t), "dmarc")
    assert r == "pass", rest


def test_dmarc_enforce_quarantine_holds(verifier, keys):
    s = verifier("dmarc enforce\n")
    t = tag()
    msg = sign(message(t, frm="alice@quar.test"), keys,
               domain=b"quar.test").replace(b"some text", b"changed")
    assert send(s, "x@elsewhere.test", msg) is None
    wait_for(lambda: "(held)" in s.cli("queue", "list").stdout,
             what="the message held")
    assert not [m for m in s.messages(DEMO) if t.encode() in m]


def test_testing_key_does_not_count_for_dmarc(verifier, keys):
    """RFC 6376 3.6.1: a key with t=y signs like no signature: DKIM says
    pass (testing), DMARC finds nothing aligned."""
    s = verifier()
    t = tag()
    msg = sign(message(t, frm="alice@testing.test"), keys,
               domain=b"testing.test")
    assert send(s, "x@elsewhere.test", msg) is None
    m = delivered(s, t)
    r, rest = result(m, "dkim")
    assert r == "pass" and "testing key" in rest, rest
    assert result(m, "dmarc")[0] == "fail"


def test_dmarc_policy_none_never_acts(verifier):
    s = verifier("dmarc enforce\n")
    t = tag()
    assert send(s, "x@elsewhere.test", message(t, frm="a@none.test")) is None
    r, rest = result(delivered(s, t), "dmarc")
    assert r == "fail" and "p=none" in rest


def test_dmarc_off(verifier, keys):
    s = verifier("dmarc off\n")
    t = tag()
    assert send(s, "x@elsewhere.test", sign(message(t), keys)) is None
    m = delivered(s, t)
    assert "dmarc" not in authres(m)
    assert result(m, "dkim")[0] == "pass"


# ---- DNS failures: temperror, never a reject (P3) ----

def test_dns_timeout_is_temperror_never_reject(make_sluice, keys):
    with StubDNS(None) as stub:         # never answers
        s = make_sluice("resolver %s\ndmarc enforce\n" % stub.server)
        t = tag()
        assert send(s, "bob@fail.test", sign(message(t), keys)) is None
        m = delivered(s, t)
        assert result(m, "spf")[0] == "temperror"
        assert result(m, "dkim")[0] == "temperror"
        assert result(m, "dmarc")[0] == "temperror"


def test_dns_servfail_is_temperror(make_sluice):
    with StubDNS() as stub:             # SERVFAIL
        s = make_sluice("resolver %s\ndmarc enforce\n" % stub.server)
        t = tag()
        assert send(s, "bob@pass.test", message(t, frm="a@pass.test")) is None
        m = delivered(s, t)
        assert result(m, "spf")[0] == "temperror"
        assert result(m, "dmarc")[0] == "temperror"


# ---- From: ----

def test_multiple_from_rejected(verifier, keys):
    s = verifier()
    t = tag()
    msg = (b"From: Mallory <mallory@evil.test>\r\n" +
           sign(message(t), keys))
    e = send(s, "x@evil.test", msg)
    assert e is not None and e.smtp_code == 550 and b"From" in e.smtp_error
    # two addresses in one field count too
    t2 = tag()
    e = send(s, "x@evil.test", message(t2, frm="a@dk.test>, <b@evil.test"))
    assert e is not None and e.smtp_code == 550
    assert not [m for m in s.messages(DEMO)
                if t.encode() in m or t2.encode() in m]


def test_multiple_from_tagged(verifier, keys):
    s = verifier("multiple-from tag\n")
    t = tag()
    msg = b"From: Mallory <mallory@evil.test>\r\n" + sign(message(t), keys)
    assert send(s, "x@evil.test", msg) is None
    r, rest = result(delivered(s, t), "dmarc")
    assert r == "permerror" and "From" in rest


# ---- forged results, exemptions, limits ----

def test_forged_authentication_results_renamed(verifier):
    s = verifier()
    t = tag()
    forged = ("Authentication-Results: %s; dkim=pass header.d=bank.test;\r\n"
              "\tdmarc=pass header.from=bank.test\r\n"
              "Authentication-Results: other.test; spf=pass\r\n"
              "Authentication-Results :  %s.; spf=pass\r\n"
              % (AUTHSERV.upper(), AUTHSERV))
    assert send(s, "x@elsewhere.test",
                message(t, frm="x@bank.test", extra=forged)) is None
    m = delivered(s, t)
    hs = header_section(m)
    assert b"X-Spoofed-Auth-Results: MX.EXAMPLE.TEST; dkim=pass" in hs
    assert b"Authentication-Results: other.test; spf=pass" in hs
    # obsolete "Name :" syntax and a trailing dot on the id: ours too
    assert b"X-Spoofed-Auth-Results :  %s.; spf=pass" % AUTHSERV.encode() \
        in hs
    assert result(m, "dkim")[0] == "none"       # ours, the only one
    s.wait_log(r"renamed an Authentication-Results")


def test_not_checked_for_trusted_or_submission(make_sluice, dns):
    s = make_sluice("resolver %s\ntrusted-networks 127.0.0.1/32\n"
                    % dns.server)
    t = tag()
    assert send(s, "bob@fail.test", message(t, frm="bob@fail.test")) is None
    assert b"Authentication-Results" not in header_section(delivered(s, t))
    assert not s.log_search(r"verify client=")
    # a logged-in user on submission (from an untrusted address)
    s2 = make_sluice("resolver %s\n" % dns.server, tls=True)
    t2 = tag()
    c = RawSMTP(s2.submission_port).submission()
    c.expect(250, "2.1.0", "MAIL FROM:<demo@example.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(message(t2, frm="demo@example.test") + b".\r\n")
    c.expect(250, "2.0.0")
    c.close()
    assert b"Authentication-Results" not in header_section(delivered(s2, t2))
    assert not s2.log_search(r"verify client=")


def test_spf_dkim_off(verifier, keys):
    s = verifier("spf-verify no\ndkim-verify no\n")
    t = tag()
    assert send(s, "x@elsewhere.test", sign(message(t), keys)) is None
    a = authres(delivered(s, t))
    assert "spf" not in a and "dkim" not in a
    # without DKIM and SPF nothing can align
    assert a["dmarc"][0][0] == "fail"


def test_huge_headers(verifier, keys):
    """1,000 header fields and a 100 KB folded one: verified, delivered."""
    s = verifier()
    t = tag()
    many = "".join("X-Filler-%d: value %d\r\n" % (i, i) for i in range(1000))
    folded = "X-Folded: " + "\r\n\t".join("w%d" % i for i in range(20000)) \
        + "\r\n"
    msg = sign(message(t, extra=many + folded), keys)
    assert len(msg) > 100000
    assert send(s, "x@elsewhere.test", msg) is None
    m = delivered(s, t)
    assert result(m, "dkim")[0] == "pass"
    assert b"X-Filler-999: value 999" in m


def test_bad_config(make_sluice):
    s = make_sluice(start=False)
    for line, msg in [
        ("dmarc sometimes",
         'dmarc: "sometimes" is not one of off, header or enforce'),
        ("multiple-from maybe", 'is not one of reject or tag'),
        ("spf-verify perhaps", "spf-verify: yes or no"),
        ("dkim-verify 1", "dkim-verify: yes or no"),
    ]:
        with open(s.conf, "a") as f:
            f.write(line + "\n")
        r = s.cli("check", check=False)
        assert r.returncode != 0 and msg in r.stderr + r.stdout, (line, r)
        with open(s.conf) as f:
            text = f.read()
        with open(s.conf, "w") as f:
            f.write(text.replace(line + "\n", ""))
    with open(s.conf, "a") as f:
        f.write("dmarc enforce\nmultiple-from tag\nauthserv-id mx.test\n")
    r = s.cli("check", check=False)
    assert r.returncode == 0, r
