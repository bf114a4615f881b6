"""The load generator: one process of many concurrent streams on one asyncio (uvloop) loop, started by bench/run.py.

A black box to the servers: it speaks their wire protocols with lean clients, so that the load side, which
shares one core with the upstream, stays far from saturated and what is measured is the server.

- `sio`: Socket.IO over a websocket (Engine.IO v4), one connection per stream, as a browser tab has. The
  protocol is the one docs/protocol.md gives: `42["chatgpt_description",...]` out, chunk events in.
- `http`: `POST /message/stream`, read line by line as it arrives: NDJSON from the relay, the seed's text lines.
- `direct`: the control. The same request straight to the upstream, read as server-sent events.

Every piece of text carries the upstream's send stamp (bench/upstream.py), so each record holds, for every
piece, when it was sent and when the event holding it arrived (time.monotonic(), the same clock in every
process). Each stream starts at its own offset from a common t0, so N streams start spread over a ramp.

A job's `stop_after` makes a cancel storm: stop once that many pieces arrived, over Socket.IO with the stop
event, over the relay's HTTP with `POST /message/stream/<id>/stop` and its resume token (a hang-up alone would
keep the upstream for RESUME_GRACE, so that the client can resume), and by closing the response elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

REQUEST = "chatgpt_description"
STOP = "chatgpt_description_stop"
CHUNK = "chatgpt_description_chunk"
DONE = "chatgpt_description_done"
ERROR = "chatgpt_description_error"
_LAG_TICK = 0.005
_CONNECT_CONCURRENCY = 50


@dataclass
class Job:
    stream_id: str
    prompt: str
    offset: float = 0.0  # seconds after t0 at which this stream starts
    stop_after: int | None = None  # pieces; then stop (the relay) or hang up (the seed, direct)


@dataclass
class Record:
    """What one stream saw. pieces: (event number, piece index, sent at); events: arrival time of each event."""

    stream_id: str
    emit: float | None = None
    events: list[float] = field(default_factory=list)
    pieces: list[tuple[int, int, float]] = field(default_factory=list)
    done: float | None = None
    finish: str | None = None
    error: str | None = None
    stopped_at: float | None = None

    def add_text(self, arrival: float, text: str) -> None:
        number = len(self.events)
        self.events.append(arrival)
        for token in text.split():
            index, _, sent_us = token.partition("@")
            self.pieces.append((number, int(index), int(sent_us) / 1e6))

    def end(self, why: str | None = None, finish: str | None = None) -> None:
        if self.done is None and self.error is None:
            if why is None:
                self.done, self.finish = time.monotonic(), finish
            else:
                self.error = why


def worker_main(conn: Any, kind: str, target: dict[str, Any], jobs: list[Job], timeout: float) -> None:
    """Process entry point. Sends ("ready", n), waits for ("go", t0), runs the streams, sends ("result",
    records, stats)."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(_worker(conn, kind, target, jobs, timeout))
    except Exception as err:  # tell the orchestrator instead of leaving it waiting
        conn.send(("failed", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


async def _worker(conn: Any, kind: str, target: dict[str, Any], jobs: list[Job], timeout: float) -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=False),
                                    timeout=aiohttp.ClientTimeout(total=None))
    records = [Record(job.stream_id) for job in jobs]
    try:
        if kind == "sio":
            clients = [SioStream(session, target, job, rec) for job, rec in zip(jobs, records, strict=True)]
            gate = asyncio.Semaphore(_CONNECT_CONCURRENCY)

            async def connect(client: SioStream) -> None:
                async with gate:
                    await client.connect()

            await asyncio.gather(*(connect(c) for c in clients))
        elif kind == "http":
            clients = [HttpStream(session, target, job, rec) for job, rec in zip(jobs, records, strict=True)]
        else:
            clients = [DirectStream(session, target, job, rec) for job, rec in zip(jobs, records, strict=True)]
        conn.send(("ready", sum(1 for r in records if r.error is None)))
        message = await loop.run_in_executor(None, conn.recv)
        t0 = message[1]
        lags: list[float] = []
        monitor = asyncio.ensure_future(_watch_loop(lags))
        cpu0, wall0 = _cpu_seconds(), time.monotonic()
        tasks = [asyncio.ensure_future(c.run(t0)) for c in clients if c.rec.error is None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout)
        for rec in records:
            rec.end(f"timeout after {timeout:.0f} s")
        cpu1, wall1 = _cpu_seconds(), time.monotonic()
        monitor.cancel()
        for task in tasks:
            task.cancel()
        lags.sort()
        stats = {"cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0,
                 "loop_lag_p99_ms": 1000 * lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else None}
        conn.send(("result", [r.__dict__ for r in records], stats))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.close() for c in clients), return_exceptions=True), 10)
    finally:
        await session.close()


async def _watch_loop(lags: list[float]) -> None:
    """How late the event loop wakes from a short sleep: an upper bound on how late a stamp was taken."""
    while True:
        before = time.monotonic()
        await asyncio.sleep(_LAG_TICK)
        lags.append(max(0.0, time.monotonic() - before - _LAG_TICK))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _start_at(t0: float, job: Job) -> None:
    await asyncio.sleep(max(0.0, t0 + job.offset - time.monotonic()))


class SioStream:
    """One Socket.IO connection (websocket only) with one stream, speaking the protocol by hand."""

    def __init__(self, session: Any, target: dict[str, Any], job: Job, rec: Record) -> None:
        self.session, self.target, self.job, self.rec = session, target, job, rec
        self.ws: Any = None
        self._ended = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        url = self.target["url"].replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        try:
            self.ws = await self.session.ws_connect(url, compress=15 if self.target.get("compress") else 0,
                                                    max_msg_size=0, autoping=True)
            opened = await self.ws.receive_str()
            assert opened.startswith("0"), opened
            await self.ws.send_str("40")
            joined = await self.ws.receive_str()
            if not joined.startswith("40"):
                raise RuntimeError(f"refused: {joined[:200]}")
        except Exception as err:
            self.rec.error = f"connect failed: {type(err).__name__}: {err}"
            return
        self._reader = asyncio.ensure_future(self._read())

    async def run(self, t0: float) -> None:
        await _start_at(t0, self.job)
        self.rec.emit = time.monotonic()
        payload = {"prompt": self.job.prompt, "stream_id": self.job.stream_id}
        await self.ws.send_str("420" + orjson.dumps([REQUEST, payload]).decode())
        await self._ended.wait()

    async def _read(self) -> None:
        rec, stop_after = self.rec, self.job.stop_after
        try:
            async for message in self.ws:
                data = message.data
                if not isinstance(data, str):
                    continue
                if data == "2":
                    await self.ws.send_str("3")
                    continue
                if not data.startswith("42"):
                    if data.startswith("43") and '"error"' in data:
                        rec.end(f"refused: {data[:200]}")
                        self._ended.set()
                    continue
                arrival = time.monotonic()
                event = orjson.loads(data[2:])
                if event[0] == CHUNK:
                    rec.add_text(arrival, event[1])
                    if stop_after is not None and rec.stopped_at is None and len(rec.pieces) >= stop_after:
                        rec.stopped_at = time.monotonic()
                        stop = {"stream_id": self.job.stream_id}
                        await self.ws.send_str("421" + orjson.dumps([STOP, stop]).decode())
                elif event[0] == DONE:
                    rec.end(finish=event[1].get("finish_reason"))
                    self._ended.set()
                elif event[0] == ERROR:
                    rec.end(f"error event: {event[1].get('code')}")
                    self._ended.set()
        except Exception as err:
            rec.end(f"{type(err).__name__}: {err}")
        rec.end("disconnected before the end")
        self._ended.set()

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()


class HttpStream:
    """`POST /message/stream`, read line by line: NDJSON (the relay) or the seed's plain text lines."""

    def __init__(self, session: Any, target: dict[str, Any], job: Job, rec: Record) -> None:
        self.session, self.target, self.job, self.rec = session, target, job, rec

    async def run(self, t0: float) -> None:
        rec, ndjson = self.rec, self.target.get("format", "ndjson") == "ndjson"
        await _start_at(t0, self.job)
        rec.emit = time.monotonic()
        headers = {"Accept": "application/x-ndjson" if ndjson else "text/plain"}
        try:
            async with self.session.post(self.target["url"] + "/message/stream", headers=headers,
                                         json={"prompt": self.job.prompt, "stream_id": self.job.stream_id}) as resp:
                if resp.status != 200:
                    rec.end(f"HTTP {resp.status}: {(await resp.text())[:200]}")
                    return
                async for line in resp.content:
                    arrival = time.monotonic()
                    if not ndjson:
                        if line.strip():
                            rec.add_text(arrival, line.decode())
                        continue
                    event = orjson.loads(line)
                    if event["type"] == "chunk":
                        rec.add_text(arrival, event["text"])
                        if self.job.stop_after is not None and rec.stopped_at is None \
                                and len(rec.pieces) >= self.job.stop_after:
                            rec.stopped_at = time.monotonic()
                            await self._stop(resp.headers.get("X-Resume-Token", ""))
                    elif event["type"] == "done":
                        rec.end(finish=event["finish_reason"])
                    else:
                        rec.end(f"error line: {event.get('code')}")
                if not ndjson:
                    rec.end(finish="stop")  # the seed's format has no terminal line: the end of the body is it
        except Exception as err:
            rec.end(f"{type(err).__name__}: {err}")
        rec.end("body ended without a terminal line")

    async def _stop(self, token: str) -> None:
        """The explicit stop, as a client that means it sends it: the body then ends with its `done` line."""
        url = f"{self.target['url']}/message/stream/{self.job.stream_id}/stop"
        async with self.session.post(url, headers={"X-Resume-Token": token}) as resp:
            if resp.status != 200:
                self.rec.end(f"stop: HTTP {resp.status}")

    async def close(self) -> None:
        pass


class DirectStream:
    """The control: the request straight to the upstream, its server-sent events read line by line."""

    def __init__(self, session: Any, target: dict[str, Any], job: Job, rec: Record) -> None:
        self.session, self.target, self.job, self.rec = session, target, job, rec

    async def run(self, t0: float) -> None:
        rec = self.rec
        await _start_at(t0, self.job)
        body = {"model": "bench", "messages": [{"role": "user", "content": self.job.prompt}], "stream": True}
        rec.emit = time.monotonic()
        try:
            async with self.session.post(self.target["url"] + "/chat/completions", json=body) as resp:
                async for line in resp.content:
                    arrival = time.monotonic()
                    if not line.startswith(b"data: "):
                        continue
                    data = line[6:].strip()
                    if data == b"[DONE]":
                        break
                    choices = orjson.loads(data).get("choices") or []
                    text = choices[0]["delta"].get("content") if choices else None
                    if text:
                        rec.add_text(arrival, text)
                        if self.job.stop_after is not None and len(rec.pieces) >= self.job.stop_after:
                            rec.stopped_at = time.monotonic()
                            rec.end(finish="hung up")
                            return
            rec.end(finish="stop")
        except Exception as err:
            rec.end(f"{type(err).__name__}: {err}")

    async def close(self) -> None:
        pass
