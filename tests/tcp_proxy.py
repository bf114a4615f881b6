"""A counting TCP proxy on loopback, between the relay and a real upstream, that sees how each stream ends.

The relay cannot be asked whether it closed the upstream request: this watches the bytes instead. It marks a
connection as streaming when an SSE response starts, and as idle when the upstream's `data: [DONE]` passes.
A client that closes its side while a stream is still running counts as `aborted`, and the proxy then closes
its own connection to the upstream, as the relay's connection would have closed without it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

_SSE = b"text/event-stream"
_DONE = b"data: [DONE]"
_KEEP = max(len(_SSE), len(_DONE))  # bytes kept between reads, so a marker split across two reads is still seen


class TcpProxy:
    """Forward 127.0.0.1:<port> to 127.0.0.1:<target_port>; counters tests can wait on."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.connections = 0
        self.streams_started = 0
        self.streams_done = 0
        self.aborted = 0
        self.done_times: list[float] = []  # time.monotonic() when each `data: [DONE]` passed
        self._cond = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._closing = False
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def wait_for(self, predicate: Callable[[TcpProxy], bool], timeout: float = 30) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def snapshot(self) -> dict[str, int]:
        with self._cond:
            return {"connections": self.connections, "streams_started": self.streams_started,
                    "streams_done": self.streams_done, "aborted": self.aborted}

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            conn = _Connection(self, client, upstream)
            with self._cond:
                self.connections += 1
                self._cond.notify_all()
            threading.Thread(target=conn.pump_requests, daemon=True).start()
            threading.Thread(target=conn.pump_responses, daemon=True).start()

    def _count(self, counter: str) -> None:
        with self._cond:
            setattr(self, counter, getattr(self, counter) + 1)
            if counter == "streams_done":
                self.done_times.append(time.monotonic())
            self._cond.notify_all()


class _Connection:
    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.streaming = False
        self._lock = threading.Lock()

    def pump_requests(self) -> None:
        """Client to upstream; when the client closes, note whether a stream was cut, then close both ways."""
        _copy(self.client, self.upstream)
        with self._lock:
            cut, self.streaming = self.streaming, False
        if cut:
            self.proxy._count("aborted")
        self._close()

    def pump_responses(self) -> None:
        """Upstream to client, watching for the start and the end of each SSE stream."""
        tail = b""
        while True:
            try:
                data = self.upstream.recv(65536)
            except OSError:
                break
            if not data:
                break
            seen = tail + data
            with self._lock:
                if _SSE in seen and not self.streaming:
                    self.streaming = True
                    self.proxy._count("streams_started")
                if _DONE in seen and self.streaming:
                    self.streaming = False
                    self.proxy._count("streams_done")
            tail = seen[-_KEEP:]
            try:
                self.client.sendall(data)
            except OSError:
                break
        with self._lock:
            self.streaming = False  # the upstream ended it: not the client's doing
        self._close()

    def _close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


def _copy(source: socket.socket, target: socket.socket) -> None:
    while True:
        try:
            data = source.recv(65536)
        except OSError:
            return
        if not data:
            return
        try:
            target.sendall(data)
        except OSError:
            return
