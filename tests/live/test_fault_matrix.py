"""Every upstream fault, over both transports and both async modes, with a healthy stream running alongside.

For each fault: the right code, exactly one terminal event, the upstream request closed (the fake's
counters), the bystander's text exact and complete, retries only before the first chunk, and neither
the key, the upstream's error text, a traceback nor the prompt in anything the client saw or the log.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.clients import SioProbe
from tests.conftest import API_KEY, LiveServer, free_port, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import TRANSPORTS, Outcome, run_http, run_socketio
from tests.waits import until

SECRET_BODY = "SECRET-BODY-DETAIL"  # the fake puts it in every error body it sends
RETRIES = 1  # UPSTREAM_MAX_RETRIES of the test server

# name, fake controls, model (None: the default), code, HTTP status if it fails before streaming
# (None: it fails mid-stream), upstream attempts, aborts the fake must count (the relay hung up on it).
FAULTS = [
    ("401", {"fault": "401"}, None, "upstream_auth", 502, 1, 0),
    ("403", {"fault": "403"}, None, "upstream_auth", 502, 1, 0),
    ("404-model", {}, "not-on-upstream", "upstream_error", 502, 1, 0),
    ("429", {"fault": "429"}, None, "rate_limited", 429, 1 + RETRIES, 0),
    ("500", {"fault": "500"}, None, "upstream_error", 502, 1 + RETRIES, 0),
    ("503", {"fault": "503"}, None, "upstream_error", 502, 1 + RETRIES, 0),
    ("timeout-before-first-byte", {"fault": "stall_headers"}, None, "upstream_timeout", 504, 1 + RETRIES,
     1 + RETRIES),
    ("stall-mid-stream", {"fault": "stall", "stall_after": 2}, None, "upstream_timeout", None, 1, 1),
    ("drop-mid-stream", {"fault": "drop", "drop_after": 2}, None, "upstream_unavailable", None, 1, 0),
    # A long tail after the bad line: the fake is still sending when the relay must hang up.
    ("malformed-sse-json", {"fault": "malformed", "chunks": 400, "delay": 0.01}, None, "upstream_error", None, 1, 1),
    ("no-finish-reason", {"fault": "no_finish", "chunks": 3}, None, "upstream_error", None, 1, 0),
    ("error-event-mid-stream", {"fault": "error_event", "chunks": 3}, None, "upstream_error", None, 1, 0),
    ("context-length-exceeded", {"fault": "context_length"}, None, "invalid_request", 400, 1, 0),
]


def _sent_with(fake: FakeUpstream, tag: str) -> int:
    return sum(1 for body in list(fake.requests) if tag in str(body.get("messages")))


def assert_nothing_leaked(visible: str, log: str, tag: str) -> None:
    for secret in (API_KEY, SECRET_BODY, "Traceback"):
        assert secret not in visible, f"{secret!r} reached the client: {visible[:500]}"
        assert secret not in log, f"{secret!r} reached the log"
    assert tag not in log, "prompt text reached the log"


def stream_end_line(log: str, stream_id: str) -> str:
    lines = [line for line in log.splitlines() if "stream_end" in line and f"stream_id={stream_id} " in line]
    assert len(lines) == 1, f"expected one stream_end line for {stream_id}: {lines}"
    return lines[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("name, ctl, model, code, status, attempts, aborts", FAULTS, ids=[f[0] for f in FAULTS])
def test_upstream_fault(live_server: LiveServer, fake_upstream: FakeUpstream, sio_factory, gate: str, transport,
                        name, ctl, model, code, status, attempts, aborts) -> None:
    # A healthy stream on another client, held mid-way by a gate until the fault has played out.
    bystander = sio_factory()
    healthy = "".join(f"w{i} " for i in range(6))
    # The heartbeat (empty deltas) keeps it inside the relay's read timeout while it waits.
    bystander.start({"prompt": controls(chunks=6, gate=gate, hold_after=2, heartbeat=0.3), "stream_id": "bystander"})
    bystander.wait_chunks("bystander", 2)

    tag = f"tag-{uuid.uuid4().hex}"
    stream_id = f"fault-{uuid.uuid4().hex[:12]}"
    log_from = len(live_server.log())  # this case's own log lines start here
    payload: dict = {"prompt": controls(tag=tag, **ctl), "stream_id": stream_id}
    if model:
        payload["model"] = model
    aborted = fake_upstream.aborted
    outcome = run_socketio(sio_factory(), payload) if transport == "socketio" else run_http(live_server.url, payload)

    error = outcome.terminal
    assert (error["type"], error["code"]) == ("error", code), outcome.terminals
    assert error["message"] and SECRET_BODY not in error["message"]
    if code == "rate_limited":
        assert error["retry_after"] == 0  # the upstream's Retry-After, passed on, on both transports
    if transport == "http":
        assert outcome.status == (status or 200)
        if code == "rate_limited":
            assert outcome.headers["Retry-After"] == "0"
    if status is None:
        assert outcome.text.startswith("w0 "), "a mid-stream fault comes after the text already sent"

    # The upstream request is closed: none of this test's in flight, and the fake saw our hang-ups.
    assert fake_upstream.wait_for(lambda f: f.in_flight_with(tag) == 0 and f.aborted >= aborted + aborts), \
        fake_upstream.snapshot()
    assert fake_upstream.aborted == aborted + aborts
    assert _sent_with(fake_upstream, tag) == attempts  # retried only before the first chunk

    fake_upstream.open_gate(gate)
    _, done = bystander.wait_terminal("bystander")
    assert done["finish_reason"] == "stop"
    assert "".join(t for _, t in bystander.chunks("bystander")) == healthy
    assert len(bystander.terminals("bystander")) == 1
    assert until(lambda: live_server.streams() == 0)

    log = live_server.log()[log_from:]
    assert_nothing_leaked(outcome.visible + repr(bystander.events), log, tag)
    line = stream_end_line(log, stream_id)
    assert re.search(rf"model=\S+ chunks=\d+ finish_reason=none cause={code} .*duration_ms=\d+", line), line


@pytest.fixture(scope="module", params=["gevent", "eventlet"])
def unreachable(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[dict]:
    """Two servers whose upstream cannot be reached: nothing listens on its port; its name does not resolve."""
    servers = {}
    urls = {"connect-refused": f"http://127.0.0.1:{free_port()}/v1", "dns-failure": "http://relay-test.invalid/v1"}
    for kind, url in urls.items():
        env = {**upstream_env(fake_upstream), "OPENAI_BASE_URL": url,
               "RES_OPTIONS": "timeout:1 attempts:1"}  # bounds glibc's resolver, should the machine have no DNS
        log_path = tmp_path_factory.mktemp(f"{kind}-{request.param}") / "server.log"
        servers[kind] = start_server(request.param, env, log_path)
    yield servers
    for server in servers.values():
        stop_server(server)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("kind", ["connect-refused", "dns-failure"])
def test_unreachable_upstream(unreachable: dict[str, LiveServer], transport: str, kind: str) -> None:
    server = unreachable[kind]
    tag = f"tag-{uuid.uuid4().hex}"
    payload = {"prompt": tag, "stream_id": f"u-{uuid.uuid4().hex[:12]}"}
    began = time.monotonic()
    if transport == "socketio":
        probe = SioProbe(server.url)
        try:
            outcome: Outcome = run_socketio(probe, payload)
        finally:
            probe.close()
    else:
        outcome = run_http(server.url, payload)
        assert outcome.status == 502
    assert time.monotonic() - began < 10, "an unreachable upstream must fail fast, not hang"
    assert (outcome.terminal["type"], outcome.terminal["code"]) == ("error", "upstream_unavailable")
    assert server.streams() == 0
    assert_nothing_leaked(outcome.visible, server.log(), tag)
    assert "cause=upstream_unavailable" in stream_end_line(server.log(), payload["stream_id"])
