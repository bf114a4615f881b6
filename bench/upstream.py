"""The benchmark's upstream: a fast fake of OpenAI's streaming chat API that stamps every piece with its send time.

tests/fake_upstream.py is a thread per request, which is right for tests and far too slow for 1,000
streams of 50 pieces a second. This one is one asyncio (uvloop) event loop in its own process, on the
load generator's core. Every piece it writes is `<index>@<microseconds> ` (CLOCK_MONOTONIC, the same clock
in every process of the machine), so a client can tell, for each piece, how long after the upstream sent
it the piece arrived: the text lag, whatever the relay in between merged.

The request's last user message says what to send: `{"bench": {"chunks": 100, "delay": 0.02}}`. Paced
streams are written by one ticker every millisecond, each stream at its own phase, so a thousand streams
cost a thousand wake-ups a second, not fifty thousand. `delay: 0` writes a stream as fast as the client
reads it. Connections closed by the client before the end are counted (`aborted`), for the cancel storm.

    python -m bench.upstream --port 9100   # prints "ready <port>", then serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field

_HEAD_END = b"\r\n\r\n"
_TICK = 0.001


def stamp_us() -> int:
    return time.monotonic_ns() // 1000


def piece(index: int) -> bytes:
    """One SSE event carrying piece `index`, stamped now."""
    content = f"{index}@{stamp_us()} "
    return (b'data: {"choices":[{"index":0,"delta":{"content":"' + content.encode()
            + b'"},"finish_reason":null}]}\n\n')


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_FINISH = (b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
           b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n'
           b"data: [DONE]\n\n")
_HEADERS = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


@dataclass
class Counters:
    started: int = 0
    completed: int = 0
    aborted: int = 0


@dataclass
class PacedStream:
    protocol: StreamProtocol
    chunks: int
    every: int  # milliseconds between pieces
    sent: int = 0


@dataclass
class Ticker:
    """Writes the next piece of every paced stream whose turn it is, once a millisecond."""

    streams: dict[int, list[PacedStream]] = field(default_factory=dict)  # by the tick they are due at
    start: float = field(default_factory=time.monotonic)

    @property
    def now(self) -> int:
        return int((time.monotonic() - self.start) / _TICK)

    def add(self, stream: PacedStream) -> None:
        self.streams.setdefault(self.now + stream.every, []).append(stream)

    async def run(self) -> None:
        tick = self.now
        while True:
            tick += 1
            delay = self.start + tick * _TICK - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                tick = self.now  # fell behind: do every due tick at once
            for due in sorted(t for t in self.streams if t <= tick):
                for stream in self.streams.pop(due):
                    if stream.protocol.closed:
                        continue
                    stream.protocol.write_piece(stream.sent)
                    stream.sent += 1
                    if stream.sent >= stream.chunks:
                        stream.protocol.finish()
                    else:
                        self.streams.setdefault(due + stream.every, []).append(stream)


class StreamProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: requests in, SSE out. Keep-alive, as the openai client pools connections."""

    def __init__(self, counters: Counters, ticker: Ticker) -> None:
        self.counters = counters
        self.ticker = ticker
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.streaming = False
        self._can_write = asyncio.Event()
        self._can_write.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._can_write.set()
        if self.streaming:
            self.counters.aborted += 1
            self.streaming = False

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(_HEAD_END)
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body, self.buffer = self.buffer[end + 4:end + 4 + length], self.buffer[end + 4 + length:]
            self.request(head.split(" ", 2)[1], body)

    def request(self, path: str, body: bytes) -> None:
        if not path.endswith("/chat/completions"):
            self._reply(404, b'{"error":{"message":"no such path","type":"invalid_request_error"}}')
            return
        try:
            messages = json.loads(body)["messages"]
            ctl = json.loads([m for m in messages if m["role"] == "user"][-1]["content"])["bench"]
        except (ValueError, KeyError, IndexError, TypeError):
            ctl = {"chunks": 5, "delay": 0}
        assert self.transport is not None
        self.transport.write(_HEADERS)
        self.streaming = True
        self.counters.started += 1
        chunks, delay = int(ctl.get("chunks", 5)), float(ctl.get("delay", 0))
        if delay > 0:
            every = max(1, round(delay / _TICK))
            self.ticker.add(PacedStream(self, chunks, every))
        else:
            asyncio.get_running_loop().create_task(self._flood(chunks))

    async def _flood(self, chunks: int) -> None:
        """As fast as the client reads: pieces in batches, waiting whenever the socket's buffer is full."""
        sent = 0
        while sent < chunks and not self.closed:
            batch = min(64, chunks - sent)
            self.transport.write(b"".join(chunked(piece(sent + i)) for i in range(batch)))  # type: ignore[union-attr]
            sent += batch
            await self._can_write.wait()
            await asyncio.sleep(0)
        if not self.closed:
            self.finish()

    def write_piece(self, index: int) -> None:
        self.transport.write(chunked(piece(index)))  # type: ignore[union-attr]

    def finish(self) -> None:
        self.transport.write(chunked(_FINISH) + b"0\r\n\r\n")  # type: ignore[union-attr]
        self.streaming = False
        self.counters.completed += 1

    def _reply(self, status: int, body: bytes) -> None:
        head = b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (status, len(body))
        self.transport.write(head + body)  # type: ignore[union-attr]


async def serve(port: int) -> None:
    counters, ticker = Counters(), Ticker()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: StreamProtocol(counters, ticker), "127.0.0.1", port, backlog=4096)
    ticking = loop.create_task(ticker.run())
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # Counters for the orchestrator: one line of JSON per line it sends on stdin.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def answer() -> None:
        while await reader.readline():
            cpu = os.times()
            print(json.dumps({**counters.__dict__, "cpu_s": cpu.user + cpu.system}), flush=True)

    answering = loop.create_task(answer())
    await stop.wait()
    ticking.cancel()
    answering.cancel()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
