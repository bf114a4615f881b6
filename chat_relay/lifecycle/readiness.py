"""Readiness (`GET /readyz`): whether a load balancer should send this instance new streams.

Not while it drains (SIGTERM, or Ctrl-C's quick drain: chat_relay/lifecycle/shutdown.py), and not while its Redis
(REDIS_URL) is unreachable, since resuming and stopping across instances need it. The upstream's health is
no part of it: a blip at the model's provider would take every instance out of the pool at once, and no
other instance would do better. It is in the metrics instead (relay_upstream_errors_total).

Redis is pinged by a background task every CHECK_EVERY seconds, never by the probe itself, so `/readyz`
answers at once even while Redis hangs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

if TYPE_CHECKING:
    from .shutdown import Shutdown

CHECK_EVERY = 1.0  # seconds between pings of Redis


class Readiness:
    def __init__(self, shutdown: Shutdown, redis_ping: Callable[[], bool] | None,
                 sleep: Callable[[float], None]) -> None:
        self._shutdown = shutdown
        self._ping = redis_ping
        self._sleep = sleep
        self.redis_reachable = redis_ping() if redis_ping is not None else True

    def watch(self) -> None:
        """The background task (with REDIS_URL only): check Redis, forever."""
        while True:
            self._sleep(CHECK_EVERY)
            self.check()

    def check(self) -> None:
        """Ping Redis once (at most a second: redis_probe)."""
        if self._ping is not None:
            self.redis_reachable = self._ping()

    def reasons(self) -> list[str]:
        """Why this instance is not ready: `draining`, `redis_unreachable`; empty when it is."""
        return [reason for reason, applies in (("draining", self._shutdown.began),
                                               ("redis_unreachable", not self.redis_reachable)) if applies]

    def ready(self) -> bool:
        return not self.reasons()


def redis_probe(url: str) -> Callable[[], bool]:
    """Whether Redis answers now, within a second, without retries: on a connection of its own."""
    probe = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))

    def ping() -> bool:
        try:
            return bool(probe.ping())
        except redis.RedisError:
            return False

    return ping
