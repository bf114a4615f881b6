"""A per-user token budget: `budget(identity)` tokens per BUDGET_PERIOD, counted from the upstream's `usage`.

Reserve, then settle. A request reserves an estimate of its cost when it is admitted, before the upstream is
called: its prompt's characters / 4 (rounded up), plus the most its reply may take (`max_tokens`,
`max_completion_tokens`, DEFAULT_MAX_TOKENS, else BUDGET_RESERVE_TOKENS). It is refused (`budget_exceeded`, with
`retry_after` until the period's end) when that would take the user's count past the budget. When the stream
ends, the reservation is replaced by the usage the upstream reported (`total_tokens`). A stream that ends without
usage (a stop, a failure, an upstream that reports none) keeps its reservation as its cost: never less than it
could have used.

Each reservation checks and counts in one step: in Redis (REDIS_URL) a Lua script, so a burst across every
instance cannot pass the budget together; in memory, with no switch to another green thread in between. The
count is per fixed window of BUDGET_PERIOD seconds. When Redis does not answer within REDIS_TIMEOUT, this
instance counts on its own for a second (as the rate limit does, chat_relay/access/shared_counts.py).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..access.identity import Identity
from ..config import Settings
from ..errors import ErrorCode, RelayError
from ..observability.bug_reports import hook_answer
from ..streams.request_validation import ChatRequest, text_length

log = logging.getLogger(__name__)

Budget = Callable[[Identity], "int | None"]
"""Tokens the user may use per BUDGET_PERIOD; None: no budget for this user."""

RETRY_S = 1.0  # after Redis failed to answer: count locally this long before trying it again

# KEYS[1] the user's count in this window; ARGV: cost, budget, seconds to keep it. {admitted, count after}.
_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local cost = tonumber(ARGV[1])
if used + cost > tonumber(ARGV[2]) then return {0, used} end
redis.call('INCRBY', KEYS[1], cost)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, used + cost}
"""


@dataclass
class Charge:
    """One stream's reservation, settled once when it ends."""

    key: str
    reserved: int
    settled: bool = False


class Budgets:
    """One per app: reserves at admission, settles at the end."""

    def __init__(self, budget: Budget, settings: Settings) -> None:
        self._budget = budget
        self._period = settings.budget_period
        self._reserve_tokens = settings.budget_reserve_tokens
        self._default_max = settings.default_max_tokens
        self._local: dict[str, tuple[int, float]] = {}  # key -> (count, expires at, monotonic)
        self._next_sweep = 0.0
        self._redis: redis.Redis | None = None
        self._script: Any = None
        if settings.redis_url:
            self._redis = redis.Redis.from_url(settings.redis_url, socket_timeout=settings.redis_timeout,
                                               socket_connect_timeout=settings.redis_timeout,
                                               retry=Retry(NoBackoff(), 0))
            self._script = self._redis.register_script(_RESERVE)
        self._skip_until = 0.0
        self._down = False  # Redis did not answer last time: said once in the log, and again when it is back

    def reserve(self, request: ChatRequest, identity: Identity) -> Charge | None:
        """Reserve this request's estimate, or refuse it with budget_exceeded; None when the user has no budget."""
        limit = hook_answer(log, "budget", "The server could not check your budget.", lambda: self._budget(identity))
        if limit is None:
            return None
        now = time.time()
        window = int(now // self._period)
        window_end = (window + 1) * self._period
        user = hashlib.sha256(identity.user_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        key = f"relay:budget:{user}:{window}"
        cost = self.estimate(request)
        admitted = self._reserve(key, cost, int(limit), window_end - now + 60)
        if not admitted:
            message = (f"This request could use up to {cost} tokens, more than your whole budget of {limit}."
                       if cost > limit else f"You have used your budget of {limit} tokens for now.")
            raise RelayError(ErrorCode.BUDGET_EXCEEDED, message, retry_after=max(1.0, window_end - now))
        return Charge(key, cost)

    def settle(self, charge: Charge, usage: dict[str, int] | None) -> None:
        """Replace the reservation by the real usage; without usage, the reservation stays the cost."""
        if charge.settled:
            return
        charge.settled = True
        used = _total(usage)
        if used is None or used == charge.reserved:
            return
        self._add(charge.key, used - charge.reserved)

    def estimate(self, request: ChatRequest) -> int:
        """What a request may cost at most, as well as can be told before it runs."""
        reply = request.max_tokens or request.options.get("max_completion_tokens") or self._default_max \
            or self._reserve_tokens
        return math.ceil(text_length(request.messages) / 4) + int(reply)

    def _reserve(self, key: str, cost: int, limit: int, keep: float) -> bool:
        if self._script is not None and time.monotonic() >= self._skip_until:
            try:
                admitted, _ = self._script(keys=[key], args=[cost, limit, math.ceil(keep)])
                self._redis_answered()
                return bool(admitted)
            except redis.RedisError as err:
                self._redis_failed(err)
        count, _ = self._local_count(key)
        if count + cost > limit:
            return False
        self._local[key] = (count + cost, time.monotonic() + keep)
        return True

    def _add(self, key: str, amount: int) -> None:
        if self._redis is not None and time.monotonic() >= self._skip_until:
            try:
                self._redis.incrby(key, amount)
                self._redis_answered()
                return
            except redis.RedisError as err:
                self._redis_failed(err)
        count, until = self._local_count(key)
        self._local[key] = (count + amount, until or time.monotonic() + self._period)

    def _local_count(self, key: str) -> tuple[int, float]:
        now = time.monotonic()
        if now >= self._next_sweep:  # expired windows only cost memory: swept every few seconds, not per call
            self._next_sweep = now + 5.0
            for old in [k for k, (_, until) in self._local.items() if until <= now]:
                del self._local[old]
        count, until = self._local.get(key, (0, 0.0))
        return (count, until) if until > now else (0, 0.0)

    def _redis_failed(self, err: Exception) -> None:
        self._skip_until = time.monotonic() + RETRY_S
        if not self._down:
            self._down = True
            log.warning("token budget: the shared store did not answer (%s); counting per instance until it does",
                        type(err).__name__)

    def _redis_answered(self) -> None:
        if self._down:
            self._down = False
            log.info("token budget: counting in the shared store again")


def _total(usage: dict[str, int] | None) -> int | None:
    if not usage:
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    return sum(part for part in parts if isinstance(part, int)) if any(isinstance(p, int) for p in parts) else None
