"""GET /metrics on the real server, in both modes: after a known mix of streams over both transports (completed,
stopped, gone, failed upstream, refused), a scrape shows exactly those counts and codes, and nothing else; no
label or value holds a prompt, a reply, a key, a token or a stream id; a proxied request never gets them.

A fresh server per mode (module scope), so that every count is exact. Tokens are on, so that a refused connect
can be `unauthorized`; MAX_STREAMS_PER_CLIENT=1, so that a second stream beside a held one is `too_many_streams`.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
import socketio

from chat_relay.config import Settings
from tests.clients import DONE, SioProbe, ndjson_events
from tests.conftest import API_KEY, MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.metrics_scrape import check_bounded, labels, relay_samples, scrape_text
from tests.outcomes import run_http, run_socketio
from tests.waits import until

TOKEN = "tok-metrics-9d2f61c4"
EVIL_ORIGIN = "http://evil.example"
MARK = "prompt-marker-3e8a5b"  # in every prompt: it must never show in the metrics
REPLY = "reply-marker-71c0d2"
TEXT = ["Hello ", f"{REPLY} ", "world"]  # a reply's three pieces
MODEL = "fake-model"
MODELS = ["fake-model", "fake-model-2", "not-on-upstream"]  # upstream_env's ALLOWED_MODELS
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module", params=MODES)
def server(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    env = {**upstream_env(fake_upstream), "AUTH_TOKENS": TOKEN, "MAX_STREAMS_PER_CLIENT": "1"}
    server = start_server(request.param, env, tmp_path_factory.mktemp(f"metrics-{request.param}") / "server.log")
    yield server
    stop_server(server)


def ask(**fake: object) -> str:
    return controls(mark=MARK, **fake)  # the fake ignores `mark`


def held(gate: str) -> str:
    return ask(text=TEXT, gate=gate, hold_after=1, heartbeat=0.3)  # sends "Hello ", then waits for the gate


def settled(server: LiveServer, fake: FakeUpstream) -> None:
    """Every stream has ended and left the registry, its counts added (they are, before it leaves)."""
    assert until(lambda: server.streams() == 0, timeout=15)


def refused_connect(url: str, **options: object) -> None:
    client = socketio.Client(reconnection=False, **options)  # type: ignore[arg-type]
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(url, transports=["websocket"], wait_timeout=10, auth={"token": TOKEN})
    client.disconnect()


def socketio_mix(server: LiveServer, fake: FakeUpstream, gate: str, gone_gate: str) -> list[str]:
    """Completed, stopped, too_many_streams, upstream_error (retried once), upstream_auth, invalid_request,
    client_gone, and three refused connects. Returns the resume tokens it got."""
    probe = SioProbe(server.url, auth={"token": TOKEN})
    try:
        done = run_socketio(probe, {"prompt": ask(text=TEXT), "stream_id": "sio-done"})
        assert done.terminal["finish_reason"] == "stop" and done.text == "".join(TEXT)
        settled(server, fake)
        assert probe.start({"prompt": held(gate), "stream_id": "sio-held"}) == {"stream_id": "sio-held"}
        probe.wait_chunks("sio-held", 1)
        extra = probe.start({"prompt": ask(), "stream_id": "sio-extra"})
        assert extra["error"]["code"] == "too_many_streams"
        assert probe.stop("sio-held") == {"stream_id": "sio-held"}
        assert probe.wait_terminal("sio-held") == (DONE, {"stream_id": "sio-held", "finish_reason": "cancelled",
                                                          "chunks": 1, "usage": None})
        settled(server, fake)
        for fault, code in (("500", "upstream_error"), ("401", "upstream_auth")):
            failed = run_socketio(probe, {"prompt": ask(fault=fault), "stream_id": f"sio-{fault}"})
            assert failed.terminal["code"] == code
            settled(server, fake)
        assert probe.start({"promt": MARK})["error"]["code"] == "invalid_request"
        tokens = list(probe.tokens.values())
    finally:
        probe.close()

    gone = SioProbe(server.url, auth={"token": TOKEN})
    gone.start({"prompt": held(gone_gate), "stream_id": "sio-gone"})
    gone.wait_chunks("sio-gone", 1)
    tokens += gone.tokens.values()
    aborted = fake.aborted
    gone.close()  # RESUME_GRACE=0: the stream is cancelled as client_gone
    assert fake.wait_for(lambda f: f.aborted > aborted)
    settled(server, fake)

    anonymous = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):  # no token: unauthorized
        anonymous.connect(server.url, transports=["websocket"], wait_timeout=10)
    anonymous.disconnect()
    refused_connect(server.url, websocket_extra_options={"origin": EVIL_ORIGIN})  # origin_not_allowed
    refused_connect(server.url, websocket_extra_options={"host": "evil.example"})  # host_not_allowed
    return tokens


def http_mix(server: LiveServer, fake: FakeUpstream, gate: str) -> list[str]:
    """Completed, stopped (from another request, with the resume token), too_many_streams, upstream_error,
    upstream_auth, invalid_request, and the three access refusals."""
    done = run_http(server.url, {"prompt": ask(text=TEXT)}, headers=BEARER)
    assert done.terminal["finish_reason"] == "stop" and done.text == "".join(TEXT)
    settled(server, fake)

    events: list[dict] = []
    first = threading.Event()
    head: dict[str, str] = {}

    def read() -> None:
        with requests.post(f"{server.url}/message/stream", json={"prompt": held(gate), "stream_id": "http-held"},
                           headers={**BEARER, "Accept": "application/x-ndjson"}, stream=True, timeout=20) as response:
            head.update(response.headers)
            for event in ndjson_events(response):
                events.append(event)
                first.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(10)
    extra = run_http(server.url, {"prompt": ask()}, headers=BEARER)
    assert (extra.status, extra.terminal["code"]) == (429, "too_many_streams")
    stop = requests.post(f"{server.url}/message/stream/http-held/stop", timeout=10,
                         headers={**BEARER, "X-Resume-Token": head["X-Resume-Token"]})
    assert stop.status_code == 200, stop.text
    reader.join(10)
    assert events[-1]["type"] == "done" and events[-1]["finish_reason"] == "cancelled", events
    settled(server, fake)

    for fault, code in (("500", "upstream_error"), ("401", "upstream_auth")):
        failed = run_http(server.url, {"prompt": ask(fault=fault)}, headers=BEARER)
        assert (failed.status, failed.terminal["code"]) == (502, code)
        settled(server, fake)
    for headers, status, code in (({**BEARER}, 400, "invalid_request"),
                                  ({}, 401, "unauthorized"),
                                  ({**BEARER, "Origin": EVIL_ORIGIN}, 403, "origin_not_allowed"),
                                  ({**BEARER, "Host": "evil.example"}, 400, "host_not_allowed")):
        body = {"promt": MARK} if code == "invalid_request" else {"prompt": ask()}
        refused = run_http(server.url, body, headers=headers)
        assert (refused.status, refused.terminal["code"]) == (status, code)
    body_refusals(server)
    return [head["X-Resume-Token"]]


BODY_PATHS = ("/message/stream", "/api/chat")  # both endpoints that start a stream over HTTP


def body_refusals(server: LiveServer) -> None:
    """At each stream endpoint, a body refused before it is parsed: too large (413), not JSON (415), broken
    JSON (400). Each is one invalid_request refusal over http."""
    for path in BODY_PATHS:
        assert unread_oversized_body(server.url, path) == 413
        for data, content_type, status in (('{"prompt": "x"}', "text/plain", 415),
                                           ("{not json", "application/json", 400)):
            response = requests.post(f"{server.url}{path}", data=data, timeout=10,
                                     headers={**BEARER, "Content-Type": content_type})
            assert response.status_code == status, (path, response.status_code, response.text[:300])
            assert response.json()["error"]["code"] == "invalid_request"


def unread_oversized_body(url: str, path: str) -> int:
    """The status of a POST whose Content-Length is one byte over MAX_REQUEST_BYTES, answered before any of the
    body is sent (the server refuses it unread, then hangs up)."""
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=10)
    try:
        connection.putrequest("POST", path)
        for name, value in {**BEARER, "Content-Type": "application/json",
                            "Content-Length": str(Settings.model_fields["max_request_bytes"].default + 1)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        assert response.read() and response.getheader("Content-Type") == "application/json"
        return response.status
    finally:
        connection.close()


def expected_counts() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The mix above, as the metrics must count it: every non-zero counter and histogram count, and no other."""
    reply, first_piece = len("".join(TEXT).encode()), len(TEXT[0].encode())
    prompt_tokens = len(ask(text=TEXT)) // 4  # what the fake reports for a one-message prompt
    expected: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}

    def add(name: str, value: float, **where: str) -> None:
        expected[(name, labels(**where))] = value

    for transport, ended in (("socketio", ("completed", "stopped", "upstream_error", "upstream_auth", "client_gone")),
                             ("http", ("completed", "stopped", "upstream_error", "upstream_auth"))):
        add("relay_streams_started_total", len(ended), transport=transport, model=MODEL)
        for cause in ended:
            add("relay_streams_ended_total", 1, transport=transport, model=MODEL, cause=cause)
        add("relay_stream_duration_seconds_count", len(ended), transport=transport, model=MODEL)
        delivered = 3 if transport == "socketio" else 2  # completed, stopped (and gone): each had a first chunk
        add("relay_client_first_chunk_seconds_count", delivered, transport=transport)
        add("relay_chunks_relayed_total", 3 + (delivered - 1), transport=transport, model=MODEL)
        add("relay_bytes_relayed_total", reply + (delivered - 1) * first_piece, transport=transport, model=MODEL)
        for code in ("too_many_streams", "invalid_request", "unauthorized", "origin_not_allowed", "host_not_allowed"):
            add("relay_refusals_total", 1, transport=transport, code=code)
    add("relay_refusals_total", 1 + 3 * len(BODY_PATHS), transport="http", code="invalid_request")  # body_refusals
    add("relay_upstream_first_chunk_seconds_count", 5, model=MODEL)
    add("relay_prompt_tokens_total", 2 * prompt_tokens, model=MODEL)
    add("relay_completion_tokens_total", 2 * len(TEXT), model=MODEL)
    add("relay_upstream_errors_total", 2, code="upstream_error")
    add("relay_upstream_errors_total", 2, code="upstream_auth")
    add("relay_upstream_retries_total", 2, code="upstream_error")  # UPSTREAM_MAX_RETRIES=1: one retry per 500
    return expected


def test_a_known_mix_of_streams_is_counted_exactly(server: LiveServer, fake_upstream: FakeUpstream) -> None:
    gates = [f"gate-metrics-{server.mode}-{name}" for name in ("sio", "gone", "http")]
    tokens = socketio_mix(server, fake_upstream, gates[0], gates[1])
    tokens += http_mix(server, fake_upstream, gates[2])
    watcher = SioProbe(server.url, auth={"token": TOKEN})  # one connection open while scraping
    try:
        assert until(lambda: server.connections() == 1)
        text = scrape_text(server.url)
    finally:
        watcher.close()
    samples = relay_samples(text)

    counted = {key: value for key, value in samples.items()
               if key[0].endswith(("_total", "_count")) and value}
    assert counted == expected_counts()
    assert samples[("relay_streams_running", frozenset())] == 0
    assert samples[("relay_socketio_connections", frozenset())] == 1
    assert samples[("relay_ready", frozenset())] == 1
    assert "process_resident_memory_bytes" in text and "python_info" in text

    check_bounded(samples, MODELS)
    for secret in (API_KEY, TOKEN, MARK, REPLY, *tokens, "sio-done", "sio-held", "sio-gone", "evil.example"):
        assert secret not in text, secret


def test_metrics_only_for_a_direct_scraper(server: LiveServer) -> None:
    """METRICS_ALLOW is loopback by default: the tests' own requests come straight from 127.0.0.1. A request that
    says it came through a proxy never gets them, nor one for a host name the server does not answer to."""
    assert requests.get(f"{server.url}/metrics", timeout=10).status_code == 200
    for headers in ({"X-Forwarded-For": "127.0.0.1"}, {"Forwarded": "for=127.0.0.1"}, {"X-Real-IP": "127.0.0.1"},
                    {"Host": "evil.example"}):
        response = requests.get(f"{server.url}/metrics", headers=headers, timeout=10)
        assert response.status_code == 404 and "relay_" not in response.text, headers
    assert requests.get(f"{server.url}/readyz", timeout=10).json() == {"status": "ready"}
