"""relay_client reads the parts of server-side tools (docs/protocol.md, "Server-side tools") from canned streams: a
tool's result and a tool's error come typed, in order, kept in `reply.tool_results`, and each gives the `tool`
message content the model got for it."""

from __future__ import annotations

import json
from typing import Any

from relay_client import Reply, TextPart, ToolCallPart, ToolErrorPart, ToolResultPart, tool_message
from tests.unit.test_relay_client_parts_fast import Canned

WIRE: list[dict[str, Any]] = [
    {"type": "chunk", "text": "", "seq": 1, "parts": [
        {"type": "tool_call", "index": 0, "id": "c1", "name": "city_population", "arguments": '{"city": "Oslo"}'},
        {"type": "tool_call", "index": 1, "id": "c2", "name": "city_population", "arguments": '{"city": "Nowhere"}'}]},
    {"type": "chunk", "text": "", "seq": 3, "parts": [
        {"type": "tool_result", "id": "c1", "name": "city_population",
         "result": {"city": "Oslo", "population": 709000}},
        {"type": "tool_error", "id": "c2", "name": "city_population", "message": "No city named 'Nowhere'."}]},
    {"type": "chunk", "text": "Oslo has 709,000 people.", "seq": 4},
    {"type": "done", "stream_id": "s1", "finish_reason": "stop", "chunks": 5, "usage": None},
]


def test_tool_results_and_errors_come_typed_in_order_and_are_kept() -> None:
    reply = Reply(Canned(WIRE))
    result = ToolResultPart("c1", "city_population", {"city": "Oslo", "population": 709000})
    error = ToolErrorPart("c2", "city_population", "No city named 'Nowhere'.")
    assert list(reply.parts()) == [
        ToolCallPart(0, '{"city": "Oslo"}', "c1", "city_population"),
        ToolCallPart(1, '{"city": "Nowhere"}', "c2", "city_population"),
        result, error, TextPart("Oslo has 709,000 people.")]
    assert reply.tool_results == [result, error]
    assert reply.text == "Oslo has 709,000 people." and reply.done is not None


def test_each_gives_the_tool_message_the_model_got() -> None:
    result = ToolResultPart("c1", "f", {"n": "é"})
    assert tool_message(result.id, result.content()) == {"role": "tool", "tool_call_id": "c1", "content": '{"n":"é"}'}
    assert ToolResultPart("c1", "f", "plain words").content() == "plain words"
    assert json.loads(ToolErrorPart("c2", "f", "No.").content()) == {"error": "No."}
