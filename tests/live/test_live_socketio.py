"""The Socket.IO protocol against the real server (gunicorn+gevent, eventlet), a real client and the fake upstream."""

from __future__ import annotations

import pytest

from tests.clients import CHUNK, DONE, ERROR, SioProbe
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import check_cursor


def assert_complete(probe: SioProbe, stream_id: str, pieces: list[str]) -> tuple[str, dict]:
    """Text complete and in order, each chunk exactly the pieces its seq says, exactly one terminal event."""
    terminal = probe.wait_terminal(stream_id)
    probe.settle()
    chunks = probe.chunks(stream_id)
    check_cursor(chunks, pieces, terminal[1] if terminal[0] == DONE else None)
    assert "".join(text for _, text in chunks) == "".join(pieces)
    assert len(probe.terminals(stream_id)) == 1, probe.terminals(stream_id)
    return terminal


def words(count: int) -> list[str]:
    """The fake upstream's default pieces."""
    return [f"w{i} " for i in range(count)]


def test_streams_the_whole_reply_in_order(sio_client: SioProbe) -> None:
    ack = sio_client.start({"prompt": controls(chunks=30), "stream_id": "whole"})
    assert ack == {"stream_id": "whole"}
    name, done = assert_complete(sio_client, "whole", words(30))
    assert name == DONE
    assert done["finish_reason"] == "stop" and done["chunks"] == 30
    assert done["usage"]["completion_tokens"] == 30


def test_generates_a_stream_id_and_accepts_messages(sio_client: SioProbe, fake_upstream: FakeUpstream) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": controls(chunks=3)},
    ]
    ack = sio_client.start({"messages": messages, "model": "fake-model-2", "temperature": 0.5, "max_tokens": 50})
    stream_id = ack["stream_id"]
    assert len(stream_id) >= 16
    assert_complete(sio_client, stream_id, ["w0 ", "w1 ", "w2 "])
    sent = fake_upstream.requests[-1]
    assert sent["messages"] == messages
    assert sent["model"] == "fake-model-2" and sent["temperature"] == 0.5 and sent["max_tokens"] == 50
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_exact_text_with_newlines_unicode_and_empty_deltas(sio_client: SioProbe) -> None:
    parts = ["Line one\n", "", "naïve café ", "日本語 ", "😀", "\n\nend"]
    sio_client.start({"prompt": controls(text=parts), "stream_id": "exact"})
    _, done = assert_complete(sio_client, "exact", parts)
    assert done["chunks"] == 5  # the empty delta is not relayed, nor numbered


def test_first_chunks_arrive_before_the_upstream_finishes(
    gate: str, sio_client: SioProbe, fake_upstream: FakeUpstream
) -> None:
    completed = fake_upstream.completed
    sio_client.start({"prompt": controls(chunks=6, gate=gate, hold_after=3), "stream_id": "inc"})
    # The fake holds the rest of the stream until the gate opens: these chunks cannot have been batched.
    sio_client.wait_chunks("inc", 3)
    assert fake_upstream.completed == completed
    assert sio_client.terminals("inc") == []
    fake_upstream.open_gate(gate)
    assert_complete(sio_client, "inc", words(6))


def test_only_the_requesting_client_receives_the_stream(sio_factory) -> None:
    asker, bystander = sio_factory(), sio_factory()
    asker.start({"prompt": controls(chunks=10), "stream_id": "mine"})
    assert_complete(asker, "mine", words(10))
    bystander.settle()
    assert bystander.events == []


def test_same_stream_id_on_two_clients_stays_apart(sio_factory) -> None:
    a, b = sio_factory(), sio_factory()
    a.start({"prompt": controls(text=["a1 ", "a2 "], delay=0.01), "stream_id": "same"})
    b.start({"prompt": controls(text=["b1 ", "b2 ", "b3 "], delay=0.01), "stream_id": "same"})
    assert_complete(a, "same", ["a1 ", "a2 "])
    assert_complete(b, "same", ["b1 ", "b2 ", "b3 "])


def test_finish_reason_and_usage_pass_through(sio_client: SioProbe) -> None:
    sio_client.start({"prompt": controls(chunks=4, finish_reason="length"), "stream_id": "len"})
    _, done = assert_complete(sio_client, "len", words(4))
    assert done["finish_reason"] == "length"
    assert done["usage"] == {"prompt_tokens": done["usage"]["prompt_tokens"], "completion_tokens": 4,
                             "total_tokens": done["usage"]["prompt_tokens"] + 4}
    sio_client.start({"prompt": controls(chunks=2, usage=False), "stream_id": "nousage"})
    _, done = assert_complete(sio_client, "nousage", words(2))
    assert done["usage"] is None


def test_stop_cancels_and_aborts_the_upstream(sio_client: SioProbe, fake_upstream: FakeUpstream, live_server) -> None:
    aborted = fake_upstream.aborted
    sio_client.start({"prompt": controls(chunks=1000, delay=0.02), "stream_id": "long"})
    sio_client.wait_chunks("long", 2)
    assert sio_client.stop("long") == {"stream_id": "long"}
    name, done = sio_client.wait_terminal("long")
    assert (name, done["finish_reason"]) == (DONE, "cancelled")
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=5)
    sio_client.settle()
    assert len(sio_client.terminals("long")) == 1
    check_cursor(sio_client.chunks("long"), words(1000), done)
    assert done["chunks"] < 1000
    assert live_server.streams() == 0


def test_stop_while_the_upstream_has_not_answered(sio_client: SioProbe, fake_upstream: FakeUpstream) -> None:
    started = len(fake_upstream.requests)
    sio_client.start({"prompt": controls(fault="stall_headers"), "stream_id": "noheaders"})
    fake_upstream.wait_for(lambda f: len(f.requests) > started)
    aborted = fake_upstream.aborted
    sio_client.stop("noheaders")
    name, done = sio_client.wait_terminal("noheaders")
    assert (name, done["finish_reason"], done["chunks"]) == (DONE, "cancelled", 0)
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=5)


def test_disconnect_aborts_the_upstream(live_server, fake_upstream: FakeUpstream) -> None:
    probe = SioProbe(live_server.url)
    aborted = fake_upstream.aborted
    probe.start({"prompt": controls(chunks=1000, delay=0.02), "stream_id": "gone"})
    probe.wait_chunks("gone", 1)
    probe.close()
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=5)


def test_stop_only_reaches_your_own_streams(gate: str, sio_factory, fake_upstream: FakeUpstream) -> None:
    owner, intruder = sio_factory(), sio_factory()
    owner.start({"prompt": controls(chunks=8, gate=gate, hold_after=2), "stream_id": "guessable"})
    owner.wait_chunks("guessable", 2)
    assert intruder.stop("guessable")["error"]["code"] == "invalid_request"
    fake_upstream.open_gate(gate)
    _, done = assert_complete(owner, "guessable", words(8))
    assert done["finish_reason"] == "stop"


def test_stop_of_an_unknown_stream_is_an_error_ack(sio_client: SioProbe) -> None:
    assert sio_client.stop("nothing-here")["error"]["code"] == "invalid_request"
    sio_client.settle()
    assert sio_client.events == []  # a failed stop does not look like the end of some stream


def test_reusing_a_running_stream_id_is_refused(gate: str, sio_client: SioProbe, fake_upstream: FakeUpstream) -> None:
    sio_client.start({"prompt": controls(chunks=4, gate=gate, hold_after=1), "stream_id": "dup"})
    sio_client.wait_chunks("dup", 1)
    ack = sio_client.start({"prompt": "again", "stream_id": "dup"})
    assert ack["error"]["code"] == "invalid_request"
    fake_upstream.open_gate(gate)
    assert_complete(sio_client, "dup", words(4))


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ("just a string", "JSON object"),
        ({"prompt": 42}, "prompt"),
        ({}, "either 'prompt' or 'messages'"),
        ({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, "either"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"prompt": "x", "model": "gpt-unknown"}, "Unknown model"),
        ({"prompt": "x", "temperature": "hot"}, "temperature"),
        ({"prompt": "x", "max_tokens": 10**9}, "max_tokens"),
        ({"prompt": "x" * 40_000}, "too long"),
        ({"prompt": "x", "stream_id": "has spaces"}, "stream_id"),
        ({"prompt": "x", "promt": "typo"}, "promt"),
    ],
)
def test_invalid_requests_get_an_error_ack_and_event(sio_client, fake_upstream, payload, fragment) -> None:
    sent = len(fake_upstream.requests)
    ack = sio_client.start(payload)
    assert ack["error"]["code"] == "invalid_request"
    assert fragment in ack["error"]["message"]
    sio_client.wait(lambda p: any(n == ERROR for n, _ in p.events))
    [(_, event)] = sio_client.events
    assert event == {"stream_id": None, **ack["error"]}
    assert len(fake_upstream.requests) == sent  # a rejected request never reaches the upstream


def test_a_rejected_request_names_its_stream_id(sio_client: SioProbe) -> None:
    ack = sio_client.start({"prompt": "", "stream_id": "named"})
    assert ack["error"]["code"] == "invalid_request"
    sio_client.wait(lambda p: bool(p.terminals("named")))
    assert sio_client.terminals("named")[0][1]["code"] == "invalid_request"


def test_one_client_many_concurrent_streams(sio_client: SioProbe) -> None:
    ids = [f"c{i}" for i in range(8)]
    for i, stream_id in enumerate(ids):
        sio_client.start({"prompt": controls(chunks=10 + i, delay=0.005), "stream_id": stream_id})
    for i, stream_id in enumerate(ids):
        assert_complete(sio_client, stream_id, words(10 + i))


def test_seed_style_client_without_ack_still_gets_chunks(live_server) -> None:
    probe = SioProbe(live_server.url)
    try:
        texts: list[str] = []
        probe.client.on(CHUNK, lambda text, *rest: texts.append(text))  # the seed page's onChunk(value)
        probe.client.emit("chatgpt_description", {"prompt": controls(chunks=3), "stream_id": "seed"})
        probe.wait_terminal("seed")
        assert "".join(texts) == "w0 w1 w2 "
    finally:
        probe.close()
