"""A hung Redis (SIGSTOP: its port still accepts, nothing answers) must not hold admission: the rate limit and the
failed-auth throttle wait at most REDIS_TIMEOUT for it, then count on this instance
(chat_relay/access/shared_counts.py),
and streams are still served, each with its one terminal event."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
import requests

from tests.clients import SioProbe
from tests.conftest import MODES, LiveServer, free_port, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import run_http, run_socketio
from tests.redis_server import RedisServer, require_redis

GOOD = "right-token-hung-4e2a"
# REDIS_TIMEOUT is 0.25 s; the answer must come well within a second more, on a loaded 2-core machine.
# Without the bound, redis-py waits its socket timeout (seconds) and retries.
WITHIN = 1.5


@pytest.fixture(params=MODES)
def hung(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path) -> Iterator[LiveServer]:
    """A server on its own redis-server, which the test stops (SIGSTOP) once the server is up."""
    require_redis()
    redis = RedisServer(free_port(), tmp_path / "redis.log").start()
    env = {**upstream_env(fake_upstream), "REDIS_URL": redis.url, "AUTH_TOKENS": GOOD, "TRUSTED_PROXIES": "1",
           "RATE_LIMIT": "1000/minute", "AUTH_FAILURE_LIMIT": "1000/minute"}
    server = start_server(request.param, env, tmp_path / "server.log")
    try:
        assert redis.process is not None
        yield server, redis.process  # type: ignore[misc]
    finally:
        if redis.process is not None:
            redis.process.send_signal(signal.SIGCONT)
        stop_server(server)
        redis.stop()


def timed(call):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_admission_does_not_wait_on_a_hung_redis(hung) -> None:  # type: ignore[no-untyped-def]
    server, redis_process = hung
    probe = SioProbe(server.url, auth={"token": GOOD})
    try:
        warm = run_socketio(probe, {"prompt": controls(chunks=2), "stream_id": "warm"})
        assert warm.terminal["type"] == "done"
        redis_process.send_signal(signal.SIGSTOP)
        waits = []
        for n in range(4):
            ack, seconds = timed(lambda n=n: probe.start({"prompt": controls(chunks=2), "stream_id": f"s{n}"}))
            assert ack == {"stream_id": f"s{n}"}
            waits.append(seconds)
            assert probe.wait_terminal(f"s{n}")[1]["finish_reason"] == "stop"
            wrong, seconds = timed(lambda: requests.post(
                f"{server.url}/message/stream", json={"prompt": "hi"}, timeout=30,
                headers={"Authorization": "Bearer wrong", "X-Forwarded-For": "192.0.2.9"}))
            assert wrong.status_code == 401
            waits.append(seconds)
            http, seconds = timed(lambda: run_http(server.url, {"prompt": controls(chunks=2)},
                                                   headers={"Authorization": f"Bearer {GOOD}"}))
            assert http.status == 200 and http.text == "w0 w1 "
        print("waits (s):", [round(w, 3) for w in waits])
        assert max(waits) < WITHIN, waits
        server.wait_log("the shared store did not answer")
    finally:
        probe.close()
