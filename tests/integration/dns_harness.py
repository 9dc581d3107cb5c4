"""Our own DNS for tests: a dnsmasq on a random loopback port serving only
records the test gives it, plus a stub server that answers every query with
a fixed error code (SERVFAIL, REFUSED) or never answers (timeouts).

Nothing is forwarded off the machine: dnsmasq runs with --no-resolv and no
--server except to loopback stubs; names under the `local` domains (default
"test") are answered from the records or with NXDOMAIN, anything else is
REFUSED.

    with DNSMasq(["--mx-host=example.test,mx1.example.test,10",
                  "--host-record=mx1.example.test,127.0.0.2"]) as dns:
        conf = "resolver %s\n" % dns.server      # "127.0.0.1:PORT"

Note: dnsmasq runs with --keep-in-foreground, not --no-daemon: the latter
is its debug mode, which serves a TCP connection inline and answers no UDP
until that connection closes (an MX answer too big for UDP would then stall
every other query).
"""
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

from sluice_harness import REPO, BUILD, WAIT, wait_for  # noqa: F401

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
DNS_MX_TOOL = os.path.join(BUILD, "tests", "tools", "dns-mx")

RCODE_NOERROR, RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_REFUSED = 0, 2, 3, 5
T_A, T_MX, T_AAAA = 1, 15, 28


def free_udp_tcp_port(host="127.0.0.1"):
    """A port free for both UDP and TCP on host (dnsmasq needs both)."""
    for _ in range(100):
        with socket.socket() as t:
            t.bind((host, 0))
            port = t.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                    u.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def build_query(name, qtype, qid=0x1234):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", qtype, 1)


def query(port, name, qtype=T_A, timeout=1.0, host="127.0.0.1"):
    """One UDP query; returns (rcode, answer count) or None on timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(build_query(name, qtype), (host, port))
        try:
            data = s.recv(65535)
        except socket.timeout:
            return None
    flags, ancount = struct.unpack(">H", data[2:4])[0], struct.unpack(">H", data[6:8])[0]
    return flags & 0xF, ancount


class DNSMasq:
    def __init__(self, records=(), local=("test",), extra=(), host="127.0.0.1"):
        self.host = host            # the loopback address it listens on
        self.records = list(records)
        self.local = list(local)
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="sluice-dns-", dir="/tmp")
        self.logfile = os.path.join(self.dir, "dnsmasq.log")
        self.proc = None
        self.port = None

    @property
    def server(self):
        return "%s:%d" % (self.host, self.port)

    def argv(self):
        a = [DNSMASQ, "--keep-in-foreground", "--log-facility=-", "--log-queries",
             "--port=%d" % self.port, "--listen-address=%s" % self.host,
             "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll",
             "--conf-file=/dev/null", "--pid-file", "--cache-size=0"]
        if os.geteuid() == 0:
            a.append("--user=root")
        a += ["--local=/%s/" % d for d in self.local]
        return a + self.extra + self.records

    def start(self):
        for _ in range(5):   # a port may be taken between choosing and binding
            self.port = free_udp_tcp_port(self.host)
            log = open(self.logfile, "ab")
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
            log.close()
            try:
                wait_for(lambda: self.proc.poll() is not None or
                         query(self.port, "ready.probe.invalid", timeout=0.2,
                               host=self.host),
                         what="dnsmasq to answer")
            except AssertionError:
                self.stop()
                raise
            if self.proc.poll() is None:
                return self
        raise AssertionError("dnsmasq did not start:\n" + self.log())

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


class StubDNS:
    """A UDP 'server' on 127.0.0.1 that answers every query with `rcode`
    (no records), or with nothing at all when rcode is None."""

    def __init__(self, rcode=RCODE_SERVFAIL):
        self.rcode = rcode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.queries = []           # (name, qtype) seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    @staticmethod
    def _question(data):
        i, labels = 12, []
        while i < len(data) and data[i] != 0:
            n = data[i]
            labels.append(data[i + 1:i + 1 + n].decode(errors="replace"))
            i += 1 + n
        qtype = struct.unpack(">H", data[i + 1:i + 3])[0] if i + 3 <= len(data) else 0
        return ".".join(labels), qtype, i + 5

    def _run(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            name, qtype, end = self._question(data)
            self.queries.append((name, qtype))
            if self.rcode is None:
                continue
            flags = 0x8000 | (struct.unpack(">H", data[2:4])[0] & 0x0100) | 0x0080 | self.rcode
            reply = data[:2] + struct.pack(">HHHHH", flags, 1, 0, 0, 0) + data[12:end]
            self.sock.sendto(reply, peer)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def dns_mx(server, *domains, seed=None, timeout_ms=None, tries=None,
           prefer_ipv4=False, selfs=(), cancel=False, cancel_after_ms=None):
    """Run tests/tools/dns-mx; returns (exit code, [result dict per domain]).

    A result: {"domain", "status", "error", "records", "skipped", "tempfail",
    "implicit", "hosts": [(pref, name, address), ...]}."""
    argv = [DNS_MX_TOOL]
    if server:
        argv += ["--server", server]
    if seed is not None:
        argv += ["--seed", str(seed)]
    if timeout_ms is not None:
        argv += ["--timeout", str(timeout_ms)]
    if tries is not None:
        argv += ["--tries", str(tries)]
    if prefer_ipv4:
        argv.append("--prefer-ipv4")
    for s in selfs:
        argv += ["--self", s]
    if cancel:
        argv.append("--cancel")
    if cancel_after_ms is not None:
        argv += ["--cancel-after", str(cancel_after_ms)]
    r = subprocess.run(argv + list(domains), capture_output=True, text=True,
                       timeout=WAIT)
    if r.returncode not in (0, 1):   # 2: usage/setup/callback count; else a sanitizer
        raise AssertionError("dns-mx failed (%d): %s" % (r.returncode, r.stderr))
    results, cur = [], None
    for line in r.stdout.splitlines():
        key, _, rest = line.partition(" ")
        if key == "domain":
            cur = {"domain": rest, "error": None, "hosts": []}
        elif key == "status":
            cur["status"] = rest
        elif key == "error":
            cur["error"] = rest
        elif key == "records":
            f = line.split()
            cur.update(records=int(f[1]), skipped=int(f[3]),
                       tempfail=int(f[5]), implicit=int(f[7]))
        elif key == "end":
            results.append(cur)
        else:
            pref, name, addr = line.split()
            cur["hosts"].append((int(pref), name, addr))
    assert len(results) == len(domains), r.stdout + r.stderr
    return r.returncode, results
