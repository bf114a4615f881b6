"""The fake upstream's replies beyond text, read with the official openai client: raw deltas, and a model that calls
the tool `tool_choice` demands, then answers the `tool` message with what the tool said."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from openai import OpenAI

from tests.fake_upstream import FakeUpstream, controls

ZONE = {"type": "string", "enum": ["UTC", "CET"]}
CLOCK = {"type": "function", "function": {"name": "clock", "parameters": {
    "type": "object", "properties": {"zone": ZONE, "seconds": {"type": "boolean"}}}}}


@pytest.fixture
def client() -> Iterator[OpenAI]:
    with FakeUpstream() as fake:
        yield OpenAI(api_key="test-key", base_url=fake.url, max_retries=0, timeout=5)


def deltas(client: OpenAI, messages: list, **options) -> tuple[list[dict], str | None]:
    seen, finish = [], None
    for chunk in client.chat.completions.create(model="fake-model", messages=messages, stream=True, **options):
        for choice in chunk.choices:
            seen.append(choice.delta.model_dump(exclude_none=True))
            finish = choice.finish_reason or finish
    return seen[1:-1], finish  # without the role's opening delta and the finish's empty one


def test_deltas_are_streamed_verbatim(client: OpenAI) -> None:
    script = [{"reasoning_content": "hm"}, {"content": "hi"}, {"refusal": "no"}]
    assert deltas(client, [{"role": "user", "content": controls(deltas=script)}]) == (script, "stop")
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    content = [{"type": "text", "text": controls(deltas=script[:1])}, image]  # the controls in a text part
    assert deltas(client, [{"role": "user", "content": content}]) == (script[:1], "stop")


def test_a_tool_round_trip(client: OpenAI) -> None:
    messages: list = [{"role": "user", "content": "What time is it?"}]
    assert deltas(client, messages, tools=[CLOCK])[0][0] == {"content": "w0 "}  # offered, not demanded: text
    calls, finish = deltas(client, messages, tools=[CLOCK], tool_choice="required")
    assert finish == "tool_calls" and len(calls) == 2
    first, rest = calls[0]["tool_calls"][0], calls[1]["tool_calls"][0]
    assert first["id"] == "call_fake_1" and first["function"]["name"] == "clock"
    arguments = first["function"]["arguments"] + rest["function"]["arguments"]
    assert json.loads(arguments) == {"zone": "UTC", "seconds": True}
    messages += [{"role": "assistant", "tool_calls": [{"id": "call_fake_1", "type": "function",
                                                        "function": {"name": "clock", "arguments": arguments}}]},
                 {"role": "tool", "tool_call_id": "call_fake_1", "content": "09:00"}]
    text, finish = deltas(client, messages, tools=[CLOCK])
    assert "".join(d["content"] for d in text) == "w0 w1 w2 w3 w4 (tool call_fake_1: 09:00)" and finish == "stop"
