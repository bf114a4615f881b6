"""Graceful shutdown on SIGTERM: refuse new streams, let running ones finish within SHUTDOWN_GRACE, end the rest.

Every stream still gets exactly one terminal event: the ones cut short end with a `server_shutdown` error.
Then the Socket.IO clients are disconnected, so the server's connection pool empties and it exits
well inside gunicorn's graceful_timeout.

Hooked in by gunicorn.conf.py's `post_worker_init` (chaining the gevent worker's own SIGTERM handler,
which stops accepting connections at once) and by `python -m app` for eventlet (whose server is stopped
once drained: stopping it earlier would cut its websockets).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..errors import ErrorCode, RelayError

if TYPE_CHECKING:
    from flask_socketio import SocketIO

    from ..access.limits import Admission
    from ..config import Settings
    from ..streams.registry import StreamRegistry

log = logging.getLogger(__name__)

_SETTLE = 5.0  # seconds for cut-short streams to send their terminal event before clients are disconnected
_POLL = 0.05

SignalHandler = Callable[[int, FrameType | None], Any]


class Shutdown:
    """Drains one app's streams; `begin()` is idempotent and returns at once (the work runs in a green task)."""

    def __init__(self, settings: Settings, registry: StreamRegistry, admission: Admission, socketio: SocketIO) -> None:
        self._settings, self._registry, self._admission, self._socketio = settings, registry, admission, socketio
        self.began = False
        self.done = False
        self._when_drained: Callable[[], None] | None = None

    def begin(self, when_drained: Callable[[], None] | None = None) -> None:
        if self.began:
            return
        self.began = True
        self._when_drained = when_drained
        self._admission.draining = True
        self._socketio.start_background_task(self._drain)

    def _drain(self) -> None:
        registry, sleep = self._registry, self._socketio.sleep
        grace = self._settings.shutdown_grace
        log.info("shutdown: draining %d streams, grace %.1fs", len(registry), grace)
        deadline = time.monotonic() + grace
        while len(registry) and time.monotonic() < deadline:
            sleep(_POLL)
        cut = registry.all()
        error = RelayError(ErrorCode.SERVER_SHUTDOWN, "The server is shutting down; this stream was ended early.")
        for entry in cut:
            entry.cancel(self._settings.async_mode, "server_shutdown", error)
        deadline = time.monotonic() + _SETTLE
        while len(registry) and time.monotonic() < deadline:
            sleep(_POLL)
        log.info("shutdown: %d streams ended early; disconnecting clients", len(cut))
        self._socketio.server.eio.disconnect()  # every client; queued events are sent first
        self.done = True
        if self._when_drained is not None:
            self._when_drained()


def chain_sigterm(shutdown: Shutdown, then: SignalHandler | None = None,
                  when_drained: Callable[[], None] | None = None) -> None:
    """On SIGTERM start draining, then run `then` (the server's own SIGTERM handling, if it has one);
    `when_drained` runs once every stream has ended and the clients are disconnected."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        shutdown.begin(when_drained)
        if then is not None:
            then(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)
