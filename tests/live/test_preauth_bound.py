"""A small bound before auth (MAX_UNAUTHENTICATED_BYTES, 64 KiB by default), against the real server in both modes:
a client without a token cannot make the server read or hold MAX_REQUEST_BYTES (8 MiB), over a websocket, a polling
POST or an HTTP stream request; a client with one sends a 5 MB image as before."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.clients import DONE, SioProbe, ndjson_events, post_stream
from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream
from tests.live.test_hostile_frames import wait_until
from tests.metrics_scrape import labels, relay_samples, scrape_text
from tests.raw_websocket import CONTINUATION, TEXT, RawWebSocket, frame
from tests.request_samples import image_part, image_url

TOKEN = "tok-preauth-bound-1"
SMALL = 65_536  # MAX_UNAUTHENTICATED_BYTES's default
OVER_SMALL = 100 * 1024
IMAGE_BYTES = 5_000_000  # MAX_IMAGE_BYTES's default: 6.7 MB in base64, under MAX_REQUEST_BYTES's 8 MiB


@pytest.fixture(scope="module", params=MODES)
def server(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    # A long body deadline: a server that waited for a body it should not read would not answer within the test's
    # own timeouts. TRUSTED_PROXIES: the throttle test counts its wrong tokens against an address of its own.
    env = {**upstream_env(fake_upstream), "AUTH_TOKENS": TOKEN, "LOG_LEVEL": "INFO", "REQUEST_BODY_TIMEOUT": "60",
           "TRUSTED_PROXIES": "1", "AUTH_FAILURE_LIMIT": "3/minute"}
    live = start_server(request.param, env, tmp_path_factory.mktemp("preauth") / "server.log")
    yield live
    stop_server(live)


def body_refusals(server: LiveServer) -> dict[str, float]:
    """relay_refusals_total{code="invalid_request"} by transport, from GET /metrics."""
    samples = relay_samples(scrape_text(server.url))
    return {transport: samples.get(("relay_refusals_total", labels(transport=transport, code="invalid_request")), 0.0)
            for transport in ("socketio", "http")}


def close_code(ws: RawWebSocket) -> int | None:
    """How the server ended the websocket: its close code, or None for a bare end."""
    try:
        while True:
            if ws.next_message() is None:
                return ws.close_code
    except (EOFError, ConnectionResetError):
        return None


def bearer(request: requests.PreparedRequest) -> requests.PreparedRequest:
    request.headers["Authorization"] = f"Bearer {TOKEN}"
    return request


def image_request(tag: str) -> dict:
    text = f"What is in this picture? {tag}"
    return {"messages": [{"role": "user", "content": [{"type": "text", "text": text},
                                                      image_part(image_url(IMAGE_BYTES))]}]}


# Socket.IO

@pytest.mark.parametrize("fragments", [1, 4], ids=["one-frame", "fragmented"])
def test_a_message_over_the_small_bound_before_the_connect_closes_the_websocket(server: LiveServer,
                                                                                fragments: int) -> None:
    log_before = len(server.log())
    ws = RawWebSocket(server.url)
    message = b"4" + b"x" * (OVER_SMALL - 1)  # an engine.io message; never parsed: it is over the bound
    piece = len(message) // fragments
    try:
        for i in range(fragments):
            part = message[i * piece:] if i == fragments - 1 else message[i * piece:(i + 1) * piece]
            ws.send(frame(TEXT if i == 0 else CONTINUATION, part, fin=i == fragments - 1))
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed as the bound was passed
    try:
        assert close_code(ws) == 1009
    finally:
        ws.close()
    # The line is written as the server's reader ends, which may be just after the client has the close frame.
    wait_until(lambda: "closed: a message over the size bound" in server.log()[log_before:])
    assert server.log()[log_before:].count("closed: a message over the size bound") == 1


def test_a_message_under_the_small_bound_before_the_connect_is_read(server: LiveServer) -> None:
    """The bound leaves a connect with a token, and more, alone: 60 KB of padding in the auth, then accepted."""
    ws = RawWebSocket(server.url)
    try:
        answer = ws.connect({"token": TOKEN, "padding": "p" * 60_000})
        assert answer.startswith(b"40{"), answer
    finally:
        ws.close()


def test_after_an_accepted_connect_a_5_mb_message_is_read_and_answered(server: LiveServer) -> None:
    ws = RawWebSocket(server.url, timeout=30)
    try:
        assert ws.connect({"token": TOKEN}).startswith(b"40{")
        event = json.dumps(["chatgpt_description", {"prompt": "x" * IMAGE_BYTES}])
        ws.send(frame(TEXT, f"421{event}".encode()))  # with ack id 1
        while True:
            message = ws.next_message()
            assert message is not None, f"closed with {ws.close_code} instead of answering"
            if message.startswith(b"431"):
                break
        [ack] = json.loads(message[3:])
        assert ack["error"]["code"] == "invalid_request" and "too long" in ack["error"]["message"], ack
    finally:
        ws.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_5_mb_image_with_a_token_reaches_the_upstream(server: LiveServer, fake_upstream: FakeUpstream,
                                                        transport: str) -> None:
    tag = f"preauth-{uuid.uuid4().hex[:12]}"
    probe = SioProbe(server.url, transports=[transport], auth={"token": TOKEN})
    try:
        ack = probe.start(image_request(tag), timeout=30)
        assert "stream_id" in ack, ack
        name, _ = probe.wait_terminal(ack["stream_id"], timeout=30)
        assert name == DONE
    finally:
        probe.close()
    [body] = fake_upstream.requests_with(tag)
    assert len(body["messages"][0]["content"][1]["image_url"]["url"]) > 6_600_000


def test_a_polling_post_over_the_small_bound_before_the_connect_is_refused(server: LiveServer) -> None:
    endpoint = f"{server.url}/socket.io/?EIO=4&transport=polling"
    opened = requests.get(endpoint, timeout=10).text
    sid = json.loads(opened[1:])["sid"]
    before = body_refusals(server)
    posted = requests.post(f"{endpoint}&sid={sid}", data="4" + "x" * (OVER_SMALL - 1), timeout=10)
    assert posted.status_code == 413, (posted.status_code, posted.text)
    assert posted.json()["error"]["code"] == "invalid_request"
    after = body_refusals(server)
    assert (after["socketio"] - before["socketio"], after["http"] - before["http"]) == (1, 0)  # Socket.IO's, once
    # The same session may still connect with a token, in a small POST.
    connect = requests.post(f"{endpoint}&sid={sid}", data="40" + json.dumps({"token": TOKEN}), timeout=10)
    assert connect.status_code == 200
    assert requests.get(f"{endpoint}&sid={sid}", timeout=10).text.startswith("40{")


# HTTP

def head_only(server: LiveServer, authorization: str | None, forwarded_for: str | None = None) -> bytes:
    """POST /message/stream announcing a 5 MB body and sending none of it: what the server answers before it
    has read a byte of the body, then everything until it closes the connection."""
    url = urlsplit(server.url)
    headers = ["POST /message/stream HTTP/1.1", f"Host: {url.hostname}:{url.port}",
               "Content-Type: application/json", f"Content-Length: {IMAGE_BYTES}"]
    if authorization:
        headers.append(f"Authorization: {authorization}")
    if forwarded_for:
        headers.append(f"X-Forwarded-For: {forwarded_for}")
    with socket.create_connection((url.hostname, url.port), timeout=15) as sock:
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        received = b""
        while True:  # a server waiting for the body would time this out (REQUEST_BODY_TIMEOUT is 60 s)
            data = sock.recv(65536)
            if not data:
                return received  # closed after its answer: the body is never read
            received += data


@pytest.mark.parametrize("authorization", [None, "Bearer not-the-token", "Basic dXNlcjpwYXNz"],
                         ids=["no-token", "wrong-token", "not-bearer"])
def test_a_stream_request_without_a_right_token_is_refused_before_its_body(server: LiveServer,
                                                                            authorization: str | None) -> None:
    answer = head_only(server, authorization, forwarded_for=f"10.23.0.{hash(authorization) % 200 + 1}")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401"), answer[:300]
    assert b"www-authenticate: bearer" in head.lower()
    assert b'"unauthorized"' in body


def test_wrong_tokens_with_large_bodies_are_still_throttled(server: LiveServer) -> None:
    """AUTH_FAILURE_LIMIT is 3/minute here: the fourth wrong token from one address gets 429, unread too."""
    address = f"10.24.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"
    statuses = [head_only(server, "Bearer guess", forwarded_for=address)[:12] for _ in range(4)]
    assert statuses == [b"HTTP/1.1 401"] * 3 + [b"HTTP/1.1 429"], statuses


def test_a_5_mb_image_with_the_right_token_goes_through_over_http(server: LiveServer,
                                                                  fake_upstream: FakeUpstream) -> None:
    tag = f"preauth-{uuid.uuid4().hex[:12]}"
    with post_stream(server.url, image_request(tag), accept="application/x-ndjson",
                     auth=lambda request: bearer(request)) as response:
        assert response.status_code == 200, response.text
        *_, last = ndjson_events(response)
    assert last["type"] == "done", last
    assert len(fake_upstream.requests_with(tag)) == 1
