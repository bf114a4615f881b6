"""The failed-auth throttle: at most AUTH_FAILURE_LIMIT wrong access tokens per address, so that tokens cannot be
guessed at the server's speed (hundreds a second) over either transport.

Counted per address, the only identity a client without a valid token has, in a `limits` moving window: in
Redis with REDIS_URL, so that every instance counts the same tries, atomically (chat_relay/access/shared_counts.py).
Once an address is over, every try from it is refused with `rate_limited` and its `retry_after`, a right
token too, until the window frees one: a throttle that let the right token through would answer the very
question the guesser is asking. Requests with no token at all are not counted: they guess nothing.

One warning per burst: the first refusal of an address logs it (never the token); its later refusals until
`retry_after` has passed do not.
"""

from __future__ import annotations

import logging
import time

from limits import RateLimitItem, parse
from limits.strategies import MovingWindowRateLimiter

from ..config import Settings
from ..errors import ErrorCode, RelayError
from .admission import InlineSweepStorage
from .shared_counts import SharedWindow

log = logging.getLogger(__name__)

_KEY = "auth-failures:"  # apart from the stream rate limit's keys (client identities) in the same store


class AuthFailures:
    """`check(address)` before a token is compared, `failed(address)` after a wrong one; both raise 429 when over."""

    def __init__(self, settings: Settings) -> None:
        self._rate: RateLimitItem | None = parse(settings.auth_failure_limit) if settings.auth_failure_limit else None
        self._window = SharedWindow(MovingWindowRateLimiter(InlineSweepStorage()),
                                    settings.redis_url if self._rate else None, settings.redis_timeout,
                                    "failed-auth throttle")
        self._quiet_until: dict[str, float] = {}  # address -> monotonic time its burst's warning covers

    def check(self, address: str) -> None:
        """Refuse an address that is over the limit, whatever token it sends now."""
        if self._rate is not None and not self._window.test(self._rate, _KEY + address):
            self._refuse(address)

    def failed(self, address: str) -> None:
        """Count a wrong token; refuse the address (429, not 401) if this one is past the limit."""
        if self._rate is not None and not self._window.hit(self._rate, _KEY + address):
            self._refuse(address)

    def _refuse(self, address: str) -> None:
        assert self._rate is not None
        reset_at, _ = self._window.window_stats(self._rate, _KEY + address)
        retry_after = max(1.0, reset_at - time.time())
        self._log_once(address, retry_after)
        raise RelayError(ErrorCode.RATE_LIMITED,
                         f"Too many wrong tokens from your address: at most {self._rate}. Wait before trying again.",
                         retry_after=retry_after)

    def _log_once(self, address: str, retry_after: float) -> None:
        now = time.monotonic()
        if self._quiet_until.get(address, 0.0) > now:
            return
        # Forget bursts that are over, so that addresses do not pile up here.
        for old in [key for key, until in self._quiet_until.items() if until <= now]:
            del self._quiet_until[old]
        self._quiet_until[address] = now + retry_after
        log.warning("auth: address %s sent more than %s wrong tokens; refusing its tries for %d s",
                    address[:100], self._rate, int(retry_after + 0.999))
