"""Shutdown: refuse new streams, let running ones finish within a grace period, end the rest, then exit.

- SIGTERM (a process manager): the grace period is SHUTDOWN_GRACE.
- Ctrl-C (SIGINT): a quick drain, with no grace: running streams end at once. A second Ctrl-C exits
  at once, without waiting for anything. Ctrl-C during a SIGTERM drain cuts its grace short.

Every stream still gets exactly one terminal event: the ones cut short end with a `server_shutdown` error,
and each logs its `stream_end` line. The team's on_finish calls still running get a few seconds more. Then the
Socket.IO clients are disconnected, so the server's connection pool empties and it exits well inside gunicorn's
graceful_timeout. Until then the server keeps serving: `/readyz` answers 503 from the moment `began` is set
(chat_relay/lifecycle/readiness.py), and new Socket.IO connections are refused
(chat_relay/middleware/connection_cap.py).

Hooked in by gunicorn.conf.py's `post_worker_init` (chaining the gevent worker's own signal handlers, which
stop it accepting connections: once drained on SIGTERM; on Ctrl-C it exits) and by `python -m app` for
eventlet (whose server is stopped once drained: stopping it earlier would cut its websockets).
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

    from ..access.admission import Admission
    from ..async_drivers import AsyncDriver
    from ..config import Settings
    from ..streams.registry import StreamRegistry

log = logging.getLogger(__name__)

_SETTLE = 5.0  # seconds for cut-short streams to send their terminal event before clients are disconnected
_POLL = 0.05

SignalHandler = Callable[[int, FrameType | None], Any]


class Shutdown:
    """Drains one app's streams; `begin()` is idempotent and returns at once (the work runs in a green task)."""

    def __init__(self, settings: Settings, registry: StreamRegistry, admission: Admission, socketio: SocketIO,
                 driver: AsyncDriver, hooks_running: Callable[[], int] = lambda: 0) -> None:
        """`hooks_running()`: the team's on_finish calls not yet returned (chat_relay/hooks/team_hooks.py)."""
        self._hooks_running = hooks_running
        self._settings, self._registry, self._admission, self._socketio = settings, registry, admission, socketio
        self._driver = driver
        self.began = False
        self.done = False
        self._when_drained: Callable[[], None] | None = None
        self._deadline = 0.0  # when running streams are cut

    def begin(self, when_drained: Callable[[], None] | None = None, grace: float | None = None) -> None:
        """Start draining, with `grace` seconds (SHUTDOWN_GRACE if None) for running streams to finish.

        Once begun, another call can only shorten the grace (Ctrl-C after SIGTERM) and set `when_drained`,
        which runs at once if the drain is already done.
        """
        deadline = time.monotonic() + (self._settings.shutdown_grace if grace is None else grace)
        new_callback = when_drained is not None and when_drained is not self._when_drained
        if when_drained is not None:
            self._when_drained = when_drained
        if self.began:
            self._deadline = min(self._deadline, deadline)
            if self.done and new_callback and when_drained is not None:
                when_drained()
            return
        self.began = True
        self._deadline = deadline
        self._admission.draining = True
        self._socketio.start_background_task(self._drain)

    def _drain(self) -> None:
        registry, sleep = self._registry, self._socketio.sleep
        log.info("shutdown: draining %d streams, grace %.1fs", len(registry),
                 max(0.0, self._deadline - time.monotonic()))
        while registry.busy() and time.monotonic() < self._deadline:
            sleep(_POLL)
        cut = registry.all()
        error = RelayError(ErrorCode.SERVER_SHUTDOWN, "The server is shutting down; this stream was ended early.")
        for entry in cut:
            entry.cancel(self._driver, "server_shutdown", error)
        deadline = time.monotonic() + _SETTLE
        while (registry.busy() or self._hooks_running()) and time.monotonic() < deadline:
            sleep(_POLL)
        log.info("shutdown: %d streams ended early; disconnecting clients", len(cut))
        self._disconnect_clients()
        self.done = True
        if self._when_drained is not None:
            self._when_drained()

    def _disconnect_clients(self) -> None:
        """Disconnect every Socket.IO client, sending queued events first, for at most _SETTLE seconds.

        engine.io waits until a client has taken its close packet: a long-polling client that is gone (a tab
        just closed) never polls for it, and the server would never exit.
        """
        finished: list[bool] = []

        def disconnect() -> None:
            self._socketio.server.eio.disconnect()
            finished.append(True)

        self._socketio.start_background_task(disconnect)
        deadline = time.monotonic() + _SETTLE
        while not finished and time.monotonic() < deadline:
            self._socketio.sleep(_POLL)


def chain_sigterm(shutdown: Shutdown, then: SignalHandler | None = None,
                  when_drained: Callable[[], None] | None = None) -> None:
    """On SIGTERM start draining, then run `then` (the server's own SIGTERM handling, if it has one);
    `when_drained` runs once every stream has ended and the clients are disconnected."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        shutdown.begin(when_drained)
        if then is not None:
            then(signum, frame)

    signal.signal(signal.SIGTERM, on_sigterm)


def chain_interrupt(shutdown: Shutdown, when_drained: Callable[[], None], exit_now: Callable[[], None],
                    also: tuple[signal.Signals, ...] = ()) -> None:
    """Ctrl-C (SIGINT): a quick drain, then `when_drained` (the server's exit); a second Ctrl-C runs `exit_now`.

    The signals in `also` start the same drain but never count as the second Ctrl-C: gunicorn's master passes
    the terminal's Ctrl-C on to its worker as SIGQUIT, which the worker gets beside the terminal's own SIGINT.
    """
    interrupts = 0
    draining = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts, draining
        if signum == signal.SIGINT:
            interrupts += 1
            if interrupts > 1:
                log.info("shutdown: second Ctrl-C, exiting now")
                exit_now()
                return
        if not draining:  # once: `when_drained` must run only once
            draining = True
            shutdown.begin(when_drained, grace=0)

    for signum in (signal.SIGINT, *also):
        signal.signal(signum, on_signal)
