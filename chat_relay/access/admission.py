"""Admission of a new stream: refused while shutting down, over the concurrency caps, or over the rate limit.

Checked after validation and before the upstream is called, so a refused request costs nothing. A
Socket.IO request whose stream_id is already running is refused before admission
(chat_relay/transports/socketio_handlers.py), so it
does not use up the rate limit either; over HTTP every request is its own owner, so ids never collide.

Atomic: from the first check here to the reservation of the stream's slot nothing switches to another green
thread, so a burst of requests arriving together sees each other's slots (docs/protocol.md). Nothing before the
reservation may block, sleep, log to a socket or start a thread: tests/unit/test_admission_atomic.py traces every
switch to hold it so. The reservation is taken before the rate limit, which with REDIS_URL is a round trip to
Redis (counted there for every instance; at most REDIS_TIMEOUT, chat_relay/access/shared_counts.py): while it waits,
the slot is already counted against the caps, and a refusal gives it back. StreamManager.start
(chat_relay/streams/manager.py), which never yields, turns it into the running stream.
"""

from __future__ import annotations

import logging
import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ..config import Settings
from ..errors import ErrorCode, RelayError
from ..streams.registry import StreamRegistry
from .shared_counts import SharedWindow

log = logging.getLogger(__name__)

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
                raise RuntimeError(f"limits.storage.MemoryStorage has no {hook}: see chat_relay/access/admission.py")
        self._next_sweep = 0.0
        super().__init__()

    def _MemoryStorage__schedule_expiry(self) -> None:
        """Replaces MemoryStorage's own, which every hit calls: sweep now if it is time, in this thread."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + _SWEEP_EVERY
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]


class Admission:
    """One per app; `admit(client)` raises a coded RelayError or reserves the stream's slot."""

    def __init__(self, settings: Settings, registry: StreamRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._rates: list[RateLimitItem] = parse_many(settings.rate_limit) if settings.rate_limit else []
        # With REDIS_URL the rate limit counts a client's streams on every instance; while Redis does not answer
        # within REDIS_TIMEOUT, each instance counts its own (so the limit still holds, per instance) rather than
        # refusing everyone or holding the request (chat_relay/access/shared_counts.py).
        self._window = SharedWindow(MovingWindowRateLimiter(InlineSweepStorage()),
                                    settings.redis_url if self._rates else None, settings.redis_timeout, "rate limit")
        self.draining = False  # set on SIGTERM (chat_relay/lifecycle/shutdown.py)

    def admit(self, client: str) -> None:
        """Reserve one more stream's slot for `client` and count it against the rate limit; the caller then
        starts it with StreamManager.start(..., reserved=True), or gives the slot back with `give_back`."""
        self._check_caps(client)
        self._registry.reserve(client)  # from here the slot counts: a burst's other requests see it
        try:
            self._check_rate(client)
        except BaseException:
            self._registry.give_back(client)
            raise

    def give_back(self, client: str) -> None:
        """Give back a slot that `admit` reserved, for a stream that did not start after all."""
        self._registry.give_back(client)

    def _check_caps(self, client: str) -> None:
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

    def _check_rate(self, client: str) -> None:
        # Each rate's hit checks and counts in one step (a Lua script in Redis): two instances, or two green
        # threads, cannot both take the last slot. With several rates, all are tested first, so a refusal by
        # one uses up none of the others.
        for rate in self._rates:
            if len(self._rates) > 1 and not self._window.test(rate, client):
                self._refuse(rate, client)
        for rate in self._rates:
            if not self._window.hit(rate, client):
                self._refuse(rate, client)

    def _refuse(self, rate: RateLimitItem, client: str) -> None:
        reset_at, _ = self._window.window_stats(rate, client)
        raise RelayError(ErrorCode.RATE_LIMITED, f"Too many requests: at most {rate} per client.",
                         retry_after=max(1.0, reset_at - time.time()))
