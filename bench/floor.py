"""The floor under the relay's cost per event: what gevent alone costs to wake green threads for one message.

    .venv/bin/python -m bench.floor

A gevent echo server, pinned to the server core, moves each message from a socket back to the same socket in
one of two shapes, fed by paced asyncio clients on the other core (one message per wake-up, as in the paced
load of bench.run: --conns connections, a message every --delay s each):

- `direct`: one green thread per connection calls `recv`, then `sendall`. The least a gevent server can do.
- `three hops`: the relay's shape. A reader green thread puts each message in a queue, a second one moves it to
  another queue, and a writer green thread sends it: the upstream's producer, the stream's log reader, and
  engine.io's websocket writer.

It prints the server's CPU per message for each, beside a plain Python function call for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import timeit

SERVER_CORE, LOAD_CORE = 0, 1


def serve(shape: str) -> None:
    """The echo server (a child process): prints its port, then its CPU seconds whenever a line comes on stdin."""
    from gevent import monkey

    monkey.patch_all()
    import resource

    import gevent
    from gevent.queue import Queue

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)

    def direct(conn: socket.socket) -> None:
        while data := conn.recv(4096):
            conn.sendall(data)

    def three_hops(conn: socket.socket) -> None:
        inbox: Queue = Queue()
        outbox: Queue = Queue()

        def middle() -> None:
            while (data := inbox.get()) is not None:
                outbox.put(data)
            outbox.put(None)

        def writer() -> None:
            while (data := outbox.get()) is not None:
                conn.sendall(data)

        gevent.spawn(middle)
        gevent.spawn(writer)
        while data := conn.recv(4096):
            inbox.put(data)
        inbox.put(None)

    handle = direct if shape == "direct" else three_hops

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            gevent.spawn(handle, conn)

    def report() -> None:
        from gevent.os import make_nonblocking, nb_read

        make_nonblocking(sys.stdin.fileno())
        while nb_read(sys.stdin.fileno(), 64):
            usage = resource.getrusage(resource.RUSAGE_SELF)
            print(usage.ru_utime + usage.ru_stime, flush=True)

    gevent.spawn(accept)
    print(listener.getsockname()[1], flush=True)
    report()


async def feed(port: int, conns: int, delay: float, seconds: float) -> int:
    """Paced clients: each sends a 64-byte message every `delay` s and reads its echo. Returns the messages echoed."""
    echoed = 0
    message = b"x" * 64

    async def client(offset: float) -> None:
        nonlocal echoed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.sleep(offset)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            writer.write(message)
            await reader.readexactly(len(message))
            echoed += 1
            await asyncio.sleep(delay)
        writer.close()

    await asyncio.gather(*(client(delay * i / conns) for i in range(conns)))
    return echoed


def measure(shape: str, args: argparse.Namespace) -> float:
    """Server CPU µs per message for one shape."""
    command = ["taskset", "-c", str(SERVER_CORE), sys.executable, "-m", "bench.floor", "--serve", shape]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]

        def cpu() -> float:
            server.stdin.write("?\n")  # type: ignore[union-attr]
            server.stdin.flush()  # type: ignore[union-attr]
            return float(server.stdout.readline())  # type: ignore[union-attr]

        asyncio.run(feed(port, 20, args.delay, 1.0))  # warm-up
        before = cpu()
        echoed = asyncio.run(feed(port, args.conns, args.delay, args.seconds))
        return 1e6 * (cpu() - before) / max(1, echoed)
    finally:
        server.kill()
        server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conns", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    os.sched_setaffinity(0, {LOAD_CORE})
    call = min(timeit.repeat("f()", "def f(): pass", number=1_000_000, repeat=5))
    print(f"{args.conns} connections, one 64-byte message every {args.delay * 1000:.0f} ms each "
          f"({args.conns / args.delay:.0f} messages/s), server on core {SERVER_CORE}:")
    for shape in ("direct", "three hops"):
        print(f"  {shape:>10}: {measure(shape, args):6.1f} us of server CPU per message", flush=True)
    print(f"  a plain Python function call: {call * 1000:.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
