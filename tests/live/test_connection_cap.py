"""MAX_CONNECTIONS_PER_CLIENT against the real server, in both async modes: one client cannot take the
worker's connections, a refused connection is closed, and a connection that never connects is bounded.

Tokens make the client identities; TRUSTED_PROXIES=1 lets each connection claim its own address through
X-Forwarded-For, so that one machine can play clients on several addresses.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests
import socketio
import websocket

from tests.clients import SioProbe
from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.engineio_sessions import connect_burst, raw_session, refusal_code, until_closed
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import run_socketio

CAP = 4
ROUNDS = 4
TOKENS = {name: f"tok-{name}-61c0" for name in ("held", "other", "silent", *(f"burst{i}" for i in range(ROUNDS)))}


@pytest.fixture(scope="module", params=MODES)
def capped(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    env = {**upstream_env(fake_upstream), "AUTH_TOKENS": ",".join(TOKENS.values()), "TRUSTED_PROXIES": "1",
           "MAX_CONNECTIONS_PER_CLIENT": str(CAP), "SOCKETIO_CONNECT_TIMEOUT": "1"}
    server = start_server(request.param, env, tmp_path_factory.mktemp(f"conncap-{request.param}") / "server.log")
    yield server
    stop_server(server)
    log = server.log()
    assert "Traceback" not in log
    for token in TOKENS.values():
        assert token not in log, "a client token reached the log"


def eventually(predicate: Callable[[], bool], timeout: float = 10) -> bool:
    """Poll a condition the server exposes only through /healthz; there is no event to wait on."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def probe(server: LiveServer, who: str, address: str) -> SioProbe:
    return SioProbe(server.url, auth={"token": TOKENS[who]}, headers={"X-Forwarded-For": address})


def refused_reason(server: LiveServer, who: str, address: str, transport: str = "websocket") -> dict:
    """Connect with python-socketio, expecting a refusal; what its `connect_error` received."""
    client = socketio.Client(reconnection=False)
    reasons: list = []
    got = threading.Event()
    client.on("connect_error", lambda data=None: (reasons.append(data), got.set()))
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(server.url, transports=[transport], wait_timeout=10, auth={"token": TOKENS[who]},
                       headers={"X-Forwarded-For": address})
    assert got.wait(10)
    client.disconnect()
    [reason] = reasons
    return reason


def test_past_the_cap_refused_and_closed_while_others_connect_and_stream(capped: LiveServer) -> None:
    # The token is the client: its connections from two addresses count together.
    held = [probe(capped, "held", f"10.1.0.{1 + i % 2}") for i in range(CAP)]
    try:
        for transport in ("websocket", "polling"):  # the page's socket.io-client starts with polling
            reason = refused_reason(capped, "held", "10.1.0.3", transport)
            assert reason["data"]["code"] == "too_many_connections", reason
            assert f"{CAP} connections" in reason["data"]["message"]
            assert reason["message"] == reason["data"]["message"]

        # The refused connection does not stay open: the server closes it after the refusal.
        ws = raw_session(capped, "10.1.0.4")
        ws.send("40" + json.dumps({"token": TOKENS["held"]}))
        packets = until_closed(ws)
        assert packets and packets[0].startswith("44"), packets
        assert json.loads(packets[0][2:])["data"]["code"] == "too_many_connections"

        # Another client, even on an address the capped one uses, connects and streams.
        other = probe(capped, "other", "10.1.0.1")
        try:
            assert run_socketio(other, {"prompt": controls(chunks=2), "stream_id": "o"}).text == "w0 w1 "
        finally:
            other.close()
        # The capped client's own connections still work.
        assert run_socketio(held[0], {"prompt": controls(chunks=1), "stream_id": "h"}).text == "w0 "

        # One closed, one more may connect: a closed connection is released.
        held.pop().close()
        assert eventually(lambda: capped.connections() == CAP - 1)
        held.append(probe(capped, "held", "10.1.0.5"))
    finally:
        for connection in held:
            connection.close()
    assert eventually(lambda: capped.connections() == 0)


def test_connections_that_never_connect_are_bounded_per_address_and_closed(capped: LiveServer) -> None:
    silent = [raw_session(capped, "10.2.0.1") for _ in range(CAP)]
    try:
        # One more handshake from that address is refused, over either engine.io transport, with a code.
        with pytest.raises(websocket.WebSocketBadStatusException) as caught:
            raw_session(capped, "10.2.0.1")
        assert caught.value.status_code == 429
        assert json.loads(caught.value.resp_body)["error"]["code"] == "too_many_connections"
        polling = requests.get(f"{capped.url}/socket.io/?EIO=4&transport=polling",
                               headers={"X-Forwarded-For": "10.2.0.1"}, timeout=10)
        assert polling.status_code == 429 and polling.json()["error"]["code"] == "too_many_connections"

        # Meanwhile another address connects and streams.
        other = probe(capped, "other", "10.2.0.2")
        try:
            assert run_socketio(other, {"prompt": controls(chunks=2), "stream_id": "o"}).text == "w0 w1 "
        finally:
            other.close()
    finally:
        # Without a Socket.IO connect, each is closed after SOCKETIO_CONNECT_TIMEOUT (1 s here).
        for ws in silent:
            assert until_closed(ws) in ([], ["1"])  # nothing, or engine.io's close packet
    # Their address may connect again, once the server has seen their sockets end (a websocket counts until its
    # socket is closed: docs/security.md, "Frames and connections").
    assert eventually(lambda: capped.connections() == 0)
    again = probe(capped, "silent", "10.2.0.1")
    again.close()
    assert eventually(lambda: capped.connections() == 0)


def connection_burst(server: LiveServer, token: str, subnet: str) -> int:
    """3 x CAP connects of one token, an address each (no handshake cap), released together from a barrier
    (tests/engineio_sessions.py); how many were admitted. Every other one must be refused for the cap."""
    answers = connect_burst(server, [(f"{subnet}.{i}", {"token": token}) for i in range(3 * CAP)])
    admitted = [a for a in answers if a.startswith("40")]
    refused = [a for a in answers if refusal_code(a) == "too_many_connections"]
    assert len(admitted) + len(refused) == len(answers), answers
    return len(admitted)


def test_a_burst_of_connections_admits_exactly_the_cap(capped: LiveServer) -> None:
    counts = []
    for round_ in range(ROUNDS):
        counts.append(connection_burst(capped, TOKENS[f"burst{round_}"], f"10.3.{round_}"))
        assert eventually(lambda: capped.connections() == 0)
    assert counts == [CAP] * ROUNDS
