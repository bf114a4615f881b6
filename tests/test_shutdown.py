"""SIGTERM, as a process manager sends it: running streams finish within the grace period, the rest end with
`server_shutdown`, new streams are refused, and the server exits; no client is left without a terminal event.

gunicorn gets the signal on its master, which passes it to the worker (gunicorn.conf.py hooks in there);
eventlet's `python -m app` gets it directly.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from tests.clients import ERROR, SioProbe, ndjson_events, post_stream
from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls

GRACE = 4.0


@pytest.fixture(params=MODES)
def doomed(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path) -> Iterator[LiveServer]:
    """A server of its own: this test ends it."""
    env = {**upstream_env(fake_upstream), "SHUTDOWN_GRACE": str(GRACE)}
    server = start_server(request.param, env, tmp_path / "server.log")
    yield server
    if server.process.poll() is None:
        stop_server(server)


def wait_log(server: LiveServer, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{server.log()[-2000:]}"
        time.sleep(0.02)  # polling a file for a condition; there is no event to wait on


def test_sigterm_drains_then_exits(doomed: LiveServer, fake_upstream: FakeUpstream, gate: str) -> None:
    short, long = SioProbe(doomed.url), SioProbe(doomed.url)
    held = controls(chunks=3, gate=gate, hold_after=1, heartbeat=0.3)  # would run until the gate opens: never
    long.start({"prompt": held, "stream_id": "long"})
    long.wait_chunks("long", 1)
    http_events: list[dict] = []

    def read_http() -> None:
        with post_stream(doomed.url, {"prompt": held, "stream_id": "long-http"},
                         accept="application/x-ndjson") as response:
            http_events.extend(ndjson_events(response))

    reader = threading.Thread(target=read_http)
    reader.start()
    assert fake_upstream.wait_for(lambda f: f.in_flight_with(gate) == 2)
    short.start({"prompt": controls(chunks=6, delay=0.15), "stream_id": "short"})  # about 1 s: within the grace

    signalled = time.monotonic()
    doomed.process.send_signal(signal.SIGTERM)
    wait_log(doomed, "shutdown: draining")
    refused = long.start({"prompt": "a new stream", "stream_id": "late"})  # on a connection still open
    assert refused["error"]["code"] == "server_shutdown"

    _, done = short.wait_terminal("short")
    assert done["finish_reason"] == "stop"
    assert "".join(t for _, t in short.chunks("short")) == "w0 w1 w2 w3 w4 w5 "
    name, error = long.wait_terminal("long", timeout=GRACE + 10)
    assert (name, error["code"]) == (ERROR, "server_shutdown")
    reader.join(GRACE + 10)
    assert not reader.is_alive()
    assert [e["type"] for e in http_events] == ["chunk", "error"]
    assert http_events[-1]["code"] == "server_shutdown"

    assert doomed.process.wait(timeout=20) == 0
    elapsed = time.monotonic() - signalled
    assert GRACE - 0.5 < elapsed < 20, elapsed  # waited for the grace period, exited well inside graceful_timeout
    for probe, stream_id in ((short, "short"), (long, "long")):
        assert len(probe.terminals(stream_id)) == 1
    log = doomed.log()
    assert log.count("cause=server_shutdown") == 2, log
    assert "Traceback" not in log
    short.close()
    long.close()
