"""GET /readyz on the real server, in both modes: 503 while a SIGTERM drain runs (new Socket.IO connections are
refused then too). /healthz stays 200 throughout: liveness is not readiness. (Ctrl-C's quick drain is the same
`Shutdown.began`: tests/unit/test_metrics_fast.py; /readyz while Redis is away: tests/e2e/test_readiness_redis.py.)
"""

from __future__ import annotations

import signal
import time

import pytest
import requests

from tests.clients import SioProbe
from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls


def readyz(server: LiveServer) -> requests.Response:
    return requests.get(f"{server.url}/readyz", timeout=5)


def await_readyz(server: LiveServer, status: int, timeout: float = 15) -> requests.Response:
    """Until /readyz answers `status`: Redis is pinged every second, so the change shows within about one."""
    deadline = time.monotonic() + timeout
    while (response := readyz(server)).status_code != status:
        assert time.monotonic() < deadline, f"/readyz stayed {response.status_code}: {response.text}"
        time.sleep(0.05)  # polling the server for a condition; there is no event to wait on
    return response


@pytest.mark.parametrize("mode", MODES)
def test_readyz_is_503_while_a_sigterm_drain_runs(mode: str, fake_upstream: FakeUpstream, tmp_path) -> None:
    """For as long as the drain runs, not just at its start: gunicorn's worker used to stop accepting within a
    second of SIGTERM, after which a probe got no answer at all."""
    server = start_server(mode, {**upstream_env(fake_upstream), "SHUTDOWN_GRACE": "20"}, tmp_path / "server.log")
    probe = None
    try:
        assert (readyz(server).status_code, readyz(server).json()) == (200, {"status": "ready"})
        probe = SioProbe(server.url)
        probe.start({"prompt": controls(chunks=40, delay=0.1), "stream_id": "paced"})  # about 4 s
        probe.wait_chunks("paced", 1)

        server.process.send_signal(signal.SIGTERM)
        server.wait_log("shutdown: draining 1 streams")
        seen = probe.pieces("paced")
        for _ in range(2):
            response = readyz(server)
            assert (response.status_code, response.json()) == (503, {"status": "not_ready", "reasons": ["draining"]})
            assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200
            handshake = requests.get(f"{server.url}/socket.io/?EIO=4&transport=polling", timeout=5)
            assert (handshake.status_code, handshake.json()["error"]["code"]) == (503, "server_shutdown")
            probe.wait_chunks("paced", seen + 15)  # 1.5 s of the upstream's pacing later, and still draining

        assert probe.wait_terminal("paced")[1]["finish_reason"] == "stop"  # it finished within the grace period
        assert server.process.wait(timeout=20) == 0
    finally:
        if probe is not None:
            probe.close()
        if server.process.poll() is None:
            stop_server(server)
    assert "Traceback" not in server.log()
