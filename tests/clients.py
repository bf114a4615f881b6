"""Real clients for the tests: a python-socketio probe that records every event, and an incremental HTTP reader."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import requests

from relay_client.in_order import InOrderClient  # events handled in wire order (python-socketio #382)

CHUNK = "chatgpt_description_chunk"
DONE = "chatgpt_description_done"
ERROR = "chatgpt_description_error"


class SioProbe:
    """A connected socketio.Client that records what arrives, in the order it arrived (relay_client/in_order.py),
    with waits on conditions instead of sleeps."""

    def __init__(self, url: str, origin: str | None = None, host: str | None = None,
                 transports: list[str] | None = None, **connect: Any) -> None:
        # websocket-client sends the server's own origin and host unless told others (a header would be a second one).
        options = {key: value for key, value in (("origin", origin), ("host", host)) if value}
        extra = {"websocket_extra_options": options} if options else {}
        self.client = InOrderClient(reconnection=False, **extra)
        self.events: list[tuple[str, Any]] = []  # (name, payload) in arrival order
        self.arrivals: list[float] = []  # time.monotonic() of each event, in step with `events`
        self.tokens: dict[str, str] = {}  # resume tokens, by stream_id, from the acks
        self._cond = threading.Condition()
        self.client.on(CHUNK, self._on_chunk)
        self.client.on(DONE, lambda data: self._record(DONE, data))
        self.client.on(ERROR, lambda data: self._record(ERROR, data))
        self.client.connect(url, transports=transports or ["websocket"], wait_timeout=10, **connect)

    def _on_chunk(self, text: str, meta: dict) -> None:
        self._record(CHUNK, (text, meta))

    def _record(self, name: str, payload: Any) -> None:
        with self._cond:
            self.events.append((name, payload))
            self.arrivals.append(time.monotonic())
            self._cond.notify_all()

    def start(self, payload: Any, timeout: float = 10) -> dict:
        """Emit a request and return its ack, without its resume_token, which is kept in `tokens`."""
        ack = self.client.call("chatgpt_description", payload, timeout=timeout)
        if isinstance(ack, dict) and "resume_token" in ack:
            ack = dict(ack)
            self.tokens[ack["stream_id"]] = ack.pop("resume_token")
        return ack

    def resume(self, stream_id: str, after_seq: int, token: str, timeout: float = 10) -> dict:
        return self.client.call("chatgpt_description_resume",
                                {"stream_id": stream_id, "after_seq": after_seq, "resume_token": token},
                                timeout=timeout)

    def stop(self, stream_id: str, timeout: float = 10) -> dict:
        return self.client.call("chatgpt_description_stop", {"stream_id": stream_id}, timeout=timeout)

    def wait(self, predicate: Callable[[SioProbe], bool], timeout: float = 10) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"timed out; events so far: {self.events[-5:]}")

    def chunks(self, stream_id: str) -> list[tuple[int, str]]:
        with self._cond:
            return [(m["seq"], t) for name, (t, m) in self._of(CHUNK) if m["stream_id"] == stream_id]

    def terminals(self, stream_id: str) -> list[tuple[str, dict]]:
        with self._cond:
            return [(n, p) for n, p in self.events if n in (DONE, ERROR) and p.get("stream_id") == stream_id]

    def _of(self, name: str) -> list[tuple[str, Any]]:
        return [(n, p) for n, p in self.events if n == name]

    def wait_chunks(self, stream_id: str, count: int, timeout: float = 10) -> None:
        """Until the first `count` pieces of the stream have arrived, in however many chunk events."""
        self.wait(lambda p: p.pieces(stream_id) >= count, timeout)

    def pieces(self, stream_id: str) -> int:
        """How many of the stream's pieces have arrived: the last chunk's seq + 1 (docs/protocol.md, the cursor)."""
        chunks = self.chunks(stream_id)
        return chunks[-1][0] + 1 if chunks else 0

    def wait_terminal(self, stream_id: str, timeout: float = 15) -> tuple[str, dict]:
        self.wait(lambda p: bool(p.terminals(stream_id)), timeout)
        return self.terminals(stream_id)[0]

    def settle(self) -> None:
        """An ordering barrier: a round trip through the server, after which stray events would have arrived."""
        self.client.call("chatgpt_description_stop", {"stream_id": "barrier"}, timeout=10)

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()


def stream_lines(response: requests.Response) -> Iterator[str]:
    """Yield each complete line as soon as its bytes arrive (requests' iter_lines would wait for 512 bytes)."""
    buffer = b""
    for data in response.iter_content(chunk_size=None):
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode("utf-8")
    if buffer:
        yield buffer.decode("utf-8")


def post_stream(base_url: str, payload: Any, accept: str | None = None, **kwargs: Any) -> requests.Response:
    headers = {"Accept": accept} if accept else {}
    return requests.post(f"{base_url}/message/stream", json=payload, headers=headers, stream=True, timeout=20, **kwargs)


def ndjson_events(response: requests.Response) -> Iterator[dict]:
    for line in stream_lines(response):
        if line:
            yield json.loads(line)


def chunks_through(events: Iterator[dict], seq: int) -> list[dict]:
    """Read NDJSON chunk lines until the one that holds piece `seq` (however the pieces were batched)."""
    seen = [next(events)]
    while seen[-1]["seq"] < seq:
        seen.append(next(events))
    return seen

