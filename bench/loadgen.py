"""The load generator: one process of many concurrent streams on asyncio, started by bench/run.py.

Runs in its own process (spawned, so it shares no interpreter lock with the fake upstream or the
orchestrator), so the clients are not the bottleneck being measured. Each stream is its own
connected python-socketio AsyncClient (kind "sio"), or for the control measurement a plain
streamed HTTP request straight to the fake upstream (kind "direct"). Every chunk is stamped with
time.monotonic() in the first Python code that sees it (CLOCK_MONOTONIC: the same clock in
every process, so the orchestrator can compare stamps across workers).

The worker reports how busy it was (CPU share, and the event loop's lag: how late a 5 ms sleep
wakes up), so a reader can tell whether the stamps were delayed by the client itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import time
from typing import Any

REQUEST = "chatgpt_description"
CHUNK = "chatgpt_description_chunk"
DONE = "chatgpt_description_done"
ERROR = "chatgpt_description_error"

_LAG_TICK = 0.005
_CONNECT_CONCURRENCY = 25


def new_record(stream_id: str) -> dict[str, Any]:
    """What one stream saw: when it asked, each chunk (arrival, seq, text), when it ended, and why not."""
    return {"stream_id": stream_id, "emit": None, "arrivals": [], "done": None, "error": None}


def worker_main(conn: Any, kind: str, target: dict[str, str], jobs: list[tuple[str, str]], timeout: float) -> None:
    """Process entry point. jobs: (stream_id, prompt) pairs. Talks to the orchestrator over `conn`:
    sends ("ready", n_ok), waits for ("go", t0), starts every stream at monotonic time t0, then
    sends ("result", records, stats) once all streams ended or `timeout` seconds passed."""
    try:
        asyncio.run(_worker(conn, kind, target, jobs, timeout))
    except Exception as err:  # tell the orchestrator instead of leaving it waiting
        conn.send(("failed", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


async def _worker(conn: Any, kind: str, target: dict[str, str], jobs: list[tuple[str, str]], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    records = [new_record(stream_id) for stream_id, _ in jobs]
    pending = {"n": len(jobs)}
    all_ended = asyncio.Event()

    def ended(rec: dict[str, Any]) -> None:
        pending["n"] -= 1
        if pending["n"] <= 0:
            all_ended.set()

    if kind == "sio":
        pairs = zip(jobs, records, strict=True)
        streams: list[Any] = [_SioStream(target["url"], job, rec, ended) for job, rec in pairs]
        sem = asyncio.Semaphore(_CONNECT_CONCURRENCY)

        async def connect(stream: _SioStream) -> None:
            async with sem:
                await stream.connect()

        await asyncio.gather(*(connect(s) for s in streams))
        session = None
    else:
        import aiohttp

        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None))
        streams = [_DirectStream(session, target, job, rec, ended) for job, rec in zip(jobs, records, strict=True)]
    # Streams that could not connect have ended already, with their error.
    for stream in streams:
        if stream.rec["error"] is not None:
            ended(stream.rec)
    conn.send(("ready", sum(1 for s in streams if s.rec["error"] is None)))

    message = await loop.run_in_executor(None, conn.recv)
    t0 = message[1]
    await asyncio.sleep(max(0.0, t0 - time.monotonic()))

    lags: list[float] = []
    monitor = asyncio.ensure_future(_watch_loop(lags))
    cpu0, wall0 = _cpu_seconds(), time.monotonic()
    tasks = [asyncio.ensure_future(s.start()) for s in streams if s.rec["error"] is None]
    try:
        await asyncio.wait_for(all_ended.wait(), timeout)
    except TimeoutError:
        for rec in records:
            if rec["done"] is None and rec["error"] is None:
                rec["error"] = f"timeout after {timeout:.0f} s"
    cpu1, wall1 = _cpu_seconds(), time.monotonic()
    monitor.cancel()
    for task in tasks:
        task.cancel()
    lags.sort()
    stats = {
        "cpu_share": (cpu1 - cpu0) / max(1e-9, wall1 - wall0),
        "loop_lag_p50_ms": 1000 * lags[len(lags) // 2] if lags else None,
        "loop_lag_p99_ms": 1000 * lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else None,
        "loop_lag_max_ms": 1000 * lags[-1] if lags else None,
    }
    conn.send(("result", records, stats))

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(s.close() for s in streams), return_exceptions=True), 10)
    if session is not None:
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


class _SioStream:
    """One connected Socket.IO client with one stream, as a browser tab would have."""

    def __init__(self, url: str, job: tuple[str, str], rec: dict[str, Any], ended: Any) -> None:
        import socketio

        self.url = url
        self.stream_id, self.prompt = job
        self.rec = rec
        self._ended = ended
        self._closing = False
        self.client = socketio.AsyncClient(reconnection=False)
        arrivals = rec["arrivals"]

        def on_chunk(text: str, meta: dict[str, Any] | None = None) -> None:
            stamp = time.monotonic()
            seq = meta.get("seq") if isinstance(meta, dict) else None
            arrivals.append((stamp, seq, text))

        def on_done(payload: Any = None) -> None:
            if rec["done"] is None and rec["error"] is None:
                rec["done"] = time.monotonic()
                self._ended(rec)

        def on_error(payload: Any = None) -> None:
            self._fail(f"error event: {payload}")

        def on_disconnect(*args: Any) -> None:
            if not self._closing:
                self._fail("disconnected before done")

        self.client.on(CHUNK, on_chunk)
        self.client.on(DONE, on_done)
        self.client.on(ERROR, on_error)
        self.client.on("disconnect", on_disconnect)

    def _fail(self, why: str) -> None:
        if self.rec["done"] is None and self.rec["error"] is None:
            self.rec["error"] = why
            self._ended(self.rec)

    async def connect(self) -> None:
        try:
            await self.client.connect(self.url, transports=["websocket"], wait_timeout=20)
        except Exception as err:
            self.rec["error"] = f"connect failed: {err}"

    async def start(self) -> None:
        self.rec["emit"] = time.monotonic()
        await self.client.emit(REQUEST, {"prompt": self.prompt, "stream_id": self.stream_id})

    async def close(self) -> None:
        self._closing = True  # a disconnect now is ours, not the server's
        if self.client.connected:
            await self.client.disconnect()


class _DirectStream:
    """The control: the same request straight to the fake upstream, read as server-sent events."""

    def __init__(
        self, session: Any, target: dict[str, str], job: tuple[str, str], rec: dict[str, Any], ended: Any
    ) -> None:
        self.session = session
        self.target = target
        self.stream_id, self.prompt = job
        self.rec = rec
        self._ended = ended

    async def start(self) -> None:
        rec = self.rec
        body = {"model": self.target["model"], "messages": [{"role": "user", "content": self.prompt}], "stream": True}
        headers = {"Authorization": f"Bearer {self.target['api_key']}"}
        rec["emit"] = time.monotonic()
        seq = 0
        try:
            url = f"{self.target['base_url']}/chat/completions"
            async with self.session.post(url, json=body, headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
                async for line in resp.content:
                    stamp = time.monotonic()
                    if not line.startswith(b"data: "):
                        continue
                    data = line[6:].strip()
                    if data == b"[DONE]":
                        rec["done"] = stamp
                        break
                    choices = json.loads(data).get("choices") or []
                    text = choices[0]["delta"].get("content") if choices else None
                    if text:
                        rec["arrivals"].append((stamp, seq, text))
                        seq += 1
            if rec["done"] is None:
                raise RuntimeError("stream ended without [DONE]")
        except asyncio.CancelledError:
            raise
        except Exception as err:
            rec["error"] = f"{type(err).__name__}: {err}"
        self._ended(rec)

    async def close(self) -> None:
        pass
