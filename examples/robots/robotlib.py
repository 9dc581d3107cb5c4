"""Small helpers shared by the example robots (see docs/robots.md).

A robot reads the message on stdin, learns the rest from its environment
(SENDER, RECIPIENT, EXTENSION, DELIVERY_ID, ...) and answers with its exit
code: 0 done, 75 try again later, anything else a bounce.
"""
import email
import email.policy
import fcntl
import os
import subprocess
import sys

EX_OK, EX_TEMPFAIL, EX_DATAERR = 0, 75, 65


def read_message():
    raw = sys.stdin.buffer.read()
    return raw, email.message_from_bytes(raw, policy=email.policy.default)


def may_reply(msg):
    """RFC 3834: never answer a bounce, an automatic message or a list."""
    if not os.environ.get("SENDER"):
        return False
    auto = (msg.get("Auto-Submitted") or "no").strip().lower()
    prec = (msg.get("Precedence") or "").strip().lower()
    return auto == "no" and prec not in ("bulk", "list", "junk") \
        and msg.get("List-Id") is None


def already_done(state_dir):
    """At-least-once delivery: remember DELIVERY_ID; True if seen before.
    The mark is made by done(), after the work."""
    did = os.environ.get("DELIVERY_ID", "")
    return bool(did) and os.path.exists(os.path.join(state_dir, "done", did))


def done(state_dir, note=""):
    did = os.environ.get("DELIVERY_ID", "")
    if not did:
        return
    d = os.path.join(state_dir, "done")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, did), "w") as f:
        f.write(note)


class Lock:
    """An exclusive lock on STATE_DIR/.lock for the robot's critical part."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, ".lock")

    def __enter__(self):
        self.f = open(self.path, "a")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def send_reply(sendmail, to, subject, body, in_reply_to=None):
    """Send an automatic reply through the local sendmail (argv list),
    from the null sender so that it can never bounce back to us."""
    lines = ["To: %s" % to, "Subject: %s" % subject,
             "Auto-Submitted: auto-replied"]
    if in_reply_to:
        lines += ["In-Reply-To: %s" % in_reply_to, "References: %s" % in_reply_to]
    text = "\n".join(lines) + "\n\n" + body
    r = subprocess.run(list(sendmail) + ["-i", "-f", "<>", "--", to],
                       input=text.encode(), capture_output=True)
    if r.returncode != 0:
        sys.stderr.write("sendmail: %s\n" % r.stderr.decode(errors="replace"))
        sys.exit(EX_TEMPFAIL)
