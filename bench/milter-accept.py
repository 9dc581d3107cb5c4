#!/usr/bin/env python3
"""milter-accept.py [-p PORT] [-a ADDR] - a milter that accepts everything,
as fast as it can: `make bench` measures sluice's milter client with it,
without the cost of a real filter (bench/run.sh, docs/BENCHMARKS.md).

Milter protocol version 6 over TCP, asyncio, one coroutine per connection.
A packet is a 4-byte big-endian length, then a command byte and its data.
OPTNEG is answered with version 6, no actions and no protocol flags, so
the client sends every step and waits for each answer: CONNECT, HELO,
MAIL, RCPT, DATA, each header, EOH and each body chunk get 'c'
(continue), the end of the body 'a' (accept). Macros (D) and abort (A)
get no answer (the protocol has none for them); QUIT (Q) closes, QUIT_NC
(K) keeps the connection for the next one. Test tooling: it reads nothing
it does not need, logs nothing, and stops on SIGTERM or SIGINT.

With --no-reply it asks, as rspamd's milter proxy does, for no answer to
any step but the end of the body (SMFIP_NR_CONN, _HELO, _MAIL, _RCPT,
_DATA, _UNKN, _EOH, _BODY and SMFIP_NOHREPL): the client then sends the
whole message without waiting, and only 'a' comes back.
"""
import argparse
import asyncio
import signal
import struct

CONTINUE = struct.pack(">Ic", 1, b"c")
ACCEPT = struct.pack(">Ic", 1, b"a")
NR_ALL = 0x80 | 0x1000 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000 | \
    0x40000 | 0x80000
MAX_PACKET = 1 << 20        # a larger length is garbage: hang up
NO_REPLY = (b"D", b"A", b"K")


def optneg(protocol):
    return struct.pack(">Ic", 13, b"O") + struct.pack(">III", 6, 0, protocol)


async def session(reader, writer, protocol):
    quiet = protocol != 0
    try:
        while True:
            n = struct.unpack(">I", await reader.readexactly(4))[0]
            if n < 1 or n > MAX_PACKET:
                break
            cmd = (await reader.readexactly(n))[:1]
            if cmd in NO_REPLY:
                continue
            if cmd == b"Q":
                break
            if cmd == b"O":
                writer.write(optneg(protocol))
            elif cmd == b"E":
                writer.write(ACCEPT)
            elif not quiet:
                writer.write(CONTINUE)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-a", "--addr", default="127.0.0.1")
    ap.add_argument("-p", "--port", type=int, default=11340)
    ap.add_argument("--no-reply", action="store_true",
                    help="answer the end of the body only, like rspamd")
    a = ap.parse_args()
    protocol = NR_ALL if a.no_reply else 0
    server = await asyncio.start_server(
        lambda r, w: session(r, w, protocol), a.addr, a.port,
        reuse_address=True, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
