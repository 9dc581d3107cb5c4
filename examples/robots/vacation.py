#!/usr/bin/env python3
"""vacation - an auto-responder that answers each sender once per N days.

    alias:  alice: alice, "|/usr/local/lib/sluice/robots/vacation.py /var/lib/vacation/alice 7 /etc/sluice/away.txt /usr/sbin/sendmail"

The first line of MESSAGE_FILE is the subject, the rest the body. Whom it
answered, and when, is kept in DIR/seen/<sender>.
"""
import os
import sys
import time

from robotlib import EX_OK, Lock, already_done, done, may_reply, read_message, send_reply


def main(argv):
    if len(argv) < 5:
        sys.stderr.write("usage: vacation.py DIR DAYS MESSAGE_FILE SENDMAIL [ARGS...]\n")
        return 64
    state, days, text, sendmail = argv[1], float(argv[2]), argv[3], argv[4:]
    _, msg = read_message()
    sender = os.environ.get("SENDER", "")
    if not may_reply(msg) or "/" in sender or sender.startswith("."):
        return EX_OK
    with Lock(state):
        if already_done(state):
            return EX_OK
        seen = os.path.join(state, "seen")
        os.makedirs(seen, exist_ok=True)
        mark = os.path.join(seen, sender.lower())
        if os.path.exists(mark) and time.time() - os.path.getmtime(mark) < days * 86400:
            done(state)
            return EX_OK
        subject, _, body = open(text).read().partition("\n")
        send_reply(sendmail, sender, subject, body, msg.get("Message-ID"))
        with open(mark, "w"):
            pass
        done(state)
    return EX_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv))
