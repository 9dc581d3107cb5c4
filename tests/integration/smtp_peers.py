"""Downstream SMTP peers for the tests of outbound mail: an aiosmtpd
handler that records what it gets, raw-socket servers that misbehave on
purpose (faults, exact wire bytes), and a way to find one port free on
several loopback addresses (sluice sends to every MX on one port,
`smtp-out-port`).

    srv = RawServer(lambda srv, c, n: c.send("421 4.3.2 busy"),
                    host="127.0.0.41", port=port)
"""
import socket
import threading

from sluice_harness import free_port


def common_port(*hosts):
    """A port free on every one of the given loopback addresses."""
    for _ in range(50):
        p = free_port()
        try:
            for h in hosts:
                with socket.socket() as s:
                    s.bind((h, p))
            return p
        except OSError:
            continue
    raise AssertionError("no common free port")


class Recorder:
    """aiosmtpd handler: keeps what it receives; `replies` maps a recipient
    to the RCPT reply to give instead of 250 (change it between attempts
    to let a deferred recipient through)."""

    def __init__(self, replies=None):
        self.messages = []
        self.replies = replies if replies is not None else {}
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.content))
        return "250 2.0.0 stored"


class Conn:
    """A server-side connection with its own line buffer, so the tests
    can see whether the client sent more than one command ahead."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.reads = []

    def recv(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError
        self.reads.append(d)
        self.buf += d

    def line(self):
        while b"\n" not in self.buf:
            self.recv()
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def send(self, s):
        self.sock.sendall(s.encode() + b"\r\n" if isinstance(s, str) else s)

    def data(self):
        """Raw bytes up to and including CRLF.CRLF."""
        while b"\r\n.\r\n" not in self.buf and not self.buf.startswith(b".\r\n"):
            self.recv()
        i = 3 if self.buf.startswith(b".\r\n") else self.buf.index(b"\r\n.\r\n") + 5
        d, self.buf = self.buf[:i], self.buf[i:]
        return d


class RawServer:
    """Accepts connections one after the other on host:port (port 0: any);
    each is handed to script(server, conn, index). Exceptions from the
    client going away are fine; others are kept in `errors`."""

    def __init__(self, script, host="127.0.0.1", port=0):
        self.script = script
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        self.record = {}
        self.errors = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            self.conns += 1
            c = Conn(s)
            try:
                self.script(self, c, self.conns)
            except (EOFError, OSError):
                pass
            except Exception as e:  # an assertion in a script
                self.errors.append(repr(e))
            finally:
                s.close()

    def close(self):
        # shutdown wakes the thread blocked in accept(); close alone may not
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def mini_smtp(srv, c, ext=(), pipelining=False, greet=True):
    """A small but real SMTP server: records the raw DATA bytes (in
    srv.record["data"]) and whether the client ever sent ahead of a reply."""
    if greet:
        c.send("220 raw.test ESMTP")
    while True:
        line = c.line()
        verb = line[:4].upper()
        if not pipelining and c.buf:
            srv.record["sent_ahead"] = True
        if verb == "EHLO":
            caps = list(ext) + (["PIPELINING"] if pipelining else [])
            lines = ["raw.test"] + caps
            for i, l in enumerate(lines):
                c.send("250%s%s" % ("-" if i < len(lines) - 1 else " ", l))
        elif verb == "MAIL" and pipelining:
            # answer nothing until DATA is in: only a pipelining client
            # gets through, a lock-step one would wait for this reply
            cmds = [line]
            while not cmds[-1].upper().startswith("DATA"):
                cmds.append(c.line())
            srv.record.setdefault("batches", []).append(cmds)
            for cmd in cmds[:-1]:
                c.send("250 2.1.0 Ok")
            c.send("354 go ahead")
            srv.record.setdefault("data", []).append(c.data())
            c.send("250 2.0.0 Ok")
        elif verb in ("MAIL", "RCPT", "RSET", "NOOP", "HELO"):
            srv.record.setdefault("cmds", []).append(line)
            c.send("250 2.0.0 Ok")
        elif verb == "DATA":
            c.send("354 go ahead")
            srv.record.setdefault("data", []).append(c.data())
            c.send("250 2.0.0 Ok")
        elif verb == "QUIT":
            c.send("221 2.0.0 Bye")
            return
        else:
            c.send("502 5.5.1 no")


def until_data(c):
    """Serve a client up to its DATA (250 to every command, 354 to DATA)
    and read the first piece of the body; the caller decides what then
    (stall, close)."""
    c.send("220 raw.test ESMTP")
    while True:
        line = c.line().upper()
        if line.startswith("EHLO"):
            c.send("250 raw.test")
        elif line.startswith("DATA"):
            c.send("354 go ahead")
            c.recv()
            return
        else:
            c.send("250 2.0.0 Ok")


class Auth:
    """aiosmtpd authenticator with one account; `calls` lists the SASL
    mechanisms the client used."""

    def __init__(self, user=b"relayuser", password=b"s3cret pass"):
        self.calls = []
        self.user, self.password = user, password

    def __call__(self, server, session, envelope, mechanism, data):
        from aiosmtpd.smtp import AuthResult
        self.calls.append(mechanism)
        ok = data.login == self.user and data.password == self.password
        return AuthResult(success=ok, handled=False)


def starttls_then_garbage(srv, c, n):
    """Offers STARTTLS and breaks the handshake; a connection that does
    not ask for TLS gets ordinary service (mini_smtp)."""
    c.send("220 raw.test ESMTP")
    line = c.line()
    c.send("250-raw.test")
    c.send("250 STARTTLS")
    line = c.line()
    if line.upper() == "STARTTLS":
        srv.record["starttls"] = srv.record.get("starttls", 0) + 1
        c.send("220 2.0.0 Ready to start TLS")
        c.recv()                        # the ClientHello
        c.send(b"this is not TLS at all\r\n" * 4)
        return
    c.buf = line.encode() + b"\r\n" + c.buf
    mini_smtp(srv, c, greet=False)
