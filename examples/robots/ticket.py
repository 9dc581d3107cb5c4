#!/usr/bin/env python3
"""ticket - a support-desk robot: files each message as a numbered ticket
and tells the sender its number.

    alias:  support: "|/usr/local/lib/sluice/robots/ticket.py /var/lib/tickets /usr/sbin/sendmail"

Tickets are DIR/NNNNNN.eml; DIR/counter holds the last number. A message
delivered twice (the same DELIVERY_ID) makes one ticket.
"""
import os
import sys

from robotlib import (EX_OK, EX_TEMPFAIL, Lock, already_done, done, may_reply,
                      read_message, send_reply)


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: ticket.py DIR SENDMAIL [ARGS...]\n")
        return 64
    state, sendmail = argv[1], argv[2:]
    raw, msg = read_message()
    try:
        with Lock(state):
            if already_done(state):
                return EX_OK
            counter = os.path.join(state, "counter")
            n = int(open(counter).read() or 0) + 1 if os.path.exists(counter) else 1
            path = os.path.join(state, "%06d.eml" % n)
            with open(path + ".tmp", "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.rename(path + ".tmp", path)
            with open(counter + ".tmp", "w") as f:
                f.write(str(n))
            os.rename(counter + ".tmp", counter)
            if may_reply(msg):
                send_reply(sendmail, os.environ["SENDER"],
                           "[ticket #%d] %s" % (n, msg.get("Subject", "")),
                           "Thank you, your message is ticket #%d.\n" % n,
                           msg.get("Message-ID"))
            done(state, str(n))
    except OSError as e:
        sys.stderr.write("4.3.0 ticket store: %s\n" % e)
        return EX_TEMPFAIL
    return EX_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv))
