"""Fast checks through Flask's and Flask-SocketIO's test clients (threading mode), with the real fake upstream."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask_socketio import SocketIOTestClient

from app import create_app
from chat_relay.config import Settings
from chat_relay.errors import ErrorCode
from chat_relay.streams.events import Chunk, Done, Failed
from chat_relay.streams.producer import Producer
from chat_relay.streams.request_validation import ChatRequest
from chat_relay.streams.stream_buffer import StreamBuffer
from chat_relay.streams.upstream import Upstream
from tests.conftest import API_KEY
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import check_cursor


@pytest.fixture
def settings(fake_upstream: FakeUpstream) -> Settings:
    return Settings(openai_api_key=API_KEY, openai_base_url=fake_upstream.url, openai_model="fake-model",
                    async_mode="threading", upstream_max_retries=0, upstream_read_timeout=2, _env_file=None)


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def sio(app: Flask) -> Iterator[SocketIOTestClient]:
    client = app.extensions["socketio"].test_client(app)
    yield client
    if client.is_connected():
        client.disconnect()


def received_until_terminal(client: SocketIOTestClient, timeout: float = 10) -> list[dict]:
    """Collect events until a done or error arrives; the test client offers no wait, so poll its queue."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += client.get_received()
        if any(e["name"] in ("chatgpt_description_done", "chatgpt_description_error") for e in events):
            return events
        time.sleep(0.01)
    raise AssertionError(f"no terminal event: {events}")


def test_ack_then_chunks_then_done(sio: SocketIOTestClient) -> None:
    ack = sio.emit("chatgpt_description", {"prompt": controls(chunks=3), "stream_id": "t1"}, callback=True)
    assert ack["stream_id"] == "t1" and isinstance(ack["resume_token"], str)
    events = received_until_terminal(sio)
    chunks = [e["args"] for e in events if e["name"] == "chatgpt_description_chunk"]
    assert all(meta["stream_id"] == "t1" for _, meta in chunks)
    assert events[-1]["name"] == "chatgpt_description_done"
    done = events[-1]["args"][0]
    assert done["finish_reason"] == "stop"
    check_cursor([(meta["seq"], text) for text, meta in chunks], ["w0 ", "w1 ", "w2 "], done)


def test_invalid_request_ack_and_event(sio: SocketIOTestClient) -> None:
    ack = sio.emit("chatgpt_description", {"prompt": ["not", "text"]}, callback=True)
    assert ack["error"]["code"] == "invalid_request"
    [event] = sio.get_received()
    assert event["name"] == "chatgpt_description_error"
    assert event["args"][0] == {"stream_id": None, **ack["error"]}


def test_no_payload_at_all(sio: SocketIOTestClient) -> None:
    assert sio.emit("chatgpt_description", callback=True)["error"]["code"] == "invalid_request"
    assert sio.emit("chatgpt_description_stop", callback=True)["error"]["code"] == "invalid_request"


def test_stop_in_threading_mode_ends_after_the_next_chunk(sio: SocketIOTestClient) -> None:
    sio.emit("chatgpt_description", {"prompt": controls(chunks=500, delay=0.01), "stream_id": "t2"}, callback=True)
    assert sio.emit("chatgpt_description_stop", {"stream_id": "t2"}, callback=True) == {"stream_id": "t2"}
    done = received_until_terminal(sio)[-1]
    assert done["args"][0]["finish_reason"] == "cancelled"


def test_http_error_shapes(app: Flask) -> None:
    client = app.test_client()
    response = client.post("/message/stream", data="{", content_type="application/json")
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_request"
    assert client.get("/message/stream").status_code == 405
    assert client.get("/message/stream").json["error"]["code"] == "invalid_request"
    assert client.get("/healthz").json == {"status": "ok", "streams": 0, "connections": 0}


def test_http_stream_through_the_test_client(app: Flask) -> None:
    response = app.test_client().post("/message/stream", json={"prompt": controls(text=["a\n", "b"])})
    assert response.status_code == 200
    *lines, end = response.get_data(as_text=True).split("\n")  # one line per chunk, however they were batched
    assert end == "" and all(lines) and "".join(lines).replace("<br />", "\n") == "a\nb"


def test_unexpected_failure_is_internal_and_still_terminal(settings: Settings) -> None:
    class Broken(Upstream):
        def open(self, request: ChatRequest):  # a bug in our code, not an upstream failure
            raise RuntimeError("boom with sk-secret")

    relay = produced(Producer(ChatRequest("s", "fake-model", [{"role": "user", "content": "x"}]), Broken(settings),
                           StreamBuffer("s", threading.Event)))
    [event] = list(relay.buffer.follow())
    assert isinstance(event, Failed) and event.code is ErrorCode.INTERNAL and "boom" not in event.message


def produced(relay: Producer) -> Producer:
    """Run a relay's producer to its end, as its task would."""
    relay.run()
    return relay


def test_relay_against_the_fake(settings: Settings) -> None:
    request = ChatRequest("s", "fake-model", [{"role": "user", "content": controls(chunks=2)}])
    relay = produced(Producer(request, Upstream(settings), StreamBuffer("s", threading.Event)))
    events = list(relay.buffer.follow())  # everything was waiting: one chunk, whose seq is the last piece's
    assert events[0] == Chunk("w0 w1 ", 1)
    assert isinstance(events[1], Done) and events[1].chunks == 2 and relay.finished
    assert list(relay.buffer.follow(cursor=0)) == [Chunk("w1 ", 1), events[1]]  # a reader resumes after any seq


def test_cancel_before_start_never_calls_the_upstream(settings: Settings, fake_upstream: FakeUpstream) -> None:
    sent = len(fake_upstream.requests)
    relay = Producer(ChatRequest("s", "fake-model", [{"role": "user", "content": "x"}]), Upstream(settings),
                  StreamBuffer("s", threading.Event))
    relay.cancel()
    relay.run()
    assert list(relay.buffer.follow()) == [Done("cancelled", 0, None)]
    assert len(fake_upstream.requests) == sent


def test_cors_defaults_to_same_origin(app: Flask) -> None:
    response = app.test_client().options("/message/stream", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in response.headers
    allowed = app.extensions["socketio"].server.eio.cors_allowed_origins  # engine.io asks the same rule
    environ = {"wsgi.url_scheme": "http", "HTTP_HOST": "127.0.0.1:8000"}
    assert allowed("http://127.0.0.1:8000", environ) and not allowed("https://evil.example", environ)
    rebound = {"wsgi.url_scheme": "http", "HTTP_HOST": "relay.example:8000"}  # not in ALLOWED_HOSTS
    assert not allowed("http://relay.example:8000", rebound)


def test_cors_allowlist(settings: Settings) -> None:
    settings.cors_allowed_origins = ["https://app.example"]
    client = create_app(settings).test_client()
    allowed = client.options("/message/stream", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    refused = client.options("/message/stream", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_a_bug_in_a_view_is_one_coded_error_and_one_log_line(app: Flask, caplog) -> None:
    secret = "prompt text that must not reach the log"

    def broken() -> None:
        raise KeyError(secret)

    app.add_url_rule("/broken", view_func=broken)
    with caplog.at_level("INFO"):
        response = app.test_client().get("/broken")
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal", "message": "The server failed to handle the request."}}
    lines = [r for r in caplog.records if r.name == "chat_relay.transports.http_routes"]
    assert [r.getMessage() for r in lines] == [
        "GET /broken failed: KeyError at test_app_fast.py:" + str(broken.__code__.co_firstlineno + 1)
        + " (LOG_LEVEL=DEBUG logs the traceback)"]
    assert not any(r.exc_info for r in caplog.records if r.levelno >= 20) and secret not in caplog.text


def test_a_host_not_allowed_gets_no_stream_and_no_socketio_handshake(app: Flask, fake_upstream: FakeUpstream) -> None:
    sent = len(fake_upstream.requests)
    rebound = app.test_client()  # a page on attacker.example, rebound to this server's address
    handshake = rebound.get("/socket.io/?EIO=4&transport=polling", base_url="http://attacker.example:8714")
    assert (handshake.status_code, handshake.json["error"]["code"]) == (400, "host_not_allowed")
    stream = rebound.post("/message/stream", json={"prompt": "x"}, base_url="http://attacker.example:8714")
    assert (stream.status_code, stream.json["error"]["code"]) == (400, "host_not_allowed")
    assert len(fake_upstream.requests) == sent
    healthz = rebound.get("/healthz", base_url="http://attacker.example:8714")  # load balancers use any name
    assert healthz.status_code == 200
    own = app.test_client().get("/socket.io/?EIO=4&transport=polling", base_url="http://127.0.0.1:8714")
    assert own.status_code == 200 and own.text.startswith("0{")
