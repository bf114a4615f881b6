"""relay_client's typed parts against the real server (both modes, both transports) and the fake upstream: reasoning,
tool calls cut over several deltas and text arrive as typed parts, in order, and whole after the end; a resume
from inside the reasoning continues exactly; a client-side tool round trip reaches the model and back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from relay_client import ReasoningPart, RelayClient, TextPart, ToolCallPart, tool_message
from relay_client.parts import Part
from tests.conftest import LiveServer
from tests.fake_upstream import FakeUpstream, controls, script_reply
from tests.outcomes import TRANSPORTS

THINKING = ["The user ", "wants Oslo's ", "weather."]
SCRIPT = script_reply(
    *[("reasoning_content", piece) for piece in THINKING],
    ("tool", 0, "call_a", "weather", '{"ci'), ("tool", 1, "call_b", "clock", ""),
    ("tool", 0, None, None, 'ty": "Oslo"}'), ("tool", 1, None, None, "{}"), ("text", "Let me "), ("text", "check."))
WEATHER = {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
CLOCK = {"id": "call_b", "type": "function", "function": {"name": "clock", "arguments": "{}"}}
TOOL = {"type": "function", "function": {"name": "weather", "description": "Today's weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "enum": ["Oslo", "Lima"]}}, "required": ["city"]}}}


@pytest.fixture(params=TRANSPORTS)
def client(request: pytest.FixtureRequest, live_server: LiveServer) -> Iterator[RelayClient]:
    with RelayClient(live_server.url, transport=request.param, timeout=15) as relay:
        yield relay


def joined(parts: list[Part]) -> list[Part]:
    """Adjacent parts of one kind (a tool call: of one index) joined, so batching does not matter."""
    out: list[Part] = []
    for part in parts:
        last = out[-1] if out else None
        if isinstance(part, ToolCallPart) and isinstance(last, ToolCallPart) and last.index == part.index:
            out[-1] = ToolCallPart(part.index, last.arguments + part.arguments, last.id or part.id,
                                   last.name or part.name)
        elif isinstance(part, TextPart | ReasoningPart) and type(last) is type(part):
            out[-1] = type(part)(last.text + part.text)  # type: ignore[union-attr]
        else:
            out.append(part)
    return out


def test_reasoning_tool_calls_and_text_arrive_typed_in_order(client: RelayClient) -> None:
    with client.stream(controls(deltas=SCRIPT, finish_reason="tool_calls")) as reply:
        parts = list(reply.parts())
    assert joined(parts) == [
        ReasoningPart("".join(THINKING)), ToolCallPart(0, '{"ci', "call_a", "weather"),
        ToolCallPart(1, "", "call_b", "clock"), ToolCallPart(0, 'ty": "Oslo"}'),
        ToolCallPart(1, "{}"), TextPart("Let me check.")]
    assert reply.text == "Let me check." and reply.reasoning == "".join(THINKING)
    assert reply.tool_calls == [WEATHER, CLOCK]
    assert reply.done is not None and reply.done.finish_reason == "tool_calls" and reply.done.chunks == len(SCRIPT)
    assert list(reply.done.tool_calls) == [WEATHER, CLOCK]


def test_iterating_yields_only_the_text(client: RelayClient) -> None:
    with client.stream(controls(deltas=SCRIPT)) as reply:
        assert "".join(reply) == "Let me check."
    assert reply.reasoning == "".join(THINKING) and reply.tool_calls == [WEATHER, CLOCK]


def test_a_resume_from_inside_the_reasoning_continues_exactly(client: RelayClient) -> None:
    with client.stream(controls(deltas=SCRIPT)) as reply:
        reply.read()
    again = client.resume(reply.stream_id, reply.resume_token or "", after_seq=0)  # after the first thinking piece
    with again:
        assert again.read() == "Let me check."
    assert again.reasoning == "".join(THINKING[1:]) and again.tool_calls == [WEATHER, CLOCK]


def test_a_client_side_tool_round_trip(client: RelayClient, fake_upstream: FakeUpstream) -> None:
    messages: list[dict] = [{"role": "user", "content": "What is the weather in Oslo?"}]
    with client.stream(messages=messages, tools=[TOOL], tool_choice="required") as reply:
        assert reply.read() == ""
    assert reply.done is not None and reply.done.finish_reason == "tool_calls"
    [call] = reply.tool_calls
    assert call["function"]["name"] == "weather" and json.loads(call["function"]["arguments"]) == {"city": "Oslo"}
    messages += [{"role": "assistant", "content": None, "tool_calls": reply.tool_calls},
                 tool_message(call["id"], "12 C and windy")]
    answer = client.complete(messages=messages, tools=[TOOL])
    assert answer == f"w0 w1 w2 w3 w4 (tool {call['id']}: 12 C and windy)"
    sent = fake_upstream.requests[-1]
    assert sent["messages"][-2:] == messages[-2:] and sent["tools"] == [TOOL] and "tool_choice" not in sent
