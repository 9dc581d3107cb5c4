"""Robots and mbox appends (src/deliver/pipe_run.c) with real processes,
driven through tests/tools/pipe-run: the exit contract of DESIGN.md "Pipe
delivery (robots)", exactly what a robot gets (stdin, argv, environment,
descriptors, ids: P4), robots that misbehave (never read, flood stderr,
leave a daemon, hang, crash), and the mbox format, quoting and locking.

Robots are small scripts in a world-readable directory so that `nobody`
can run them when the tests run as root. No timing assertions: where
"promptly" matters, a long configured timeout would turn the result into
a temporary failure, and that is what is checked."""
import fcntl
import hashlib
import json
import os
import pwd
import grp
import re
import shutil
import stat
import subprocess
import tempfile

import pytest

from sluice_harness import BUILD, group_alive, proc_stat, wait_for

PIPE_RUN = os.path.join(BUILD, "tests", "tools", "pipe-run")
ROOT = os.geteuid() == 0

pytestmark = pytest.mark.skipif(not os.path.exists(PIPE_RUN),
                                reason="pipe-run not built")

if ROOT:
    RUN_UID = pwd.getpwnam("nobody").pw_uid
    RUN_GID = grp.getgrnam("nogroup").gr_gid
else:
    RUN_UID, RUN_GID = os.geteuid(), os.getegid()
IDS = ["--uid", str(RUN_UID), "--gid", str(RUN_GID)]

MSG = (b"Subject: robots\nX-Bytes: caf\xc3\xa9 \x01\n\n.leading dot\n"
       b"From the start of a line\nbare\rcr and crlf\r\nno final newline")
PREFIX = "Return-Path: <a@example.org>\nDelivered-To: list@example.test\n"


# ---- running the tool ----

class Run:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stderr = proc.stderr.decode("utf-8", "replace")
        self.lines = [json.loads(l) for l in proc.stdout.decode().splitlines()]
        self.results = [l for l in self.lines if "status" in l]

    @property
    def r(self):
        assert len(self.results) == 1, self
        return self.results[0]

    @property
    def err(self):
        return self.r["err"].encode("latin-1")

    def __repr__(self):
        return "rc=%d\n%s\n%s" % (self.rc, self.lines, self.stderr)


def pipe_run(data, *args, ids=True, timeout=120, pass_fds=(),
             extra_groups=None):
    argv = [PIPE_RUN] + (IDS if ids else []) + [str(a) for a in args]
    argv.append(str(data))
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1")
    proc = subprocess.run(argv, capture_output=True, timeout=timeout, env=env,
                          pass_fds=pass_fds, extra_groups=extra_groups)
    run = Run(proc)
    assert "AddressSanitizer" not in run.stderr, run
    assert "runtime error" not in run.stderr, run
    return run


@pytest.fixture
def d():
    """A directory `nobody` can use: robots, mboxes, marker files."""
    path = tempfile.mkdtemp(prefix="sluice-pipe-")
    os.chmod(path, 0o755)
    if ROOT:
        os.chown(path, RUN_UID, RUN_GID)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def data(d):
    return write(d, "msg", MSG)


def write(d, name, content, mode=0o644):
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(content if isinstance(content, bytes) else content.encode())
    os.chmod(path, mode)
    return path


def robot(d, name, body, interp="/bin/sh"):
    return write(d, name, "#!%s\n%s" % (interp, body), 0o755)


def py_robot(d, name, body):
    return robot(d, name, "import os, sys, json\n" + body, "/usr/bin/python3")


def dead(pid):
    st = proc_stat(pid)
    return st is None or st["state"] in ("Z", "X")


# ---- the exit contract ----

@pytest.mark.parametrize("code,status", [
    (0, "ok"), (99, "ok_stop"), (75, "temp"), (111, "temp"),
    (1, "perm"), (2, "perm")])
def test_exit_codes(d, data, code, status):
    r = robot(d, "exit.sh", 'echo "robot says $1" >&2\nexit "$1"\n')
    run = pipe_run(data, "--cmd", "%s %d" % (r, code))
    assert run.rc == 0, run
    assert run.r["status"] == status and run.r["exit_code"] == code, run
    assert run.err == b"robot says %d\n" % code
    if status in ("temp", "perm"):
        # the bounce/log text names the exit and the first stderr line
        assert run.r["text"] == "%s robot exited %d: robot says %d" % (
            "4.3.0" if status == "temp" else "5.3.0", code, code), run
    else:
        assert run.r["text"].startswith("2.0.0 "), run


@pytest.mark.parametrize("code,out,err,status", [
    (0, "5.1.1 no such list member", "", "perm"),     # stdout, despite 0
    (75, "5.7.1 refused by policy", "", "perm"),      # despite 75
    (99, "4.2.2 archive full", "", "temp"),           # despite 99
    (1, "", "4.3.5 try again later", "temp"),         # stderr, despite 1
    (2, "4.0.0 out wins", "5.0.0 err loses", "temp"), # stdout first
])
def test_enhanced_status_chooses_the_class(d, data, code, out, err, status):
    r = robot(d, "enh.sh", 'printf "%%s\\n" "%s"\nprintf "%%s\\nmore\\n" '
              '"%s" >&2\nexit %d\n' % (out, err, code))
    run = pipe_run(data, "--cmd", r)
    assert run.r["status"] == status, run
    assert run.r["text"] == (out or err), run
    assert run.r["exit_code"] == code


def test_killed_by_a_signal_is_temporary(d, data):
    r = robot(d, "segv.sh", 'echo "5.1.1 would bounce" \nkill -SEGV $$\n')
    run = pipe_run(data, "--cmd", r)
    assert run.r["status"] == "temp" and run.r["exit_code"] == -11, run
    assert "signal 11 (SIGSEGV)" in run.r["text"], run
    r = robot(d, "term.sh", "kill -TERM $$\n")
    run = pipe_run(data, "--cmd", r)
    assert run.r["status"] == "temp" and run.r["exit_code"] == -15, run


def test_closed_outputs_do_not_end_the_run(d, data):
    """Its outputs at EOF, the robot still runs: the exit code decides."""
    r = robot(d, "close.sh", "exec >&- 2>&-\nsleep 1\nexit 3\n")
    run = pipe_run(data, "--cmd", r)
    assert run.r["status"] == "perm" and run.r["exit_code"] == 3, run


# ---- what a robot gets (P4) ----

def test_stdin_is_prefix_then_message_exactly(d, data):
    r = robot(d, "cat.sh", "exec /bin/cat >&2\n")
    run = pipe_run(data, "--prefix", PREFIX, "--cmd", r)
    assert run.r["status"] == "ok", run
    assert run.err == PREFIX.encode() + MSG


def test_stdin_big_message(d):
    body = b"".join(b"line %07d From x\n.\n" % i for i in range(60000))
    data = write(d, "big", body)
    r = py_robot(d, "sha.py", "b = sys.stdin.buffer.read()\n"
                 "sys.stderr.write('%d %s' % (len(b), "
                 "__import__('hashlib').sha256(b).hexdigest()))\n")
    run = pipe_run(data, "--prefix", PREFIX, "--cmd", r)
    want = PREFIX.encode() + body
    assert run.r["status"] == "ok", run
    assert run.err.decode() == "%d %s" % (len(want),
                                          hashlib.sha256(want).hexdigest())


def test_environment_is_exactly_what_was_passed(d, data):
    r = py_robot(d, "env.py",
                 "sys.stderr.buffer.write(open('/proc/self/environ', "
                 "'rb').read())\n")
    env = ["SENDER=a@example.org", "RECIPIENT=list@example.test",
           "PATH=/usr/bin:/bin", "EMPTY=", "QUEUE_ID=1A2B3C"]
    args = []
    for e in env:
        args += ["--env", e]
    run = pipe_run(data, *args, "--cmd", r)
    assert run.r["status"] == "ok", run
    assert run.err.split(b"\0")[:-1] == [e.encode() for e in env], run
    # and nothing at all when nothing is given
    run = pipe_run(data, "--cmd", r)
    assert run.r["status"] == "ok" and run.err == b"", run


def test_no_descriptor_but_0_1_2(d, data):
    r = py_robot(d, "fds.py", """
fds = []
for fd in range(0, 4096):
    try:
        os.fstat(fd)
        fds.append(fd)
    except OSError:
        pass
links = [os.readlink("/proc/self/fd/%d" % fd) for fd in (0, 1, 2)]
sys.stderr.write(json.dumps({"fds": fds, "links": links}))
""")
    # an inheritable descriptor in the caller must not reach the robot
    leak = os.open(data, os.O_RDONLY)
    try:
        run = pipe_run(data, "--cmd", r, pass_fds=(leak,))
    finally:
        os.close(leak)
    got = json.loads(run.err)
    assert got["fds"] == [0, 1, 2], run
    assert all(l.startswith("pipe:") for l in got["links"]), got
    assert got["links"][1] != got["links"][2], got    # stdout is not stderr


IDS_ROBOT = """
st = os.stat("/proc/self")
sys.stderr.write(json.dumps({
    "uid": os.getresuid(), "gid": os.getresgid(), "groups": os.getgroups(),
    "cwd": os.getcwd(), "umask": os.umask(0),
    "own_session": os.getsid(0) == os.getpid(),
    "own_group": os.getpgid(0) == os.getpid()}))
"""


@pytest.mark.skipif(not ROOT, reason="needs root")
def test_runs_as_the_user_without_groups(d, data):
    r = py_robot(d, "ids.py", IDS_ROBOT)
    # the caller's supplementary groups must not reach the robot
    run = pipe_run(data, "--cmd", r, extra_groups=[0, 4, 27])
    got = json.loads(run.err)
    assert got["uid"] == [RUN_UID] * 3 and got["gid"] == [RUN_GID] * 3, got
    assert got["groups"] == [], got
    assert got["umask"] == 0o077, got
    assert got["own_session"] and got["own_group"], got
    home = pwd.getpwuid(RUN_UID).pw_dir
    assert got["cwd"] == (home if os.path.isdir(home) else "/"), got


@pytest.mark.skipif(not ROOT, reason="needs root")
def test_cwd_is_the_home_directory(d, data):
    user = next((p for p in pwd.getpwall() if p.pw_uid not in (0, RUN_UID)
                 and p.pw_gid != 0 and os.path.isdir(p.pw_dir)
                 and p.pw_dir != "/"), None)
    if user is None:
        pytest.skip("no user with a home directory")
    r = py_robot(d, "ids.py", IDS_ROBOT)
    run = pipe_run(data, "--uid", user.pw_uid, "--gid", user.pw_gid,
                   "--cmd", r, ids=False)
    got = json.loads(run.err)
    assert got["uid"][0] == user.pw_uid, got
    assert got["cwd"] == os.path.realpath(user.pw_dir), got


def test_root_is_refused(d, data):
    marker = os.path.join(d, "ran")
    r = robot(d, "touch.sh", "touch %s\n" % marker)
    run = pipe_run(data, "--uid", 0, "--gid", 0, "--cmd", r, ids=False)
    assert run.rc == 1 and run.results == [], run
    assert run.lines[0]["errno"] == 1, run          # EPERM, no callback
    if ROOT:    # root's group too
        run = pipe_run(data, "--uid", RUN_UID, "--gid", 0, "--cmd", r,
                       ids=False)
        assert run.rc == 1 and run.lines[0]["errno"] == 1, run
    else:       # not root: only ourselves
        run = pipe_run(data, "--uid", os.geteuid() + 1, "--gid",
                       os.getegid(), "--cmd", r, ids=False)
        assert run.rc == 1 and run.lines[0]["errno"] == 1, run
    assert not os.path.exists(marker)


# ---- robots that misbehave ----

def test_robot_that_never_reads_stdin(d):
    data = write(d, "ten", b"0123456789abcde\n" * (10 * 1024 * 1024 // 16))
    r = robot(d, "noread.sh", "sleep 0.3\nexit $1\n")
    run = pipe_run(data, "--cmd", r + " 0")
    assert run.r["status"] == "ok" and run.r["exit_code"] == 0, run
    run = pipe_run(data, "--cmd", r + " 1")         # EPIPE is not the cause
    assert run.r["status"] == "perm" and run.r["exit_code"] == 1, run


@pytest.mark.parametrize("code,status", [(0, "ok"), (2, "perm")])
def test_robot_flooding_stderr_and_stdout(d, data, code, status):
    small = pipe_run(data, "--cmd", robot(d, "quiet.sh", "exit 0\n"))
    r = robot(d, "flood.sh", "echo 'fatal: the first line' >&2\n"
              "head -c 100000000 /dev/zero >&2\n"
              "head -c 100000000 /dev/zero\nexit %d\n" % code)
    run = pipe_run(data, "--cmd", r)
    assert run.r["status"] == status and run.r["exit_code"] == code, run
    assert run.r["errlen"] == 4096, run
    assert run.err == b"fatal: the first line\n" + b"\0" * (4096 - 22)
    if status == "perm":
        assert run.r["text"] == "5.3.0 robot exited 2: fatal: the first line"
    # 200 MB went through; the tool's memory did not follow
    growth = run.r["maxrss_kb"] - small.r["maxrss_kb"]
    assert growth < 16 * 1024, (growth, run)


def test_daemon_holding_stdout_does_not_hold_the_result(d, data):
    """The robot exits 0, a process it left holds stdout and stderr: OK
    (not a timeout), and the leftover is killed with the process group."""
    r = robot(d, "daemon.sh", "(sleep 300; echo late) &\n"
              "echo \"daemon $!\" >&2\nexit 0\n")
    run = pipe_run(data, "--timeout-ms", 120000, "--cmd", r)
    assert run.r["status"] == "ok" and run.r["exit_code"] == 0, run
    pid = int(run.err.split()[1])
    wait_for(lambda: dead(pid), what="the daemon killed")


def test_nothing_outlives_the_delivery(d, data):
    """A background process that let go of the outputs is killed too."""
    r = robot(d, "bg.sh", "(exec </dev/null >/dev/null 2>&1; sleep 300) &\n"
              "echo \"bg $!\" >&2\nexit 0\n")
    run = pipe_run(data, "--cmd", r)
    assert run.r["status"] == "ok", run
    pid = int(run.err.split()[1])
    wait_for(lambda: dead(pid), what="the background process killed")


def test_timeout_kills_the_process_group(d, data):
    r = robot(d, "hang.sh", "sleep 300 &\necho \"child $! main $$\" >&2\n"
              "sleep 300\n")
    run = pipe_run(data, "--timeout-ms", 1000, "--cmd", r)
    assert run.r["status"] == "temp" and run.r["exit_code"] == -1, run
    assert run.r["text"] == "4.3.0 robot timed out after 1s, killed", run
    words = run.err.split()
    child, main = int(words[1]), int(words[3])
    wait_for(lambda: dead(child) and dead(main), what="the group killed")
    assert not group_alive(main)


def test_shutdown_kills_everything_without_callbacks(d, data):
    pids = os.path.join(d, "pids")
    os.mkdir(pids)
    if ROOT:
        os.chown(pids, RUN_UID, RUN_GID)
    r = robot(d, "wait.sh", "sleep 300 &\necho $! > %s/$$\nsleep 300\n" % pids)
    run = pipe_run(data, "--parallel", 3, "--shutdown-after-ms", 1500,
                   "--cmd", r)
    assert run.rc == 0 and run.results == [], run
    assert run.lines == [{"shutdown": True, "pending": 3}], run
    mains = [int(n) for n in os.listdir(pids)]
    assert len(mains) == 3, mains
    for m in mains:
        with open(os.path.join(pids, str(m))) as f:
            child = int(f.read())
        wait_for(lambda: dead(m) and dead(child), what="robots killed")


def test_command_that_does_not_exist(d, data):
    run = pipe_run(data, "--cmd", "/nonexistent/robot --flag")
    assert run.r["status"] == "perm" and run.r["exit_code"] == 127, run
    assert run.r["text"] == ("5.3.0 cannot run robot /nonexistent/robot: "
                             "No such file or directory"), run
    noexec = write(d, "noexec.sh", "#!/bin/sh\nexit 0\n", 0o644)
    run = pipe_run(data, "--cmd", noexec)
    assert run.r["status"] == "perm", run
    assert run.r["text"].endswith(": Permission denied"), run
    run = pipe_run(data, "--cmd", d)                  # a directory
    assert run.r["status"] == "perm", run


def test_relative_command_is_not_run(d, data):
    marker = os.path.join(d, "ran")
    robot(d, "touch.sh", "touch %s\n" % marker)
    for cmd in ("touch.sh", "./touch.sh", "bin/touch.sh", ""):
        run = pipe_run(data, "--cmd", cmd)
        assert run.r["status"] == "perm" and run.r["exit_code"] == 127, run
        assert run.r["text"].startswith("5.3.0 robot command "), run
    assert "must be an absolute path" in pipe_run(
        data, "--cmd", "touch.sh").r["text"]
    run = pipe_run(data, "--cmd", "/bin/echo 'unbalanced")
    assert run.r["text"] == ("5.3.0 robot command has unbalanced quotes: "
                             "/bin/echo 'unbalanced"), run
    assert not os.path.exists(marker)


def test_shell_metacharacters_are_passed_literally(d, data):
    marker = os.path.join(d, "pwned")
    r = py_robot(d, "argv.py", "sys.stderr.write(json.dumps(sys.argv[1:]))\n")
    cmd = ("%s 'it'\\''s' ';' 'a;b' '$(touch %s)' \"\\`touch %s\\`\" "
           "'%%s%%n' \"line1\nline2\" '*' '~' '$HOME' '|' '&&' 'x > y' "
           "\"tab\there\" back\\ slash" % (r, marker, marker))
    run = pipe_run(data, "--env", "HOME=/tmp", "--cmd", cmd)
    assert run.r["status"] == "ok", run
    assert json.loads(run.err) == [
        "it's", ";", "a;b", "$(touch %s)" % marker, "`touch %s`" % marker,
        "%s%n", "line1\nline2", "*", "~", "$HOME", "|", "&&", "x > y",
        "tab\there", "back slash"], run
    assert not os.path.exists(marker)


def test_twenty_robots_at_once(d):
    body = os.urandom(200 * 1024)
    data = write(d, "rand", body)
    r = py_robot(d, "par.py", "import hashlib, time\n"
                 "b = sys.stdin.buffer.read()\ntime.sleep(0.3)\n"
                 "sys.stderr.write('%d %s' % (os.getpid(), "
                 "hashlib.sha256(b).hexdigest()))\nsys.exit(int(sys.argv[1]) "
                 "if len(sys.argv) > 1 else 0)\n")
    run = pipe_run(data, "--parallel", 20, "--cmd", r)
    assert run.rc == 0 and len(run.results) == 20, run
    assert sorted(x["index"] for x in run.results) == list(range(20))
    want = hashlib.sha256(body).hexdigest()
    pids = set()
    for x in run.results:
        assert x["status"] == "ok", x
        pid, sha = x["err"].split()
        assert sha == want, x
        pids.add(pid)
    assert len(pids) == 20


# ---- mbox ----

FROM_RE = re.compile(rb"^From (\S+) [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d "
                     rb"\d\d:\d\d:\d\d \d{4}$")


def mbox_messages(content):
    """Split an mbox on its From_ lines: [(sender, lines after it)]."""
    out = []
    for line in content.split(b"\n"):
        m = FROM_RE.match(line)
        if m:
            out.append((m.group(1), []))
        else:
            assert out, content[:200]
            out[-1][1].append(line)
    return out


def test_mbox_from_line_prefix_message_and_ending(d, data):
    box = os.path.join(d, "box")
    run = pipe_run(data, "--sender", "a@example.org", "--prefix", PREFIX,
                   "--mbox", box)
    assert run.r["status"] == "ok" and run.r["exit_code"] == 0, run
    assert run.r["text"] == "2.0.0 appended to mbox %s" % box
    content = open(box, "rb").read()
    first, rest = content.split(b"\n", 1)
    assert FROM_RE.match(first), first
    assert first.startswith(b"From a@example.org ")
    quoted = MSG.replace(b"\nFrom the", b"\n>From the")
    assert rest == PREFIX.encode() + quoted + b"\n\n"   # LF added, empty line
    st = os.stat(box)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == RUN_UID and st.st_gid == RUN_GID
    # the null sender, appended after the first message
    run = pipe_run(data, "--sender", "", "--mbox", box)
    assert run.r["status"] == "ok", run
    again = open(box, "rb").read()
    assert again.startswith(content)
    first2 = again[len(content):].split(b"\n", 1)[0]
    assert first2.startswith(b"From MAILER-DAEMON ") and FROM_RE.match(first2)


def test_mbox_from_quoting(d):
    body = (b"From me\n>From you\n>>From them\nFrom\nFromage\n From x\n"
            b"from x\n>From\n>\nF\nFr\nFrom:x\n>>>>From deep\n"
            b"text From inside\nFrom ")
    data = write(d, "q", body)
    box = os.path.join(d, "box")
    run = pipe_run(data, "--mbox", box, "--prefix", "From prefix line\n")
    assert run.r["status"] == "ok", run
    content = open(box, "rb").read()
    assert content.split(b"\n", 1)[1] == (
        b">From prefix line\n>From me\n>>From you\n>>>From them\nFrom\n"
        b"Fromage\n From x\nfrom x\n>From\n>\nF\nFr\nFrom:x\n"
        b">>>>>From deep\ntext From inside\n>From \n\n")


def test_mbox_quoting_across_read_chunks(d):
    """A From line cut by a 64 KB read boundary is still quoted."""
    chunk = 64 * 1024

    def line_at(body, off, text):
        return body + b"f" * (off - len(body) - 1) + b"\n" + text + b"\n"

    body = line_at(b"", chunk - 2, b"From one")           # "Fr|om one"
    body = line_at(body, 2 * chunk - 1, b">>From two")    # ">|>From two"
    body = line_at(body, 3 * chunk - 4, b"From three")    # "From| three"
    body = line_at(body, 4 * chunk - 1, b"From four")     # "F|rom four"
    body = line_at(body, 5 * chunk - 3, b"Fro")           # "Fro|" no match
    data = write(d, "chunks", body)
    box = os.path.join(d, "box")
    run = pipe_run(data, "--mbox", box)
    assert run.r["status"] == "ok", run
    content = open(box, "rb").read().split(b"\n", 1)[1]
    want = (body.replace(b"\nFrom ", b"\n>From ")
            .replace(b"\n>>From two", b"\n>>>From two"))
    assert want.count(b">From ") == 4
    assert content == want + b"\n"


def test_mbox_concurrent_appends_do_not_interleave(d):
    lines = [b"message line %06d" % i for i in range(200000)]
    body = b"\n".join(lines) + b"\n"
    data = write(d, "big", body)
    box = os.path.join(d, "box")
    run = pipe_run(data, "--parallel", 4, "--sender", "s@x", "--mbox", box)
    assert [x["status"] for x in run.results] == ["ok"] * 4, run
    msgs = mbox_messages(open(box, "rb").read())
    assert len(msgs) == 4
    for sender, got in msgs:
        assert sender == b"s@x"
        assert got == lines + [b"", b""] or got == lines + [b""], got[-3:]


def test_mbox_symlink_refused(d, data):
    target = write(d, "target", b"precious\n", 0o666)
    link = os.path.join(d, "link")
    os.symlink(target, link)
    run = pipe_run(data, "--mbox", link)
    assert run.r["status"] == "perm", run
    assert run.r["text"] == "5.2.0 mbox %s: is a symbolic link" % link, run
    assert open(target, "rb").read() == b"precious\n"
    # a dangling one is not followed to create its target either
    dangling = os.path.join(d, "dangling")
    os.symlink(os.path.join(d, "created"), dangling)
    run = pipe_run(data, "--mbox", dangling)
    assert run.r["status"] == "perm", run
    assert not os.path.exists(os.path.join(d, "created"))


def test_mbox_not_a_regular_file_refused(d, data):
    sub = os.path.join(d, "sub")
    os.mkdir(sub)
    run = pipe_run(data, "--mbox", sub)
    assert run.r["status"] == "perm", run
    assert run.r["text"] == "5.2.0 mbox %s: not a regular file" % sub, run
    fifo = os.path.join(d, "fifo")
    os.mkfifo(fifo)
    os.chmod(fifo, 0o666)
    if ROOT:
        os.chown(fifo, RUN_UID, RUN_GID)
    run = pipe_run(data, "--mbox", fifo, timeout=60)    # does not hang
    assert run.r["status"] == "perm", run
    assert "not a regular file" in run.r["text"], run


def test_mbox_hard_link_refused(d, data):
    box = write(d, "box", b"", 0o666)
    os.link(box, os.path.join(d, "other"))
    run = pipe_run(data, "--mbox", box)
    assert run.r["status"] == "perm", run
    assert "hard link" in run.r["text"], run
    assert os.path.getsize(box) == 0


def test_mbox_relative_path_refused(d, data):
    run = pipe_run(data, "--mbox", "box")
    assert run.r["status"] == "perm", run
    assert run.r["text"].startswith("5.3.0 mbox path must be absolute"), run


@pytest.mark.skipif(not ROOT, reason="needs root")
def test_mbox_written_as_the_user(d, data):
    """A directory the user cannot write: refused (EACCES), as the user."""
    locked = tempfile.mkdtemp(prefix="sluice-pipe-root-")
    try:
        os.chmod(locked, 0o755)
        run = pipe_run(data, "--mbox", os.path.join(locked, "box"))
        assert run.r["status"] == "perm", run
        assert run.r["text"].endswith(": Permission denied"), run
        assert os.listdir(locked) == []
    finally:
        shutil.rmtree(locked)


def test_mbox_lock_timeout_is_temporary(d, data):
    box = write(d, "box", b"", 0o600)
    if ROOT:
        os.chown(box, RUN_UID, RUN_GID)
    with open(box, "ab") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        run = pipe_run(data, "--timeout-ms", 1000, "--mbox", box)
        assert run.r["status"] == "temp" and run.r["exit_code"] == 75, run
        assert run.r["text"].startswith("4.2.0 mbox %s: locked by another "
                                        "process" % box), run
        assert os.path.getsize(box) == 0
    run = pipe_run(data, "--timeout-ms", 1000, "--mbox", box)
    assert run.r["status"] == "ok", run


@pytest.fixture
def tiny_fs(d):
    mnt = os.path.join(d, "tiny")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0777",
                        "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s): needs root"
                    % r.stderr.strip())
    yield mnt
    subprocess.run(["umount", "-l", mnt])


def test_mbox_full_disk_leaves_the_mbox_as_it_was(d, tiny_fs):
    box = os.path.join(tiny_fs, "box")
    small = write(d, "small", b"Subject: one\n\nfits\n")
    assert pipe_run(small, "--mbox", box).r["status"] == "ok"
    before = open(box, "rb").read()
    big = write(d, "big", (b"y" * 79 + b"\n") * (2 * 1024 * 1024 // 80))
    run = pipe_run(big, "--mbox", box)
    assert run.r["status"] == "temp" and run.r["exit_code"] == 75, run
    assert run.r["text"] == ("4.3.1 mbox %s: write: No space left on device"
                             % box), run
    assert open(box, "rb").read() == before
    assert pipe_run(small, "--mbox", box).r["status"] == "ok"
    assert len(mbox_messages(open(box, "rb").read())) == 2
