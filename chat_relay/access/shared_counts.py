"""A `limits` moving window counted in Redis, for every instance at once, that never waits long on Redis.

Admission (chat_relay/access/admission.py) and the failed-auth throttle (chat_relay/access/auth_failures.py) ask it
before
they answer a request, so a hung Redis (alive to TCP, answering nothing: SIGSTOP, a full disk, a partition
that drops packets) would otherwise hold every request for redis-py's timeouts and retries (seconds). Here
each call to Redis has REDIS_TIMEOUT to answer, without retries; when it does not (or Redis is away), the
window is counted in this instance's memory instead, and Redis is left alone for RETRY_S before it is tried
again, so that during an outage only one request in RETRY_S waits at all.

The choice is to fail open to the per-instance count, not to refuse: every limit still holds on each
instance (so at most instances x the limit across all of them), and nobody is turned away because Redis is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from limits import RateLimitItem
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

RETRY_S = 1.0  # after Redis failed to answer: count locally this long before trying it again

T = TypeVar("T")


class SharedWindow:
    """`hit`, `test` and `window_stats` of a moving window: in Redis when `redis_url` is set and Redis answers in
    time, else in `local`. `what` names it in the log lines that say when counting moves and comes back."""

    def __init__(self, local: MovingWindowRateLimiter, redis_url: str | None, timeout: float, what: str) -> None:
        self._local = local
        self._shared: MovingWindowRateLimiter | None = None
        if redis_url:
            # Both timeouts: a stopped redis-server still completes TCP handshakes from its listen backlog, and
            # once that is full a connect hangs too. No retries: each would wait the whole timeout again.
            storage = RedisStorage(redis_url, wrap_exceptions=True, socket_timeout=timeout,
                                   socket_connect_timeout=timeout, health_check_interval=15,
                                   retry=Retry(NoBackoff(), 0))  # type: ignore[arg-type]
            self._shared = MovingWindowRateLimiter(storage)
        self._what = what
        self._skip_until = 0.0  # monotonic time before which Redis is not asked
        self._down = False

    def hit(self, item: RateLimitItem, key: str) -> bool:
        """Count one against `key`, atomically (a Lua script in Redis); False if that would exceed `item`."""
        return self._call(lambda limiter: limiter.hit(item, key))

    def test(self, item: RateLimitItem, key: str) -> bool:
        """Whether one more would be allowed now, without counting it."""
        return self._call(lambda limiter: limiter.test(item, key))

    def window_stats(self, item: RateLimitItem, key: str) -> tuple[float, int]:
        """(when the window frees one, as a UNIX time; how many are left)."""
        stats = self._call(lambda limiter: limiter.get_window_stats(item, key))
        return stats[0], stats[1]

    def _call(self, ask: Callable[[MovingWindowRateLimiter], T]) -> T:
        if self._shared is not None and time.monotonic() >= self._skip_until:
            try:
                answer = ask(self._shared)
            except StorageError as err:
                self._skip_until = time.monotonic() + RETRY_S
                if not self._down:
                    self._down = True
                    log.warning("%s: the shared store did not answer (%s); counting per instance until it does",
                                self._what, type(err.storage_error).__name__)
            else:
                if self._down:
                    self._down = False
                    log.info("%s: counting in the shared store again", self._what)
                return answer
        return ask(self._local)
