"""Resuming a stream on one instance (no Redis), in both modes, over both transports (docs/protocol.md,
"Resuming a stream"): the rest of the reply from the cursor with no gap and no repeat, a replay after the
end within RESUME_TTL, the grace period after a disconnect, and refusals that tell nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests

from tests.clients import DONE, SioProbe, chunks_through, ndjson_events, post_stream
from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import check_cursor
from tests.waits import until

NDJSON = "application/x-ndjson"
GRACE, TTL = 2, 4


def words(count: int) -> list[str]:
    return [f"w{i} " for i in range(count)]


@pytest.fixture(scope="module", params=MODES)
def resumable(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    """A server with a grace period (as by default, shorter) and a short RESUME_TTL."""
    env = {**upstream_env(fake_upstream), "RESUME_GRACE": str(GRACE), "RESUME_TTL": str(TTL)}
    server = start_server(request.param, env, tmp_path_factory.mktemp("resume") / "server.log")
    yield server
    stop_server(server)


def held(gate: str, chunks: int = 10, hold_after: int = 4) -> str:
    return controls(chunks=chunks, gate=gate, hold_after=hold_after, heartbeat=0.3)


def resume_http(server: LiveServer, stream_id: str, token: str, after: int | None = None,
                accept: str = NDJSON, **headers: str) -> requests.Response:
    query = "" if after is None else f"?after_seq={after}"
    return requests.get(f"{server.url}/message/stream/{stream_id}{query}", stream=True, timeout=20,
                        headers={"Accept": accept, "X-Resume-Token": token, **headers})


def test_a_reconnected_client_gets_the_rest_exactly_once(resumable: LiveServer, fake_upstream: FakeUpstream,
                                                          gate: str) -> None:
    first = SioProbe(resumable.url)
    ack = first.client.call("chatgpt_description", {"prompt": held(gate), "stream_id": "r1"})
    assert ack["stream_id"] == "r1" and ack["resume_token"]
    first.wait_chunks("r1", 4)
    seen = first.chunks("r1")
    first.close()  # the connection drops mid-reply
    aborted = fake_upstream.aborted
    second = SioProbe(resumable.url)
    try:
        assert second.resume("r1", seen[-1][0], ack["resume_token"]) == {"stream_id": "r1"}
        fake_upstream.open_gate(gate)
        name, done = second.wait_terminal("r1")
        second.settle()
        assert name == DONE and done["finish_reason"] == "stop" and len(second.terminals("r1")) == 1
        rest = second.chunks("r1")
        check_cursor(seen + rest, words(10), done)  # no gap, no repeat, across both connections
        assert fake_upstream.aborted == aborted  # the upstream never stopped
    finally:
        second.close()


def test_a_finished_stream_replays_whole_until_its_ttl(resumable: LiveServer) -> None:
    probe = SioProbe(resumable.url)
    try:
        probe.start({"prompt": controls(chunks=5), "stream_id": "done1"})
        _, done = probe.wait_terminal("done1")
        token = probe.tokens["done1"]
        again = SioProbe(resumable.url)
        try:
            assert again.resume("done1", -1, token) == {"stream_id": "done1"}
            assert again.wait_terminal("done1") == (DONE, done)
            check_cursor(again.chunks("done1"), words(5), done)
            assert "".join(t for _, t in again.chunks("done1")) == "".join(words(5))
        finally:
            again.close()
        deadline = time.monotonic() + TTL + 10
        while True:  # the expiry is a time, so wait for it: the condition is the server's answer
            ack = probe.resume("done1", -1, token)
            if "error" in ack or time.monotonic() > deadline:
                break
            probe.wait_terminal("done1")
            time.sleep(0.2)
        assert ack["error"]["code"] == "stream_expired"
    finally:
        probe.close()


def test_wrong_tokens_and_streams_learn_nothing(resumable: LiveServer) -> None:
    probe = SioProbe(resumable.url)
    try:
        probe.start({"prompt": controls(chunks=2), "stream_id": "mine"})
        probe.wait_terminal("mine")
        token = probe.tokens["mine"]
        refusals = [
            probe.resume("mine", -1, token[:-2] + "xx"),  # forged
            probe.resume("other", -1, token),  # another stream_id
            probe.resume("nosuch", -1, "not-a-token"),
        ]
        messages = {r["error"]["message"] for r in refusals}
        assert {r["error"]["code"] for r in refusals} == {"invalid_request"} and len(messages) == 1
        bad = probe.client.call("chatgpt_description_resume", {"stream_id": "mine", "after_seq": -2,
                                                                "resume_token": token})
        assert bad["error"]["code"] == "invalid_request" and "after_seq" in bad["error"]["message"]
    finally:
        probe.close()


def test_nobody_resumes_within_the_grace_period(resumable: LiveServer, fake_upstream: FakeUpstream) -> None:
    probe = SioProbe(resumable.url)
    probe.start({"prompt": controls(chunks=1000, delay=0.02), "stream_id": "left"})
    probe.wait_chunks("left", 2)
    aborted = fake_upstream.aborted
    left_at = time.monotonic()
    probe.close()
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=GRACE + 10)
    assert time.monotonic() - left_at >= GRACE - 0.5  # not at once: the grace period came first
    assert until(lambda: resumable.streams() == 0, timeout=5)
    assert "cause=client_gone" in resumable.log()


def test_resume_within_the_grace_period_keeps_the_stream(resumable: LiveServer, fake_upstream: FakeUpstream) -> None:
    """HTTP this time: the first response is closed mid-reply, and the resume is a GET with after_seq. (The
    stream keeps going meanwhile: HTTP headers come with the first text, so a held stream would hold them.)"""
    aborted = fake_upstream.aborted
    response = post_stream(resumable.url, {"prompt": controls(chunks=60, delay=0.03), "stream_id": "h1"},
                           accept=NDJSON)
    token = response.headers["X-Resume-Token"]
    events = ndjson_events(response)
    seen = chunks_through(events, 3)
    response.close()
    with resume_http(resumable, "h1", token, after=seen[-1]["seq"]) as again:
        assert again.status_code == 200 and again.headers["X-Stream-Id"] == "h1"
        *rest, done = ndjson_events(again)
    check_cursor([(e["seq"], e["text"]) for e in seen + rest], words(60), done)
    assert done["type"] == "done" and done["finish_reason"] == "stop"
    assert fake_upstream.aborted == aborted


def test_sse_resume_honours_last_event_id(resumable: LiveServer) -> None:
    with post_stream(resumable.url, {"prompt": controls(chunks=6), "stream_id": "s1"},
                     accept="text/event-stream") as first:
        token = first.headers["X-Resume-Token"]
        assert first.text.count("event: chunk")
    with resume_http(resumable, "s1", token, after=0, accept="text/event-stream", **{"Last-Event-ID": "2"}) as again:
        blocks = again.text.strip().split("\n\n")
    chunks = [json.loads(b.split("data: ", 1)[1]) for b in blocks if b.startswith("event: chunk")]
    assert "".join(c["text"] for c in chunks) == "w3 w4 w5 "  # Last-Event-ID wins over after_seq
    assert blocks[-1].startswith("event: done")


def test_http_refusals_and_stop_with_the_token(resumable: LiveServer, fake_upstream: FakeUpstream) -> None:
    assert resume_http(resumable, "x", "forged").status_code == 400
    probe = SioProbe(resumable.url)
    try:
        probe.start({"prompt": controls(chunks=1000, delay=0.02), "stream_id": "stopme"})
        probe.wait_chunks("stopme", 1)
        aborted = fake_upstream.aborted
        url = f"{resumable.url}/message/stream/stopme/stop"
        assert requests.post(url, headers={"X-Resume-Token": "forged"}, timeout=10).status_code == 400
        stopped = requests.post(url, headers={"Authorization": f"Bearer {probe.tokens['stopme']}"}, timeout=10)
        assert stopped.status_code == 200 and stopped.json() == {"stream_id": "stopme"}
        name, done = probe.wait_terminal("stopme")
        assert (name, done["finish_reason"]) == (DONE, "cancelled")
        assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=5)
    finally:
        probe.close()


def test_stop_from_another_connection_with_the_token(resumable: LiveServer, fake_upstream: FakeUpstream) -> None:
    owner, other = SioProbe(resumable.url), SioProbe(resumable.url)
    try:
        owner.start({"prompt": controls(chunks=1000, delay=0.02), "stream_id": "far"})
        owner.wait_chunks("far", 1)
        assert other.stop("far")["error"]["code"] == "invalid_request"  # not its stream, and no token
        ack = other.client.call("chatgpt_description_stop", {"stream_id": "far", "resume_token": owner.tokens["far"]})
        assert ack == {"stream_id": "far"}
        assert owner.wait_terminal("far")[1]["finish_reason"] == "cancelled"
    finally:
        owner.close()
        other.close()


def test_a_token_in_the_query_never_reaches_the_log(resumable: LiveServer) -> None:
    """EventSource can only send the resume token in the URL: the access lines log the path without it."""
    probe = SioProbe(resumable.url)
    try:
        probe.start({"prompt": controls(chunks=2), "stream_id": "q"})
        probe.wait_terminal("q")
        token = probe.tokens["q"]
    finally:
        probe.close()
    with requests.get(f"{resumable.url}/message/stream/q?resume_token={token}", timeout=20,
                      headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200 and "event: done" in response.text
    resumable.wait_log("/message/stream/q")  # the access line is written after the response has gone out
    assert token not in resumable.log()

