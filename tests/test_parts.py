"""Typed parts end to end (issue 17), with real servers in both async modes and the fake upstream's scripted
replies: reasoning (both field names, and `<think>` tags), parallel tool calls with their arguments split over
deltas, a refusal and text arrive exactly, in order, under one seq, over Socket.IO, NDJSON and SSE (text/plain
gets the text only); done carries the calls whole and the usage details; a resume from a seq in the middle of
each kind continues exactly, on the same instance and, through Redis, on another."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from chat_relay.streams.parts import Piece, merged
from tests.clients import DONE, SioProbe, post_stream, stream_lines
from tests.conftest import MODES, ROOT, LiveServer, free_port, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls, script_reply
from tests.redis_server import RedisServer, require_redis

NDJSON, SSE = "application/x-ndjson", "text/event-stream"
TRANSPORTS = ["socketio", "ndjson", "sse"]

# One step, one piece: the expected pieces are written out beside the script the fake streams.
STEPS: list[tuple[tuple, Piece]] = [
    (("reasoning_content", "The user"), {"type": "reasoning", "text": "The user"}),
    (("reasoning_content", " wants"), {"type": "reasoning", "text": " wants"}),
    (("reasoning", " the weather."), {"type": "reasoning", "text": " the weather."}),
    (("tool", 0, "call_w", "get_weather", ""),
     {"type": "tool_call", "index": 0, "id": "call_w", "name": "get_weather", "arguments": ""}),
    (("tool", 0, None, None, '{"city":'), {"type": "tool_call", "index": 0, "arguments": '{"city":'}),
    (("tool", 1, "call_t", "get_time", '{"tz":'),
     {"type": "tool_call", "index": 1, "id": "call_t", "name": "get_time", "arguments": '{"tz":'}),
    (("tool", 0, None, None, ' "Oslo"}'), {"type": "tool_call", "index": 0, "arguments": ' "Oslo"}'}),
    (("tool", 1, None, None, ' "CET"}'), {"type": "tool_call", "index": 1, "arguments": ' "CET"}'}),
    (("refusal", "I won't"), {"type": "refusal", "text": "I won't"}),
    (("refusal", " guess."), {"type": "refusal", "text": " guess."}),
    (("text", "It is "), "It is "),
    (("text", "sunny\n"), "sunny\n"),
    (("text", "in Oslo."), "in Oslo."),
]
PIECES = [piece for _, piece in STEPS]
DELTAS = script_reply(*(step for step, _ in STEPS))
CALLS = [{"id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
         {"id": "call_t", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}}]
DETAILS = {"completion_tokens_details": {"reasoning_tokens": 3}, "prompt_tokens_details": {"cached_tokens": 2}}
# Cursors in the middle of each kind: reasoning, a tool call's arguments, the refusal, the text.
MID_KIND = [0, 4, 8, 10]


def scripted(**extra: Any) -> str:
    return controls(deltas=DELTAS, finish_reason="tool_calls", usage_details=DETAILS, **extra)


@pytest.fixture(scope="module", params=MODES)
def parts_server(request: pytest.FixtureRequest, fake_upstream: FakeUpstream,
                 tmp_path_factory) -> Iterator[LiveServer]:
    """A server with REASONING_TAGS on and a grace period, so that a reader may leave and resume."""
    env = {**upstream_env(fake_upstream), "REASONING_TAGS": "true", "RESUME_GRACE": "5", "RESUME_TTL": "30"}
    server = start_server(request.param, env, tmp_path_factory.mktemp("parts") / "server.log")
    yield server
    stop_server(server)


# What a client sees, the same shape for every transport: [(seq, text, parts or None)], then the terminal.

Seen = list[tuple[int, str, list | None]]


def sio_chunks(probe: SioProbe, stream_id: str) -> Seen:
    with probe._cond:
        return [(meta["seq"], text, meta.get("parts")) for name, (text, meta) in probe._of("chatgpt_description_chunk")
                if meta["stream_id"] == stream_id]


def read_ndjson(response: requests.Response) -> tuple[Seen, dict]:
    chunks: Seen = []
    for line in stream_lines(response):
        if not line:
            continue
        event = json.loads(line)
        if event["type"] != "chunk":
            return chunks, event
        assert set(event) <= {"type", "text", "seq", "parts"}
        chunks.append((event["seq"], event["text"], event.get("parts")))
    raise AssertionError("no terminal line")


def read_sse(response: requests.Response) -> tuple[Seen, dict]:
    chunks: Seen = []
    fields: dict[str, str] = {}
    for line in stream_lines(response):
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        data = json.loads(fields["data"])
        if fields["event"] != "chunk":
            return chunks, {"type": fields["event"], **data}
        assert int(fields["id"]) == data["seq"] and set(data) <= {"text", "seq", "parts"}
        chunks.append((data["seq"], data["text"], data.get("parts")))
        fields = {}
    raise AssertionError("no terminal event")


def check_chunks(chunks: Seen, pieces: list[Piece], after: int = -1) -> None:
    """Each chunk is exactly the pieces after the previous one's seq through its own, merged by kind, and `parts`
    is absent exactly when they are all text; the last chunk holds the last piece."""
    assert chunks, "no chunk arrived"
    previous = after
    for seq, text, parts in chunks:
        assert seq > previous, [c[0] for c in chunks]
        want_text, want_parts = merged(pieces[previous + 1:seq + 1])
        assert text == want_text, seq
        assert parts == (None if all(p["type"] == "text" for p in want_parts) else want_parts), seq
        previous = seq
    assert previous == len(pieces) - 1


def check_exact(chunks: Seen, done: dict, after: int = -1) -> None:
    """The script's pieces exactly, from `after` on; the terminal is done, with the calls whole and the usage
    details."""
    check_chunks(chunks, PIECES, after)
    assert done["type"] == "done" and done["finish_reason"] == "tool_calls" and done["chunks"] == len(PIECES)
    assert done["tool_calls"] == CALLS
    assert done["usage"]["reasoning_tokens"] == 3 and done["usage"]["cached_tokens"] == 2


def run(server: LiveServer, transport: str, prompt: str, stream_id: str) -> tuple[Seen, dict]:
    """One request to its end over `transport`."""
    if transport == "socketio":
        probe = SioProbe(server.url)
        try:
            assert probe.start({"prompt": prompt, "stream_id": stream_id})["stream_id"] == stream_id
            name, done = probe.wait_terminal(stream_id)
            probe.settle()
            assert len(probe.terminals(stream_id)) == 1
            return sio_chunks(probe, stream_id), {"type": "done" if name == DONE else "error", **done}
        finally:
            probe.close()
    accept = NDJSON if transport == "ndjson" else SSE
    with post_stream(server.url, {"prompt": prompt, "stream_id": stream_id}, accept=accept) as response:
        assert response.status_code == 200
        return (read_ndjson if transport == "ndjson" else read_sse)(response)


@pytest.mark.parametrize("pace", ["paced", "burst"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_kind_arrives_exactly_in_order(parts_server: LiveServer, transport: str, pace: str) -> None:
    """Paced, most pieces are a chunk each; in a burst, the reader finds many waiting and merges them by kind."""
    prompt = scripted(delay=0.01) if pace == "paced" else scripted(burst=True)
    chunks, done = run(parts_server, transport, prompt, f"every-{transport}-{pace}")
    check_exact(chunks, done)


def test_plain_text_gets_the_text_only(parts_server: LiveServer) -> None:
    with post_stream(parts_server.url, {"prompt": scripted(delay=0.01)}, accept="text/plain") as response:
        lines = list(stream_lines(response))
    text = "".join(line.replace("<br />", "\n") for line in lines)
    assert text == "It is sunny\nin Oslo." and all(lines)  # no empty line for the other kinds' chunks


def test_think_tags_are_reasoning_when_the_setting_is_on(parts_server: LiveServer) -> None:
    deltas = script_reply(("text", "\n<thi"), ("text", "nk>Two plus"), ("text", " two.</th"), ("text", "ink>"),
                          ("text", "4"))
    with post_stream(parts_server.url, {"prompt": controls(deltas=deltas, delay=0.01)}, accept=NDJSON) as response:
        chunks, done = read_ndjson(response)
    pieces: list[Piece] = []
    for _, text, parts in chunks:
        pieces += [p if p["type"] != "text" else p["text"] for p in parts] if parts is not None else [text]
    assert merged(pieces) == ("4", [{"type": "reasoning", "text": "Two plus two."}, {"type": "text", "text": "4"}])
    assert done["chunks"] == chunks[-1][0] + 1 and "tool_calls" not in done


def test_text_only_chunks_are_unchanged(parts_server: LiveServer) -> None:
    """No parts, and the same keys as before there were kinds, on every transport."""
    for transport in TRANSPORTS:
        chunks, done = run(parts_server, transport, controls(text=["a", "b\n", "c"], delay=0.01), f"plain-{transport}")
        assert "".join(text for _, text, _ in chunks) == "ab\nc"
        assert all(parts is None for _, _, parts in chunks), transport
        assert "tool_calls" not in done and set(done["usage"]) == {"prompt_tokens", "completion_tokens",
                                                                   "total_tokens"}


# Resume from the middle of each kind.

def held_stream(server: LiveServer, gate: str, stream_id: str) -> tuple[SioProbe, str]:
    """A scripted stream that stops before its last piece until `gate` opens; its first reader has seen all but
    that piece."""
    probe = SioProbe(server.url)
    ack = probe.client.call("chatgpt_description", {"prompt": scripted(gate=gate, hold_after=len(PIECES) - 1,
                                                                        heartbeat=0.3), "stream_id": stream_id})
    assert ack["stream_id"] == stream_id
    probe.wait_chunks(stream_id, len(PIECES) - 1)
    return probe, ack["resume_token"]


def resume_everywhere(fake: FakeUpstream, gate: str, stream_id: str, token: str,
                      servers: list[LiveServer]) -> None:
    """From each mid-kind cursor, on each server and each transport, the rest of the stream arrives exactly."""
    probes: list[tuple[SioProbe, int]] = []
    responses: list[tuple[requests.Response, int, str]] = []
    try:
        for server in servers:
            for cursor in MID_KIND:
                probe = SioProbe(server.url)
                probes.append((probe, cursor))
                assert probe.resume(stream_id, cursor, token) == {"stream_id": stream_id}
                for accept in (NDJSON, SSE):
                    response = requests.get(f"{server.url}/message/stream/{stream_id}?after_seq={cursor}",
                                            headers={"Accept": accept, "X-Resume-Token": token}, stream=True,
                                            timeout=20)
                    assert response.status_code == 200
                    responses.append((response, cursor, accept))
        fake.open_gate(gate)
        for probe, cursor in probes:
            name, done = probe.wait_terminal(stream_id)
            probe.settle()
            assert name == DONE and len(probe.terminals(stream_id)) == 1
            check_exact(sio_chunks(probe, stream_id), {"type": "done", **done}, after=cursor)
        for response, cursor, accept in responses:
            chunks, done = (read_ndjson if accept == NDJSON else read_sse)(response)
            check_exact(chunks, done, after=cursor)
    finally:
        for probe, _ in probes:
            probe.close()
        for response, _, _ in responses:
            response.close()


def test_resume_mid_kind_on_the_same_instance(parts_server: LiveServer, fake_upstream: FakeUpstream,
                                              gate: str) -> None:
    first, token = held_stream(parts_server, gate, "mid")
    try:
        resume_everywhere(fake_upstream, gate, "mid", token, [parts_server])
        _, done = first.wait_terminal("mid")
        check_exact(sio_chunks(first, "mid"), {"type": "done", **done})
    finally:
        first.close()


@pytest.fixture(scope="module")
def two_instances(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[list[LiveServer]]:
    """Two instances sharing one redis-server, one per async mode."""
    require_redis()
    workdir = tmp_path_factory.mktemp("parts-cluster")
    store = RedisServer(free_port(), workdir / "redis.log").start()
    servers: list[LiveServer] = []
    try:
        for index, mode in enumerate(MODES):
            env = {**upstream_env(fake_upstream), "REDIS_URL": store.url, "RESUME_GRACE": "5", "RESUME_TTL": "30"}
            servers.append(start_server(mode, env, workdir / f"instance-{index}.log"))
        yield servers
    finally:
        for server in servers:
            stop_server(server)
        store.stop()


def test_resume_mid_kind_on_another_instance(two_instances: list[LiveServer], fake_upstream: FakeUpstream,
                                             gate: str) -> None:
    producer, other = two_instances
    first, token = held_stream(producer, gate, "moved")
    try:
        resume_everywhere(fake_upstream, gate, "moved", token, [other])
    finally:
        first.close()
    # and after its end, replayed from there
    with requests.get(f"{other.url}/message/stream/moved?after_seq=4", headers={"Accept": NDJSON,
                                                                                   "X-Resume-Token": token},
                      stream=True, timeout=20) as response:
        check_exact(*read_ndjson(response), after=4)


# The examples of docs/protocol.md, "Parts", checked against the server.

DOC_STEPS: list[tuple[tuple, Piece]] = [
    (("reasoning", "The user wants"), {"type": "reasoning", "text": "The user wants"}),
    (("reasoning_content", " Oslo's weather."), {"type": "reasoning", "text": " Oslo's weather."}),
    (("tool", 0, "call_1", "get_weather", ""),
     {"type": "tool_call", "index": 0, "id": "call_1", "name": "get_weather", "arguments": ""}),
    (("tool", 0, None, None, '{"city":'), {"type": "tool_call", "index": 0, "arguments": '{"city":'}),
    (("tool", 0, None, None, ' "Oslo"}'), {"type": "tool_call", "index": 0, "arguments": ' "Oslo"}'}),
]


def doc_blocks(heading: str) -> list[list[str]]:
    """The fenced blocks' lines under a heading of docs/protocol.md, up to the next heading of its level."""
    text = (ROOT / "docs" / "protocol.md").read_text().split(heading + "\n", 1)[1]
    level = heading.split(" ")[0] + " "
    section = text.split("\n" + level, 1)[0]
    return [block.split("\n", 1)[1].splitlines() for block in section.split("```")[1::2]]


def test_the_protocols_parts_examples_are_what_the_server_sends(parts_server: LiveServer) -> None:
    example, merged_example = doc_blocks("## Parts")
    lines = [json.loads(line) for line in example]
    chunks = [(line["seq"], line["text"], line.get("parts")) for line in lines[:-1]]
    pieces = [piece for _, piece in DOC_STEPS]
    check_chunks(chunks, pieces)  # the example is one way the server may group these pieces
    prompt = controls(deltas=script_reply(*(step for step, _ in DOC_STEPS)), finish_reason="tool_calls",
                      usage_details={"completion_tokens_details": {"reasoning_tokens": 2}}, delay=0.01)
    with post_stream(parts_server.url, {"prompt": prompt, "stream_id": "q1"}, accept=NDJSON) as response:
        got, done = read_ndjson(response)
    check_chunks(got, pieces)
    documented = lines[-1]
    assert set(done) == set(documented) and set(done["usage"]) == set(documented["usage"])
    for key in ("type", "stream_id", "finish_reason", "chunks", "tool_calls"):
        assert done[key] == documented[key], key
    assert done["usage"]["reasoning_tokens"] == documented["usage"]["reasoning_tokens"]
    # the second: a chunk's text is its text parts
    (line,) = (json.loads(text) for text in merged_example)
    assert line["text"] == "".join(p["text"] for p in line["parts"] if p["type"] == "text")
    # SSE's example chunk is the first NDJSON chunk, as an event
    sse_example = doc_blocks("### `text/event-stream`: SSE")[1]
    assert sse_example[:2] == ["event: chunk", "id: 0"]
    assert json.loads(sse_example[2].removeprefix("data: ")) == {k: v for k, v in lines[0].items() if k != "type"}
