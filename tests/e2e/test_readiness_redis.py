"""GET /readyz on the real server, in both modes, with a real Redis: 503 while Redis is stopped, 200 again once it
is back, and /healthz 200 throughout (liveness is not readiness). The drain's 503: tests/live/test_readiness.py.
"""

from __future__ import annotations

import pytest
import requests

from tests.conftest import MODES, free_port, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.live.test_readiness import await_readyz, readyz
from tests.outcomes import run_http
from tests.redis_server import RedisServer, require_redis


@pytest.mark.parametrize("mode", MODES)
def test_readyz_is_503_while_redis_is_away(mode: str, fake_upstream: FakeUpstream, tmp_path) -> None:
    require_redis()
    store = RedisServer(free_port(), tmp_path / "redis.log").start()
    server = start_server(mode, {**upstream_env(fake_upstream), "REDIS_URL": store.url}, tmp_path / "server.log")
    try:
        assert readyz(server).json() == {"status": "ready"}
        store.stop()
        response = await_readyz(server, 503)
        assert response.json() == {"status": "not_ready", "reasons": ["redis_unreachable"]}
        assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200  # alive all the same
        streamed = run_http(server.url, {"prompt": controls(chunks=3)})  # and it still streams, from memory
        assert streamed.terminal["finish_reason"] == "stop"
        store.start()
        assert await_readyz(server, 200).json() == {"status": "ready"}
    finally:
        stop_server(server)
        store.stop()
