#!/usr/bin/env python3
"""attachments - saves every attachment of each message it gets.

    alias:  scans: "|/usr/local/lib/sluice/robots/attachments.py /var/lib/scans"

Files go to DIR/<DELIVERY_ID>/NAME with safe names (no '/', no '..', no
leading dot, no control characters; collisions numbered). A later release
does this with `sluice dissect --extract`.
"""
import os
import re
import sys

from robotlib import EX_OK, EX_TEMPFAIL, read_message


def safe_name(name, taken):
    name = os.path.basename((name or "").replace("\\", "/"))
    name = re.sub(r"[\x00-\x1f\x7f/]", "_", name).lstrip(".") or "part"
    base, n = name, 1
    while name in taken:
        stem, dot, ext = base.rpartition(".")
        name = "%s-%d.%s" % (stem, n, ext) if dot else "%s-%d" % (base, n)
        n += 1
    taken.add(name)
    return name


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: attachments.py DIR\n")
        return 64
    _, msg = read_message()
    out = os.path.join(argv[1], os.environ.get("DELIVERY_ID") or "unknown")
    try:
        os.makedirs(out, exist_ok=True)
        taken = set()
        for part in msg.iter_attachments() if msg.is_multipart() else []:
            data = part.get_payload(decode=True) or b""
            with open(os.path.join(out, safe_name(part.get_filename(), taken)), "wb") as f:
                f.write(data)
    except OSError as e:
        sys.stderr.write("4.3.0 %s\n" % e)
        return EX_TEMPFAIL
    return EX_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv))
