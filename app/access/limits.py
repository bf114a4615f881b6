"""Admission of a new stream: refused while shutting down, over the concurrency caps, or over the rate limit.

Checked after validation and before the upstream is called, so a refused request costs nothing. A
Socket.IO request whose stream_id is already running is refused before admission (app/transports/sockets.py), so it
does not use up the rate limit either; over HTTP every request is its own owner, so ids never collide.

Atomic: from the first check here to the stream's registration (StreamManager.start, app/streams/manager.py,
which the transports call right after and which never yields) nothing switches to another green thread, so a
burst of requests arriving together sees each other's slots (docs/protocol.md). Nothing here may block, sleep,
log to a socket or start a thread: tests/test_admission_atomic.py traces every switch to hold it so.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ..config import Settings
from ..errors import ErrorCode, RelayError
from ..streams.registry import StreamRegistry

_SWEEP_EVERY = 5.0  # seconds between removals of expired rate-limit entries; they only cost memory till then


class InlineSweepStorage(MemoryStorage):
    """limits' in-memory storage, minus the thread its hits start, which made admission switch green threads.

    MemoryStorage removes expired entries from a `threading.Timer` of 10 ms, and a hit starts a new one
    whenever the last has run out. Under gevent's and eventlet's monkey-patching, `Thread.start()` waits for
    the new green thread to run: a switch in the middle of the hit, before the entry is counted, during which
    every other request of a burst passes the same checks. Here a hit removes expired entries itself, at most
    every few seconds: the same work the timer did, with no thread and no switch.
    """

    def __init__(self) -> None:
        for hook in ("_MemoryStorage__schedule_expiry", "_MemoryStorage__expire_events"):
            if not hasattr(MemoryStorage, hook):  # a `limits` release that moved them: fail loudly, not racily
                raise RuntimeError(f"limits.storage.MemoryStorage has no {hook}: see app/access/limits.py")
        self._next_sweep = 0.0
        super().__init__()

    def _MemoryStorage__schedule_expiry(self) -> None:
        """Replaces MemoryStorage's own, which every hit calls: sweep now if it is time, in this thread."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_EVERY
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


class Admission:
    """One per app; `admit(client)` raises a coded RelayError or lets the stream start."""

    def __init__(self, settings: Settings, registry: StreamRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._rates: list[RateLimitItem] = parse_many(settings.rate_limit) if settings.rate_limit else []
        self._limiter = MovingWindowRateLimiter(InlineSweepStorage())
        self.draining = False  # set on SIGTERM (app/serving/shutdown.py)

    def admit(self, client: str) -> None:
        """Let one more stream start for `client`, counting it against the rate limit; the caller registers it
        before anything can switch green threads (StreamManager.start)."""
        if self.draining:
            raise RelayError(ErrorCode.SERVER_SHUTDOWN, "The server is shutting down; try again in a moment.")
        settings = self._settings
        if len(self._registry) >= settings.max_streams_total:
            raise RelayError(ErrorCode.TOO_MANY_STREAMS, "The server is at its limit of running streams; try later.")
        if self._registry.count(client) >= settings.max_streams_per_client:
            raise RelayError(
                ErrorCode.TOO_MANY_STREAMS,
                f"You have {settings.max_streams_per_client} streams running, the most allowed; "
                "wait for one to end or stop one.",
            )
        for rate in self._rates:  # test them all before counting, so a refusal uses up nothing
            if not self._limiter.test(rate, client):
                reset_at, _ = self._limiter.get_window_stats(rate, client)
                raise RelayError(
                    ErrorCode.RATE_LIMITED,
                    f"Too many requests: at most {rate} per client.",
                    retry_after=max(1.0, reset_at - time.time()),
                )
        for rate in self._rates:
            self._limiter.hit(rate, client)
