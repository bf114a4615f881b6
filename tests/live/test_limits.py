"""Limits against the real server, each with its own code and message, and never reaching the upstream.

A server with tight limits (gevent, as users run it; the limits are the same code in both modes), and
tokens so that each test is its own client identity. The Socket.IO packet size runs on both modes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import socketio

from tests.clients import SioProbe
from tests.conftest import LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import run_http, run_socketio

TOKENS = {name: f"tok-{name}-5c1e" for name in ("conc", "total-a", "total-b", "total-c", "rate", "dup", "caps")}


@pytest.fixture(scope="module")
def limited(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    env = {**upstream_env(fake_upstream), "AUTH_TOKENS": ",".join(TOKENS.values()),
           "MAX_STREAMS_PER_CLIENT": "2", "MAX_STREAMS_TOTAL": "3", "RATE_LIMIT": "4/minute",
           "MAX_PROMPT_CHARS": "200", "MAX_MESSAGES": "3", "MAX_TOKENS_LIMIT": "50"}
    server = start_server("gevent", env, tmp_path_factory.mktemp("limited") / "server.log")
    yield server
    stop_server(server)


def probe_for(server: LiveServer, who: str) -> SioProbe:
    return SioProbe(server.url, auth={"token": TOKENS[who]})


def bearer(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


def held(gate: str, stream_id: str) -> dict:
    """A stream that stays running until its gate opens (heartbeats keep it within the read timeout)."""
    return {"prompt": controls(chunks=2, gate=gate, hold_after=1, heartbeat=0.3), "stream_id": stream_id}


def test_concurrent_streams_per_client(limited: LiveServer, fake_upstream, gate: str) -> None:
    probe = probe_for(limited, "conc")
    try:
        for stream_id in ("one", "two"):
            assert probe.start(held(gate, stream_id)) == {"stream_id": stream_id}
            probe.wait_chunks(stream_id, 1)
        sent = len(fake_upstream.requests)
        refused = run_socketio(probe, {"prompt": "three", "stream_id": "three"})
        assert refused.terminal["code"] == "too_many_streams" and "2 streams" in refused.terminal["message"]
        http = run_http(limited.url, {"prompt": "three"}, headers=bearer("conc"))  # the same client over HTTP
        assert (http.status, http.terminal["code"]) == (429, "too_many_streams")
        assert len(fake_upstream.requests) == sent
        fake_upstream.open_gate(gate)
        for stream_id in ("one", "two"):
            assert probe.wait_terminal(stream_id)[1]["finish_reason"] == "stop"
        assert run_socketio(probe, {"prompt": controls(chunks=1), "stream_id": "again"}).text == "w0 "
    finally:
        probe.close()


def test_concurrent_streams_server_wide(limited: LiveServer, fake_upstream, gate: str) -> None:
    a, b, c = probe_for(limited, "total-a"), probe_for(limited, "total-b"), probe_for(limited, "total-c")
    try:
        for probe, stream_id in ((a, "a1"), (a, "a2"), (b, "b1")):
            probe.start(held(gate, stream_id))
            probe.wait_chunks(stream_id, 1)
        sent = len(fake_upstream.requests)
        refused = run_socketio(c, {"prompt": "one too many", "stream_id": "c1"})
        assert refused.terminal["code"] == "too_many_streams" and "server" in refused.terminal["message"]
        http = run_http(limited.url, {"prompt": "one too many"}, headers=bearer("total-c"))
        assert (http.status, http.terminal["code"]) == (429, "too_many_streams")
        assert len(fake_upstream.requests) == sent
    finally:
        fake_upstream.open_gate(gate)
        for probe in (a, b, c):
            probe.close()


def test_rate_limit_per_client(limited: LiveServer, fake_upstream) -> None:
    probe = probe_for(limited, "rate")
    try:
        for i in range(4):  # RATE_LIMIT=4/minute
            assert run_socketio(probe, {"prompt": controls(chunks=1), "stream_id": f"r{i}"}).text == "w0 "
        sent = len(fake_upstream.requests)
        refused = run_socketio(probe, {"prompt": "fifth", "stream_id": "r4"})
        error = refused.terminal
        assert error["code"] == "rate_limited" and "4 per 1 minute" in error["message"]
        assert 1 <= error["retry_after"] <= 60
        http = run_http(limited.url, {"prompt": "fifth"}, headers=bearer("rate"))
        assert (http.status, http.terminal["code"]) == (429, "rate_limited")
        assert 1 <= int(http.headers["Retry-After"]) <= 60
        assert http.terminal["retry_after"] == int(http.headers["Retry-After"])
        assert len(fake_upstream.requests) == sent
    finally:
        probe.close()
    # Another client is not affected.
    assert run_http(limited.url, {"prompt": controls(chunks=1)}, headers=bearer("caps")).text == "w0 "


def test_duplicate_stream_id_refusals_use_up_no_rate_limit(limited: LiveServer, fake_upstream, gate: str) -> None:
    """Only Socket.IO can repeat a running stream_id: over HTTP every request is its own owner."""
    probe = probe_for(limited, "dup")
    try:
        assert probe.start(held(gate, "a")) == {"stream_id": "a"}  # 1 of RATE_LIMIT=4/minute
        probe.wait_chunks("a", 1)
        sent = len(fake_upstream.requests)
        for _ in range(4):  # as many as the whole allowance
            refused = probe.start({"prompt": "again", "stream_id": "a"})["error"]
            assert refused["code"] == "invalid_request" and "already running" in refused["message"], refused
        assert len(fake_upstream.requests) == sent
        for stream_id in ("b", "c", "d"):  # the rest of the allowance is still there
            assert run_socketio(probe, {"prompt": controls(chunks=1), "stream_id": stream_id}).text == "w0 "
        over = run_socketio(probe, {"prompt": "fifth", "stream_id": "e"}).terminal  # and the limit still holds
        assert over["code"] == "rate_limited", over
        fake_upstream.open_gate(gate)
        assert probe.wait_terminal("a")[1]["finish_reason"] == "stop"
    finally:
        fake_upstream.open_gate(gate)
        probe.close()


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({"prompt": "x" * 201}, "at most 200 characters"),
        ({"messages": [{"role": "user", "content": "hi"}] * 4}, "at most 3 are allowed"),
        ({"prompt": "x", "max_tokens": 51}, "at most 50"),
        ({"prompt": "x", "model": "gpt-not-allowed"}, "Unknown model"),
    ],
    ids=["prompt-size", "message-count", "max-tokens", "model-not-allowed"],
)
def test_request_caps(limited: LiveServer, fake_upstream, payload: dict, fragment: str) -> None:
    sent = len(fake_upstream.requests)
    probe = probe_for(limited, "caps")
    try:
        over_socketio = run_socketio(probe, {**payload, "stream_id": "cap"}).terminal
    finally:
        probe.close()
    over_http = run_http(limited.url, payload, headers=bearer("caps"))
    assert over_http.status == 400
    for error in (over_socketio, over_http.terminal):
        assert error["code"] == "invalid_request" and fragment in error["message"], error
    assert len(fake_upstream.requests) == sent


def test_oversized_socketio_packet_closes_the_connection(live_server: LiveServer, fake_upstream) -> None:
    """engine.io refuses a packet over MAX_REQUEST_BYTES (8 MiB) by closing the connection: the client sees a
    disconnect."""
    sent = len(fake_upstream.requests)
    client = socketio.Client(reconnection=False)
    gone = threading.Event()
    client.on("disconnect", lambda reason=None: gone.set())
    client.connect(live_server.url, transports=["websocket"], wait_timeout=10)
    client.emit("chatgpt_description", {"prompt": "x" * 8_500_000})
    assert gone.wait(10), "the server should close the connection"
    assert len(fake_upstream.requests) == sent
    other = SioProbe(live_server.url)  # and keeps serving everyone else
    try:
        assert run_socketio(other, {"prompt": controls(chunks=2), "stream_id": "after"}).text == "w0 w1 "
    finally:
        other.close()
    assert "Traceback" not in live_server.log()
