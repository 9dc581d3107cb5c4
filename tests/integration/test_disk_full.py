"""P3: a full spool filesystem gives 452 4.3.1, never a lost or half-stored
message. The spool lives on a small tmpfs that the test fills up."""
import os
import shutil
import smtplib
import subprocess

import pytest

from sluice_harness import RawSMTP, Sluice, good_message, tag, wait_for

MB = 1024 * 1024


@pytest.fixture
def small_spool():
    s = Sluice(extra_conf="max-message-size 8M\n")
    mnt = s.spool
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0755", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        s.cleanup()
        pytest.skip("cannot mount a tmpfs here (%s): needs root" % r.stderr.strip())
    if os.geteuid() == 0:
        shutil.chown(mnt, "_sluice", "_sluice")
    try:
        s.add_domain("example.test")
        s.add_account("demo@example.test")
        s.start()
        yield s
    finally:
        s.stop()
        subprocess.run(["umount", "-l", mnt])
        s.cleanup()


def fill(path, leave):
    """Write a file that leaves about `leave` bytes free on path's filesystem."""
    st = os.statvfs(os.path.dirname(path))
    free = st.f_bavail * st.f_frsize
    with open(path, "wb") as f:
        left = max(free - leave, 0)
        while left > 0:
            n = min(left, MB)
            f.write(b"\0" * n)
            left -= n
    return path


def test_no_room_gives_452_and_keeps_earlier_mail(small_spool):
    s = small_spool
    before = s.send_good()
    junk = fill(os.path.join(s.spool, "junk"), 20 * MB)   # < 8M + 16M free
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(452, "4.3.1", "DATA")
    os.unlink(junk)
    t = tag()
    c.expect(354, None, "DATA")
    c.send(good_message(t) + b".\r\n")
    c.expect(250, "2.0.0")
    c.expect(221, None, "QUIT")
    s.assert_intact([before])
    wait_for(lambda: s.count_tag(t, "demo@example.test") == 1, what="the later message")


def test_disk_full_during_data_gives_452(small_spool):
    s = small_spool
    before = s.send_good()
    c = RawSMTP(s.smtp_port)
    c.ehlo()
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    junk = fill(os.path.join(s.spool, "junk"), 0)       # now it is full
    t = tag()
    line = b"y" * 998 + b"\r\n"
    c.send(good_message(t) + line * 4000 + b".\r\n")   # 4 MB: cannot fit
    c.expect(452, "4.3.1")
    os.unlink(junk)
    # nothing of it stays behind, and the session goes on
    wait_for(lambda: not s.spool_files("data") and not s.spool_files("incoming"),
             what="the spool to be clean")
    t2 = tag()
    c.expect(250, "2.1.0", "MAIL FROM:<a@client.test>")
    c.expect(250, "2.1.5", "RCPT TO:<demo@example.test>")
    c.expect(354, None, "DATA")
    c.send(good_message(t2) + b".\r\n")
    c.expect(250, "2.0.0")
    s.assert_intact([before])
    wait_for(lambda: s.count_tag(t2, "demo@example.test") == 1, what="the later message")
    assert s.count_tag(t, "demo@example.test") == 0
