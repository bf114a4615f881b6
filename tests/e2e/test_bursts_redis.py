"""Limits under bursts with the rate limit in a real Redis: requests released together from a barrier, and exactly
the allowed number admitted, on one instance and across two. The bursts themselves: tests/live/test_bursts.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.conftest import MODES, LiveServer, stop_server
from tests.fake_upstream import FakeUpstream
from tests.live.test_bursts import BURST, PER_CLIENT, RATE, ROUNDS, Tokens, limited_server, rounds
from tests.outcomes import TRANSPORTS


@pytest.fixture(scope="module", params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def tokens(mode: str) -> Tokens:
    return Tokens()


@pytest.fixture
def gates() -> Callable[[], str]:
    return lambda: f"gate-{uuid.uuid4().hex}"


# With REDIS_URL the rate limit is counted in Redis, a round trip during which other requests run: the slot is
# reserved before it, so the caps still hold exactly; and two instances share one count.

@pytest.fixture(scope="module")
def shared_pair(mode: str, fake_upstream: FakeUpstream, redis_server, tmp_path_factory) -> Iterator[list[LiveServer]]:
    limits = {"MAX_STREAMS_PER_CLIENT": str(PER_CLIENT), "MAX_STREAMS_TOTAL": "100", "RATE_LIMIT": f"{RATE}/minute",
              "REDIS_URL": redis_server.url}
    redis.Redis.from_url(redis_server.url).flushdb()  # the other mode's rounds used the same tokens
    servers = [limited_server(mode, fake_upstream, tmp_path_factory, f"shared{i}", limits) for i in range(2)]
    yield servers
    for server in servers:
        stop_server(server)


def test_caps_hold_while_the_rate_limit_waits_on_redis(shared_pair: list[LiveServer], fake_upstream,
                                                       tokens: Tokens, gates) -> None:
    """12 requests of one client on one instance, RATE_LIMIT in Redis: its cap of 4 holds, round after round
    (each round's client is new, so the rate limit of 5 never binds)."""
    counts = rounds(shared_pair[0], fake_upstream, "socketio", lambda: tokens.take(1) * BURST, gates)
    assert counts == [PER_CLIENT] * ROUNDS


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_rate_limit_across_two_instances(shared_pair: list[LiveServer], fake_upstream, tokens: Tokens, gates,
                                             transport: str) -> None:
    """One client's burst, released together, split over two instances: 5/minute in all, not per instance (each
    instance alone would admit its cap of 4, 8 together)."""
    counts = rounds(shared_pair, fake_upstream, transport, lambda: tokens.take(1) * BURST, gates)
    assert counts == [RATE] * ROUNDS
