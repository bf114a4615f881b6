"""Access against the real server: tokens (AUTH_TOKENS), origins, and stream ownership.

Two servers per async mode: the suite's default one (no tokens, same origin only) and a secured one
(tokens, an origin allowlist, and a host name in ALLOWED_HOSTS).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
import socketio

from tests.clients import SioProbe
from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import run_http, run_socketio

TOKENS = ["tok-alpha-1f9e2d7c", "tok-beta-83b0a4e6"]
APP_ORIGIN = "https://app.example"
EVIL_ORIGIN = "https://evil.example"
PUBLIC_HOST = "relay.example"  # the secured server's ALLOWED_HOSTS


@pytest.fixture(scope="module", params=MODES)
def secured(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    env = {**upstream_env(fake_upstream), "AUTH_TOKENS": ",".join(TOKENS), "CORS_ALLOWED_ORIGINS": APP_ORIGIN,
           "ALLOWED_HOSTS": PUBLIC_HOST}
    server = start_server(request.param, env, tmp_path_factory.mktemp(f"secured-{request.param}") / "server.log")
    yield server
    stop_server(server)
    for token in TOKENS:
        assert token not in server.log(), "a client token reached the log"


def refused_connect(url: str, origin: str | None = None, host: str | None = None, **connect) -> tuple[Exception, list]:
    """Connect, expecting a refusal; returns the exception and what `connect_error` received."""
    options = {key: value for key, value in (("origin", origin), ("host", host)) if value}
    client = socketio.Client(reconnection=False, websocket_extra_options=options)
    reasons: list = []
    got = threading.Event()
    client.on("connect_error", lambda data=None: (reasons.append(data), got.set()))
    with pytest.raises(socketio.exceptions.ConnectionError) as caught:
        client.connect(url, transports=["websocket"], wait_timeout=10, **connect)
    got.wait(5)
    client.disconnect()
    return caught.value, reasons


@pytest.mark.parametrize("auth", [None, {}, {"token": ""}, {"token": "wrong"}, {"token": TOKENS[0] + "x"},
                                  {"token": 12345}, "just-a-string"])
def test_socketio_connect_without_a_valid_token_is_refused(secured: LiveServer, fake_upstream, auth) -> None:
    sent = len(fake_upstream.requests)
    _, reasons = refused_connect(secured.url, **({} if auth is None else {"auth": auth}))
    [reason] = reasons
    assert isinstance(reason, dict), reasons
    assert reason["data"]["code"] == "unauthorized" and reason["data"]["message"]
    assert reason["message"] == reason["data"]["message"]  # socket.io-client's err.message
    assert len(fake_upstream.requests) == sent


@pytest.mark.parametrize("token", TOKENS)
def test_socketio_with_a_valid_token_streams(secured: LiveServer, token: str) -> None:
    probe = SioProbe(secured.url, auth={"token": token})
    try:
        outcome = run_socketio(probe, {"prompt": controls(chunks=3), "stream_id": "authed"})
    finally:
        probe.close()
    assert outcome.text == "w0 w1 w2 " and outcome.terminal["type"] == "done"


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer wrong", f"Basic {TOKENS[0]}",
                                           f"Bearer {TOKENS[0][:-1]}"])
def test_http_without_a_valid_bearer_token_gets_401(secured: LiveServer, fake_upstream, authorization) -> None:
    sent = len(fake_upstream.requests)
    headers = {} if authorization is None else {"Authorization": authorization}
    outcome = run_http(secured.url, {"prompt": "hello"}, headers=headers)
    assert outcome.status == 401
    assert outcome.terminal["code"] == "unauthorized"
    assert outcome.headers["WWW-Authenticate"].startswith("Bearer")
    assert len(fake_upstream.requests) == sent


def test_http_with_a_valid_bearer_token_streams(secured: LiveServer) -> None:
    outcome = run_http(secured.url, {"prompt": controls(chunks=2)}, headers={"Authorization": f"Bearer {TOKENS[1]}"})
    assert outcome.status == 200 and outcome.text == "w0 w1 " and outcome.terminal["type"] == "done"


def test_healthz_stays_open(secured: LiveServer) -> None:
    response = requests.get(f"{secured.url}/healthz", timeout=5)
    assert response.status_code == 200 and response.json()["status"] == "ok"


# Origins: a browser's Origin header, on the default server (same origin only) and with an allowlist.

def test_foreign_origin_is_refused_by_default(live_server: LiveServer, fake_upstream) -> None:
    sent = len(fake_upstream.requests)
    _, reasons = refused_connect(live_server.url, origin=EVIL_ORIGIN)
    assert reasons == ["Connection error"]  # engine.io answers the handshake with 400: no Socket.IO reason
    outcome = run_http(live_server.url, {"prompt": "x"}, headers={"Origin": EVIL_ORIGIN})
    assert (outcome.status, outcome.terminal["code"]) == (403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in outcome.headers
    assert len(fake_upstream.requests) == sent


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_same_origin_is_allowed_by_default(live_server: LiveServer, name: str) -> None:
    host = f"{name}:{urlsplit(live_server.url).port}"  # what a browser at http://<name>:<port>/ sends
    own = f"http://{host}"
    probe = SioProbe(live_server.url, origin=own, host=host)
    try:
        assert run_socketio(probe, {"prompt": controls(chunks=1), "stream_id": "own"}).text == "w0 "
    finally:
        probe.close()
    outcome = run_http(live_server.url, {"prompt": controls(chunks=1)}, headers={"Host": host, "Origin": own})
    assert outcome.text == "w0 "


# DNS rebinding: attacker.example resolves to 127.0.0.1, so the browser sends its Host and Origin to the relay.

def test_dns_rebinding_is_refused(live_server: LiveServer, fake_upstream) -> None:
    rebound = f"attacker.example:{urlsplit(live_server.url).port}"
    sent = len(fake_upstream.requests)
    _, reasons = refused_connect(live_server.url, origin=f"http://{rebound}", host=rebound)
    assert reasons == ["Connection error"]  # the handshake got a 400: no Socket.IO reason
    # engine.io's polling handshake is a same-origin GET, which browsers send without an Origin.
    polling = requests.get(f"{live_server.url}/socket.io/?EIO=4&transport=polling", headers={"Host": rebound},
                           timeout=10)
    assert (polling.status_code, polling.json()["error"]["code"]) == (400, "host_not_allowed")
    for headers in ({"Host": rebound, "Origin": f"http://{rebound}"}, {"Host": rebound}):
        outcome = run_http(live_server.url, {"prompt": controls(chunks=1)}, headers=headers)
        assert (outcome.status, outcome.terminal["code"]) == (400, "host_not_allowed"), headers
    assert len(fake_upstream.requests) == sent
    assert requests.get(f"{live_server.url}/healthz", headers={"Host": rebound}, timeout=5).status_code == 200
    assert "refused a request for host 'attacker.example:" in live_server.log()


def test_a_host_in_allowed_hosts_is_our_own(secured: LiveServer) -> None:
    host = f"{PUBLIC_HOST}:{urlsplit(secured.url).port}"
    token = TOKENS[0]
    probe = SioProbe(secured.url, origin=f"http://{host}", host=host, auth={"token": token})
    try:
        assert run_socketio(probe, {"prompt": controls(chunks=1), "stream_id": "public"}).text == "w0 "
    finally:
        probe.close()
    headers = {"Host": host, "Origin": f"http://{host}", "Authorization": f"Bearer {token}"}
    assert run_http(secured.url, {"prompt": controls(chunks=1)}, headers=headers).text == "w0 "
    rebound = f"attacker.example:{urlsplit(secured.url).port}"  # a listed name admits that name only
    refused_connect(secured.url, origin=f"http://{rebound}", host=rebound, auth={"token": token})
    refused = run_http(secured.url, {"prompt": "x"}, headers={**headers, "Host": rebound})
    assert (refused.status, refused.terminal["code"]) == (400, "host_not_allowed")


def test_allowlisted_origin_works_and_others_are_refused(secured: LiveServer) -> None:
    auth = {"Authorization": f"Bearer {TOKENS[0]}"}
    probe = SioProbe(secured.url, origin=APP_ORIGIN, auth={"token": TOKENS[0]})
    try:
        assert run_socketio(probe, {"prompt": controls(chunks=1), "stream_id": "app"}).text == "w0 "
    finally:
        probe.close()
    allowed = run_http(secured.url, {"prompt": controls(chunks=1)}, headers={"Origin": APP_ORIGIN, **auth})
    assert allowed.text == "w0 " and allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    refused_connect(secured.url, origin=EVIL_ORIGIN, auth={"token": TOKENS[0]})
    refused = run_http(secured.url, {"prompt": "x"}, headers={"Origin": EVIL_ORIGIN, **auth})
    assert (refused.status, refused.terminal["code"]) == (403, "origin_not_allowed")


def test_the_ai_sdk_endpoint_has_the_same_origin_rules(secured: LiveServer) -> None:
    """A browser's preflight and POST from an allowlisted origin get CORS headers; another origin is refused."""
    auth = {"Authorization": f"Bearer {TOKENS[0]}"}
    body = {"id": "c1", "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}
    preflight = requests.options(f"{secured.url}/api/chat", timeout=10, headers={
        "Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.ok and preflight.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    allowed = requests.post(f"{secured.url}/api/chat", json=body, headers={"Origin": APP_ORIGIN, **auth}, timeout=10)
    assert allowed.ok and allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN and "w4" in allowed.text
    refused = requests.post(f"{secured.url}/api/chat", json=body, headers={"Origin": EVIL_ORIGIN, **auth}, timeout=10)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"


# Ownership: a stream belongs to the connection that started it, even between clients with the same token.

def test_a_guessed_stream_id_gives_no_control_and_no_events(secured: LiveServer, gate: str, fake_upstream) -> None:
    token = {"token": TOKENS[0]}
    owner, intruder = SioProbe(secured.url, auth=token), SioProbe(secured.url, auth=token)
    try:
        owner.start({"prompt": controls(chunks=6, gate=gate, hold_after=2, heartbeat=0.3), "stream_id": "guess-me"})
        owner.wait_chunks("guess-me", 2)
        assert intruder.stop("guess-me")["error"]["code"] == "invalid_request"
        fake_upstream.open_gate(gate)
        outcome = run_socketio_wait(owner, "guess-me")
        assert outcome == ("done", "stop", "w0 w1 w2 w3 w4 w5 ")
        intruder.settle()
        assert intruder.events == []  # saw nothing of the owner's stream, not even its end
    finally:
        owner.close()
        intruder.close()


def run_socketio_wait(probe: SioProbe, stream_id: str) -> tuple[str, str, str]:
    name, terminal = probe.wait_terminal(stream_id)
    probe.settle()
    assert len(probe.terminals(stream_id)) == 1
    text = "".join(t for _, t in probe.chunks(stream_id))
    return ("done" if name.endswith("done") else "error", terminal.get("finish_reason", ""), text)
