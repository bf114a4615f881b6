"""Behind a proxy (TRUSTED_PROXIES): limits count each forwarded client apart, and the public origin is our own.

Without the setting, forwarded headers are ignored: a client cannot forge its address or origin with them.
The forwarded host is the one ALLOWED_HOSTS must list.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import socketio

from tests.clients import SioProbe
from tests.conftest import LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import run_http, run_socketio

# What nginx forwards for a page at https://relay.example (gunicorn itself trusts X-Forwarded-Proto from loopback).
PUBLIC = {"X-Forwarded-Host": "relay.example", "X-Forwarded-Proto": "https", "Origin": "https://relay.example"}


def forwarded_for(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


@pytest.fixture(scope="module")
def proxied(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    env = {**upstream_env(fake_upstream), "TRUSTED_PROXIES": "1", "MAX_STREAMS_PER_CLIENT": "1",
           "ALLOWED_HOSTS": "relay.example"}
    server = start_server("gevent", env, tmp_path_factory.mktemp("proxied") / "server.log")
    yield server
    stop_server(server)


def test_each_forwarded_client_has_its_own_limit(proxied: LiveServer, fake_upstream, gate: str) -> None:
    alice = SioProbe(proxied.url, headers=forwarded_for("203.0.113.1"))
    bob = SioProbe(proxied.url, headers=forwarded_for("203.0.113.2"))
    try:
        held = {"prompt": controls(chunks=2, gate=gate, hold_after=1, heartbeat=0.3), "stream_id": "held"}
        assert alice.start(held) == {"stream_id": "held"}
        alice.wait_chunks("held", 1)
        # Another user behind the same proxy is not counted against alice's one stream.
        assert run_socketio(bob, {"prompt": controls(chunks=2), "stream_id": "b"}).text == "w0 w1 "
        again = run_http(proxied.url, {"prompt": "a second stream"}, headers=forwarded_for("203.0.113.1"))
        assert (again.status, again.terminal["code"]) == (429, "too_many_streams")
    finally:
        fake_upstream.open_gate(gate)
        alice.close()
        bob.close()


def test_the_public_origin_is_our_own_through_a_trusted_proxy(proxied: LiveServer) -> None:
    outcome = run_http(proxied.url, {"prompt": controls(chunks=1)}, headers=PUBLIC)
    assert (outcome.status, outcome.text) == (200, "w0 ")
    probe = SioProbe(proxied.url, origin=PUBLIC["Origin"], headers={k: v for k, v in PUBLIC.items() if k != "Origin"})
    try:
        assert run_socketio(probe, {"prompt": controls(chunks=1), "stream_id": "public"}).text == "w0 "
    finally:
        probe.close()


def test_a_forwarded_host_not_in_allowed_hosts_is_refused(proxied: LiveServer) -> None:
    # A name rebound to the proxy's address: nginx forwards it as it came.
    rebound = {"X-Forwarded-Host": "attacker.example", "X-Forwarded-Proto": "https"}
    outcome = run_http(proxied.url, {"prompt": "x"}, headers={**rebound, "Origin": "https://attacker.example"})
    assert (outcome.status, outcome.terminal["code"]) == (400, "host_not_allowed")
    with pytest.raises(socketio.exceptions.ConnectionError):
        SioProbe(proxied.url, origin="https://attacker.example", headers=rebound)


def test_forwarded_headers_are_ignored_without_trusted_proxies(live_server: LiveServer) -> None:
    outcome = run_http(live_server.url, {"prompt": controls(chunks=1)}, headers=PUBLIC)
    assert (outcome.status, outcome.terminal["code"]) == (403, "origin_not_allowed")
