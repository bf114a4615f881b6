"""relay_client's typed parts, read from canned streams (no server): what a program iterating a reply with
reasoning, tool calls and a refusal sees, and that a text-only reply reads exactly as it did before parts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from relay_client import (
    Chunk,
    Done,
    ReasoningPart,
    RefusalPart,
    Reply,
    TextPart,
    ToolCallPart,
    image_part,
    tool_message,
)
from relay_client.http_transport import HttpStream, HttpTransport
from relay_client.reply import Source

WEATHER = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}
CLOCK = {"id": "call_2", "type": "function", "function": {"name": "clock", "arguments": "{}"}}

# The wire of one reply, as docs/protocol.md has it: thinking, then two tool calls whose arguments are cut, then text.
WIRE: list[dict[str, Any]] = [
    {"type": "chunk", "text": "", "seq": 1, "parts": [{"type": "reasoning", "text": "Oslo, "},
                                                      {"type": "reasoning", "text": "so weather."}]},
    {"type": "chunk", "text": "", "seq": 3, "parts": [
        {"type": "tool_call", "index": 0, "id": "call_1", "name": "weather", "arguments": '{"city":'},
        {"type": "tool_call", "index": 1, "id": "call_2", "name": "clock", "arguments": "{}"}]},
    {"type": "chunk", "text": "It is ", "seq": 5, "parts": [
        {"type": "tool_call", "index": 0, "arguments": '"Oslo"}'}, {"type": "text", "text": "It is "}]},
    {"type": "chunk", "text": "cold.", "seq": 6},  # text only: no parts, as a text-only chunk always comes
    {"type": "done", "stream_id": "s1", "finish_reason": "tool_calls", "chunks": 7,
     "usage": {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10, "reasoning_tokens": 2},
     "tool_calls": [WEATHER, CLOCK]},
]


class Canned(Source):
    """A transport that plays events from a list, as HttpStream parses them."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.stream_id = "s1"
        self.resume_token = None
        self._events = iter(events)
        self.closed = False

    def next_event(self, cursor: int) -> Chunk | Done:
        event = next(self._events)
        if event["type"] == "done":
            return Done.from_payload(event)
        return Chunk.from_wire(event["text"], event["seq"], event.get("parts"))

    def stop(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_iterating_yields_the_text_only() -> None:
    reply = Reply(Canned(WIRE))
    assert list(reply) == ["It is ", "cold."]
    assert reply.text == "It is cold." and reply.cursor == 6


def test_parts_come_typed_and_in_order() -> None:
    reply = Reply(Canned(WIRE))
    assert list(reply.parts()) == [
        ReasoningPart("Oslo, "), ReasoningPart("so weather."),
        ToolCallPart(0, '{"city":', "call_1", "weather"), ToolCallPart(1, "{}", "call_2", "clock"),
        ToolCallPart(0, '"Oslo"}'), TextPart("It is "), TextPart("cold.")]


def test_after_the_end_reasoning_tool_calls_and_done_are_there() -> None:
    reply = Reply(Canned(WIRE))
    assert reply.read() == "It is cold."
    assert reply.reasoning == "Oslo, so weather."
    assert reply.tool_calls == [WEATHER, CLOCK]
    assert reply.done is not None and reply.done.finish_reason == "tool_calls" and reply.done.chunks == 7
    assert reply.done.usage and reply.done.usage["reasoning_tokens"] == 2
    assert json.loads(reply.tool_calls[0]["function"]["arguments"]) == {"city": "Oslo"}


def test_tool_calls_are_joined_from_their_fragments_while_they_stream() -> None:
    reply = Reply(Canned(WIRE[:3]))
    for chunk in reply.chunks():
        if chunk.seq == 5:
            break
    assert reply.done is None and reply.tool_calls == [WEATHER, CLOCK]  # as done will say


def test_a_text_only_reply_reads_as_before_parts() -> None:
    wire = [{"type": "chunk", "text": "w0 ", "seq": 0}, {"type": "chunk", "text": "w1 ", "seq": 1},
            {"type": "done", "stream_id": "s1", "finish_reason": "stop", "chunks": 2, "usage": None}]
    reply = Reply(Canned(wire))
    assert [(c.text, c.seq, c.parts) for c in reply.chunks()] == [("w0 ", 0, (TextPart("w0 "),)),
                                                                 ("w1 ", 1, (TextPart("w1 "),))]
    assert reply.reasoning == "" and reply.tool_calls == [] and reply.refusal == ""
    assert reply.done == Done("s1", "stop", 2, None) and reply.done.tool_calls == ()


def test_a_refusal_and_a_part_kind_this_client_does_not_know() -> None:
    wire = [{"type": "chunk", "text": "", "seq": 0, "parts": [{"type": "refusal", "text": "I can't "}]},
            {"type": "chunk", "text": "", "seq": 1, "parts": [{"type": "some_future_kind", "x": 1}]},
            {"type": "chunk", "text": "", "seq": 2, "parts": [{"type": "refusal", "text": "help."}]},
            {"type": "done", "stream_id": "s1", "finish_reason": "stop", "chunks": 3, "usage": None}]
    reply = Reply(Canned(wire))
    assert list(reply.parts()) == [RefusalPart("I can't "), RefusalPart("help.")]
    assert reply.refusal == "I can't help." and reply.text == "" and reply.cursor == 2


class FakeResponse:
    """What HttpStream reads of a requests response: its body, in the pieces the network gave."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def iter_content(self, chunk_size: int | None = None) -> Iterator[bytes]:
        for start in range(0, len(self._body), 7):  # lines cut anywhere, as TCP may
            yield self._body[start:start + 7]

    def close(self) -> None:
        pass


def test_the_http_transport_reads_parts_from_ndjson() -> None:
    body = b"".join(json.dumps(event).encode() + b"\n" for event in WIRE)
    transport = HttpTransport("http://127.0.0.1:1", None, 5, 5, auto_resume=False)
    reply = Reply(HttpStream(transport, "s1", None, FakeResponse(body)))  # type: ignore[arg-type]
    assert reply.read() == "It is cold." and reply.reasoning == "Oslo, so weather."
    assert reply.tool_calls == [WEATHER, CLOCK]


def test_message_helpers() -> None:
    part = image_part(b"\x89PNG\r\n\x1a\n", "image/png", detail="low")
    assert part == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}}
    with pytest.raises(ValueError, match="media_type"):
        image_part(b"x", "image/bmp")
    assert tool_message("call_1", "12 C") == {"role": "tool", "tool_call_id": "call_1", "content": "12 C"}
