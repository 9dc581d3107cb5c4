"""Declarative SMTP scenarios: one file per scenario in scenarios/*.scn, the
client's lines, the replies expected, and what must be in the Maildirs at
the end. Adding a case is writing a file.

    # comment
    config: max-recipients 100      config lines (before the first C:)
    account: bob@example.test       extra accounts
    C: EHLO client.test             a line sent with CRLF
    C~ MAIL FROM:<a@b>\\n            raw bytes (Python escapes), nothing added
    S: 250 2.1.0                    one reply: its code and the start of its text
    closed                          the server has closed the connection
    maildir: demo@example.test 1    at the end: that many messages
    contains: demo@example.test TEXT  and one of them holds TEXT (escapes)
"""
import ast
import glob
import os

import pytest

from sluice_harness import RawSMTP, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = sorted(glob.glob(os.path.join(HERE, "scenarios", "*.scn")))


def parse(path):
    steps, config, accounts, checks = [], [], [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            kind, _, rest = line.partition(" ")
            where = "%s:%d" % (os.path.basename(path), n)
            if kind == "config:":
                config.append(rest)
            elif kind == "account:":
                accounts.append(rest)
            elif kind == "C:":
                steps.append(("send", rest.encode() + b"\r\n", where))
            elif kind == "C~":
                steps.append(("send", ast.literal_eval("b'%s'" % rest), where))
            elif kind == "S:":
                code, _, text = rest.partition(" ")
                steps.append(("expect", (int(code), text or None), where))
            elif kind == "closed":
                steps.append(("closed", None, where))
            elif kind in ("maildir:", "contains:"):
                checks.append((kind, rest, where))
            else:
                raise AssertionError("%s: unknown step %r" % (where, kind))
    return config, accounts, steps, checks


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f)[:-4] for f in FILES])
def test_scenario(make_sluice, path):
    config, accounts, steps, checks = parse(path)
    s = make_sluice("".join(c + "\n" for c in config), start=False)
    for a in accounts:
        s.add_account(a)
    s.start()
    c = RawSMTP(s.smtp_port)
    for kind, arg, where in steps:
        if kind == "send":
            c.send(arg)
        elif kind == "expect":
            code, text = arg
            got, t = c.reply()
            assert got == code and (text is None or t.startswith(text)), \
                "%s: expected %d %s, got %d %s" % (where, code, text or "", got, t)
        elif kind == "closed":
            assert c.closed(), "%s: the server did not close" % where
    c.close()
    wait_for(s.queue_empty, what="the queue to empty")
    for kind, rest, where in checks:
        addr, _, arg = rest.partition(" ")
        if kind == "maildir:":
            want = int(arg)
            if want:
                s.wait_messages(addr, want)
            assert len(s.messages(addr)) == want, where
        else:
            text = ast.literal_eval("b'%s'" % arg)     # escapes like \n
            assert any(text in m for m in s.messages(addr)), where
    assert not s.sanitizer_reports()
