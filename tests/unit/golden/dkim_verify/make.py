#!/usr/bin/python3
# Regenerates the interop vectors of test_dkim_verify with dkimpy
# (Debian's python3-dkim), an independent DKIM implementation: fresh keys
# (the private halves are not kept), the TXT records (rsa.txt, ed.txt)
# and one message per canonicalization (*.eml). Run it here.
import os, subprocess, tempfile
import dkim

MSG = (b"Received: from mx.example.net by mx.example.com; Tue, 14 Nov 2023\r\n"
       b"\t22:13:20 +0000\r\n"
       b"From: Joe SixPack <joe@football.example.com>\r\n"
       b"To: Suzie Q <suzie@shopping.example.net>\r\n"
       b"Subject:   Is dinner   ready?  \r\n"
       b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
       b"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
       b"\r\n"
       b"Hi.\r\n"
       b"\r\n"
       b"We lost the game.  Are you hungry yet?\t \r\n"
       b"\r\n"
       b"Joe.\r\n"
       b"\r\n"
       b"\r\n")
HDRS = [b"from", b"to", b"subject", b"date", b"message-id"]

def key(tmp, kind):
    priv = os.path.join(tmp, kind)
    subprocess.run(["dknewkey", "--ktype", kind, priv], check=True,
                   capture_output=True)
    with open(priv + (".key"), "rb") as f:
        pk = f.read()
    with open(priv + ".dns") as f:
        txt = f.read().strip()
    return pk, txt

with tempfile.TemporaryDirectory() as tmp:
    rsa, rsa_txt = key(tmp, "rsa")
    ed, ed_txt = key(tmp, "ed25519")
open("rsa.txt", "w").write(rsa_txt + "\n")
open("ed.txt", "w").write(ed_txt + "\n")
for name, sel, pk, alg, canon in [
        ("rsa-relaxed", b"rsa", rsa, b"rsa-sha256", (b"relaxed", b"relaxed")),
        ("rsa-simple", b"rsa", rsa, b"rsa-sha256", (b"simple", b"simple")),
        ("rsa-relaxed-simple", b"rsa", rsa, b"rsa-sha256",
         (b"relaxed", b"simple")),
        ("ed25519-relaxed", b"ed", ed, b"ed25519-sha256",
         (b"relaxed", b"relaxed")),
        ("ed25519-simple", b"ed", ed, b"ed25519-sha256",
         (b"simple", b"simple"))]:
    sig = dkim.sign(MSG, sel, b"example.com", pk, canonicalize=canon,
                    signature_algorithm=alg, include_headers=HDRS)
    open(name + ".eml", "wb").write(sig + MSG)
