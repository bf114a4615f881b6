"""`POST /message/stream` against the real server in each mode, read incrementally as a browser's fetch would."""

from __future__ import annotations

import json

import pytest
import requests

from tests.clients import chunks_through, ndjson_events, post_stream, stream_lines
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import check_cursor
from tests.waits import until

NDJSON = "application/x-ndjson"


def test_plain_text_is_one_chunk_per_line_with_br_for_newlines(live_server, fake_upstream: FakeUpstream,
                                                               gate: str) -> None:
    parts = ["Hello", " wor", "ld\nsecond", " line\n"]
    # Lockstep: the fake sends each piece only once the one before has arrived, so each is its own chunk.
    with post_stream(live_server.url, {"prompt": controls(text=parts, lockstep=gate)}) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Accel-Buffering"] == "no"
        lines = []
        for line in stream_lines(response):
            lines.append(line)
            fake_upstream.open_gate(f"{gate}:{len(lines)}")
    assert lines == ["Hello", " wor", "ld<br />second", " line<br />"]
    assert "".join(lines).replace("<br />", "\n") == "".join(parts)  # what the seed's streamPost rebuilds


def test_ndjson_is_exact_and_ends_with_one_done(live_server) -> None:
    parts = ["a\n", "naïve ", "日本", "😀", "\"quoted\" \\ back"]
    with post_stream(live_server.url, {"prompt": controls(text=parts), "stream_id": "nd"}, accept=NDJSON) as response:
        assert response.headers["Content-Type"] == "application/x-ndjson; charset=utf-8"
        assert response.headers["X-Stream-Id"] == "nd"
        events = list(ndjson_events(response))
    *chunks, done = events
    assert {c["type"] for c in chunks} == {"chunk"}
    check_cursor([(c["seq"], c["text"]) for c in chunks], parts, done)
    assert "".join(c["text"] for c in chunks) == "".join(parts)
    assert done["type"] == "done" and done["stream_id"] == "nd"
    assert done["finish_reason"] == "stop" and done["chunks"] == len(parts)
    assert done["usage"]["completion_tokens"] == len(parts)


def test_server_sent_events(live_server) -> None:
    with post_stream(live_server.url, {"prompt": controls(chunks=3, finish_reason="length")},
                     accept="text/event-stream") as response:
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        blocks = response.text.strip().split("\n\n")
    parsed = []
    for block in blocks:
        event_line, *id_line, data_line = block.split("\n")
        data = json.loads(data_line.removeprefix("data: "))
        assert id_line == ([f"id: {data['seq']}"] if event_line == "event: chunk" else [])  # the cursor
        parsed.append((event_line.removeprefix("event: "), data))
    *chunks, (last, done) = parsed
    assert {name for name, _ in chunks} == {"chunk"} and last == "done"
    check_cursor([(data["seq"], data["text"]) for _, data in chunks], ["w0 ", "w1 ", "w2 "], done)
    assert done["finish_reason"] == "length"


def test_chunks_arrive_before_the_upstream_finishes(gate: str, live_server, fake_upstream: FakeUpstream) -> None:
    completed = fake_upstream.completed
    payload = {"prompt": controls(chunks=5, gate=gate, hold_after=2)}
    with post_stream(live_server.url, payload, accept=NDJSON) as response:
        events = ndjson_events(response)
        early = chunks_through(events, 1)  # the two pieces before the gate, in one chunk or two
        assert "".join(e["text"] for e in early) == "w0 w1 "  # held back by the gate: these were not buffered
        assert fake_upstream.completed == completed
        fake_upstream.open_gate(gate)
        rest = list(events)
    *chunks, done = early + rest
    check_cursor([(c["seq"], c["text"]) for c in chunks], [f"w{i} " for i in range(5)], done)


def test_client_going_away_aborts_the_upstream(live_server, fake_upstream: FakeUpstream) -> None:
    aborted = fake_upstream.aborted
    response = post_stream(live_server.url, {"prompt": controls(chunks=1000, delay=0.02)}, accept=NDJSON)
    next(ndjson_events(response))
    response.close()
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=5)
    assert until(lambda: live_server.streams() == 0, timeout=5)


def test_plain_text_ends_a_failed_stream_with_an_error_line(live_server) -> None:
    """The NDJSON side of every fault is in test_fault_matrix.py; plain text has its own last line."""
    with post_stream(live_server.url, {"prompt": controls(fault="drop", drop_after=2)}) as response:
        assert response.status_code == 200
        *lines, last = list(stream_lines(response))
    assert "".join(lines) == "w0 w1 "
    assert last.startswith("[error upstream_unavailable] ")


@pytest.mark.parametrize(
    "body, headers, status, fragment",
    [
        ("{not json", {"Content-Type": "application/json"}, 400, "not valid JSON"),
        ('{"prompt": "x"}', {"Content-Type": "text/plain"}, 415, "application/json"),
        ("[1, 2]", {"Content-Type": "application/json"}, 400, "JSON object"),
        ('{"prompt": null}', {"Content-Type": "application/json"}, 400, "either"),
        ('{"prompt": "x", "model": "nope"}', {"Content-Type": "application/json"}, 400, "Unknown model"),
        # chunked (a list is sent as an iterator): the server reads MAX_REQUEST_BYTES + 1 of it, then refuses; a
        # Content-Length over the limit is refused unread, which the client only sees once its whole body fits in
        # the sockets' buffers (test_extension_fast.py has that 413)
        (['{"prompt": "', "x" * 8_500_000, '"}'], {"Content-Type": "application/json"}, 413, "large"),
    ],
)
def test_bad_bodies_get_a_coded_400(live_server, fake_upstream, body, headers, status, fragment) -> None:
    sent = len(fake_upstream.requests)
    data = iter(body) if isinstance(body, list) else body
    response = requests.post(f"{live_server.url}/message/stream", data=data, headers=headers, timeout=20)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and fragment in error["message"]
    assert len(fake_upstream.requests) == sent


def test_healthz(live_server) -> None:
    response = requests.get(f"{live_server.url}/healthz", timeout=5)
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_http_and_socketio_side_by_side(live_server, sio_client) -> None:
    """Both transports at once on one server, each getting only its own text."""
    sio_client.start({"prompt": controls(text=["s1 ", "s2 "], delay=0.02), "stream_id": "side"})
    with post_stream(live_server.url, {"prompt": controls(text=["h1 ", "h2 "], delay=0.02)}, accept=NDJSON) as r:
        http_text = "".join(e.get("text", "") for e in ndjson_events(r))
    sio_client.wait_terminal("side")
    assert http_text == "h1 h2 "
    assert "".join(t for _, t in sio_client.chunks("side")) == "s1 s2 "


def test_credentials_in_the_base_url_stay_out_of_the_log(fake_upstream: FakeUpstream, tmp_path) -> None:
    from tests.conftest import start_server, stop_server, upstream_env
    from tests.outcomes import run_http

    env = upstream_env(fake_upstream)
    env["OPENAI_BASE_URL"] = env["OPENAI_BASE_URL"].replace("http://", "http://relay:s3cret-pw@")
    server = start_server("gevent", env, tmp_path / "server.log")
    try:
        sent = len(fake_upstream.requests)
        outcome = run_http(server.url, {"prompt": controls(chunks=2)})
        assert len(outcome.terminals) == 1 and len(fake_upstream.requests) > sent  # the upstream was asked
    finally:
        stop_server(server)
    log = server.log()
    assert "stream_end" in log and "s3cret-pw" not in log
