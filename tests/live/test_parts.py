"""Typed parts end to end (issue 17), with real servers in both async modes and the fake upstream's scripted
replies (tests/parts_script.py): reasoning (both field names, and `<think>` tags), parallel tool calls with their
arguments split over deltas, a refusal and text arrive exactly, in order, under one seq, over Socket.IO, NDJSON
and SSE (text/plain gets the text only); done carries the calls whole and the usage details; a resume from a seq
in the middle of each kind continues exactly (on another instance, through Redis: tests/e2e/test_parts_shared.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from chat_relay.streams.parts import Piece, merged
from tests.clients import DONE, SioProbe, post_stream, stream_lines
from tests.conftest import MODES, ROOT, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls, script_reply
from tests.parts_script import (
    NDJSON,
    SSE,
    TRANSPORTS,
    Seen,
    check_chunks,
    check_exact,
    held_stream,
    read_ndjson,
    read_sse,
    resume_everywhere,
    scripted,
    sio_chunks,
)


@pytest.fixture(scope="module", params=MODES)
def parts_server(request: pytest.FixtureRequest, fake_upstream: FakeUpstream,
                 tmp_path_factory) -> Iterator[LiveServer]:
    """A server with REASONING_TAGS on and a grace period, so that a reader may leave and resume."""
    env = {**upstream_env(fake_upstream), "REASONING_TAGS": "true", "RESUME_GRACE": "5", "RESUME_TTL": "30"}
    server = start_server(request.param, env, tmp_path_factory.mktemp("parts") / "server.log")
    yield server
    stop_server(server)


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

def test_resume_mid_kind_on_the_same_instance(parts_server: LiveServer, fake_upstream: FakeUpstream,
                                              gate: str) -> None:
    first, token = held_stream(parts_server, gate, "mid")
    try:
        resume_everywhere(fake_upstream, gate, "mid", token, [parts_server])
        _, done = first.wait_terminal("mid")
        check_exact(sio_chunks(first, "mid"), {"type": "done", **done})
    finally:
        first.close()


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
