"""Guessing access tokens: AUTH_FAILURE_LIMIT wrong tokens per address, then 429 with Retry-After on both
transports, a right token too, shared exactly across instances through Redis, logged once per burst.

Each test is its own address (TRUSTED_PROXIES=1 and X-Forwarded-For), so their counts never meet.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import requests
import socketio

from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import run_http
from tests.redis_server import RedisServer

GOOD = "right-token-9b1f"
WRONG = "wrong-guess-"  # + a number: every guess differs, as a guesser's do
LIMIT = 5
BURST = 12


def env_for(fake_upstream: FakeUpstream) -> dict[str, str]:
    return {**upstream_env(fake_upstream), "AUTH_TOKENS": GOOD, "AUTH_FAILURE_LIMIT": f"{LIMIT}/minute",
            "TRUSTED_PROXIES": "1"}


@pytest.fixture(scope="module", params=MODES)
def guarded(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    server = start_server(request.param, env_for(fake_upstream),
                          tmp_path_factory.mktemp(f"brute-{request.param}") / "server.log")
    yield server
    stop_server(server)
    assert WRONG not in server.log() and GOOD not in server.log(), "a token reached the log"


def together(calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls at once, released together from a barrier; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            barrier.wait(30)
            results[index] = calls[index]()
        except BaseException as err:  # the test reads it as that call's result
            barrier.abort()
            results[index] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def http_try(url: str, token: str, address: str) -> requests.Response:
    return requests.post(f"{url}/message/stream", json={"prompt": "hi"}, timeout=30,
                         headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": address})


def socketio_try(url: str, token: str, address: str) -> dict:
    """A Socket.IO connect with this token; what its connect_error received (or {"connected": True})."""
    client = socketio.Client(reconnection=False)
    reasons: list = []
    got = threading.Event()
    client.on("connect_error", lambda data=None: (reasons.append(data), got.set()))
    try:
        client.connect(url, transports=["websocket"], wait_timeout=20, auth={"token": token},
                       headers={"X-Forwarded-For": address})
    except socketio.exceptions.ConnectionError:
        assert got.wait(10)
        return reasons[0]["data"]
    finally:
        client.disconnect()
    return {"connected": True}


def check_refusals(refusals: list[dict]) -> None:
    for refusal in refusals:
        assert refusal["code"] == "rate_limited" and 1 <= refusal["retry_after"] <= 60, refusal


def test_a_burst_of_wrong_bearer_tokens_gets_the_limit_then_429(guarded: LiveServer) -> None:
    address = f"198.51.100.{MODES.index(guarded.mode) + 1}"
    answers = together([lambda i=i: http_try(guarded.url, f"{WRONG}{i}", address) for i in range(BURST)])
    statuses = Counter(answer.status_code for answer in answers)  # type: ignore[union-attr]
    assert statuses == {401: LIMIT, 429: BURST - LIMIT}
    refused = [answer for answer in answers if answer.status_code == 429]  # type: ignore[union-attr]
    for answer in refused:
        assert 1 <= int(answer.headers["Retry-After"]) <= 60  # type: ignore[union-attr]
    check_refusals([answer.json()["error"] for answer in refused])  # type: ignore[union-attr]

    # Throttled, the right token is refused too; another address is not.
    right = run_http(guarded.url, {"prompt": controls(chunks=1)},
                     headers={"Authorization": f"Bearer {GOOD}", "X-Forwarded-For": address})
    assert (right.status, right.terminal["code"]) == (429, "rate_limited") and right.headers["Retry-After"]
    other = run_http(guarded.url, {"prompt": controls(chunks=1)},
                     headers={"Authorization": f"Bearer {GOOD}", "X-Forwarded-For": "198.51.100.200"})
    assert other.status == 200 and other.text == "w0 "

    # One warning for the burst, naming the address and never a token.
    guarded.wait_log(f"auth: address {address} ")
    assert guarded.log().count(f"auth: address {address} ") == 1


def test_a_burst_of_wrong_socketio_tokens_gets_the_limit_then_429(guarded: LiveServer) -> None:
    address = f"203.0.113.{MODES.index(guarded.mode) + 1}"
    reasons = together([lambda i=i: socketio_try(guarded.url, f"{WRONG}{i}", address) for i in range(BURST)])
    codes = Counter(reason["code"] for reason in reasons)  # type: ignore[index]
    assert codes == {"unauthorized": LIMIT, "rate_limited": BURST - LIMIT}, reasons
    check_refusals([r for r in reasons if r["code"] == "rate_limited"])  # type: ignore[index]
    assert socketio_try(guarded.url, GOOD, address)["code"] == "rate_limited"
    assert socketio_try(guarded.url, GOOD, "203.0.113.200") == {"connected": True}
    guarded.wait_log(f"auth: address {address} ")
    assert guarded.log().count(f"auth: address {address} ") == 1


def test_two_instances_share_the_count_through_redis(fake_upstream: FakeUpstream, redis_server: RedisServer,
                                                     tmp_path_factory) -> None:
    env = {**env_for(fake_upstream), "REDIS_URL": redis_server.url}
    workdir = tmp_path_factory.mktemp("brute-cluster")
    servers = [start_server("gevent", env, workdir / f"server-{i}.log") for i in range(2)]
    try:
        address = "192.0.2.77"
        answers = together([lambda i=i: http_try(servers[i % 2].url, f"{WRONG}{i}", address) for i in range(BURST)])
        statuses = Counter(answer.status_code for answer in answers)  # type: ignore[union-attr]
        assert statuses == {401: LIMIT, 429: BURST - LIMIT}
        for server in servers:  # each instance refuses the address now, over either transport
            assert http_try(server.url, GOOD, address).status_code == 429
            assert socketio_try(server.url, GOOD, address)["code"] == "rate_limited"
    finally:
        for server in servers:
            stop_server(server)
