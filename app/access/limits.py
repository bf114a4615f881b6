"""Admission of a new stream: refused while shutting down, over the concurrency caps, or over the rate limit.

Checked after validation and before the upstream is called, so a refused request costs nothing. A
Socket.IO request whose stream_id is already running is refused before admission (app/transports/sockets.py), so it
does not use up the rate limit either; over HTTP every request is its own owner, so ids never collide.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ..config import Settings
from ..errors import ErrorCode, RelayError
from ..streams.registry import StreamRegistry


class Admission:
    """One per app; `admit(client)` raises a coded RelayError or lets the stream start."""

    def __init__(self, settings: Settings, registry: StreamRegistry) -> None:
        self._settings = settings
        self._registry = registry
        self._rates: list[RateLimitItem] = parse_many(settings.rate_limit) if settings.rate_limit else []
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.draining = False  # set on SIGTERM (app/serving/shutdown.py)

    def admit(self, client: str) -> None:
        """Let one more stream start for `client`, counting it against the rate limit."""
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
