"""FinishRecord (chat_relay/hooks/finish.py) of a stream with server-side tools: the pieces the producer's buffer
holds across the rounds of a tool loop (the model's calls numbered stream-wide, the relay's tool_result and
tool_error parts between them) give on_finish every call, every result and the text of every round."""

from __future__ import annotations

from typing import Any

from chat_relay import Identity
from chat_relay.errors import ErrorCode
from chat_relay.hooks.finish import FinishRecord, Timings, finish_record
from chat_relay.streams.events import Done, Failed, Terminal
from chat_relay.streams.parts import Piece
from chat_relay.streams.request_validation import parse_chat_request
from tests.unit.test_hooks_fast import settings


def call(index: int, arguments: str, call_id: str | None = None, name: str | None = None) -> dict[str, Any]:
    """A tool-call piece as upstream_sse.py makes it: id and name only in the call's first fragment."""
    piece: dict[str, Any] = {"type": "tool_call", "index": index}
    if call_id:
        piece["id"] = call_id
    if name:
        piece["name"] = name
    return {**piece, "arguments": arguments}


def whole_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


ROUND_1 = ["Let me ", "look. ", call(0, '{"plan":', "c1", "plan_details"), call(0, ' "pro"}')]
RESULTS_1 = [{"type": "tool_result", "id": "c1", "name": "plan_details", "result": {"daily_tokens": 50000}}]
ROUND_2 = [call(1, '{"plan": "free"}', "c2", "plan_details"), call(2, '{"plan": "gold"}', "c3", "plan_details")]
RESULTS_2 = [{"type": "tool_result", "id": "c2", "name": "plan_details", "result": {"daily_tokens": 2000}},
             {"type": "tool_result", "id": "c2b", "name": "other", "result": 7},
             {"type": "tool_error", "id": "c3", "name": "plan_details", "message": "There is no plan named 'gold'."}]
ROUND_3 = ["Pro gives ", "50000 tokens."]
THREE_ROUNDS: list[Piece] = [*ROUND_1, *RESULTS_1, *ROUND_2, *RESULTS_2, *ROUND_3]
CALLS = [whole_call("c1", "plan_details", '{"plan": "pro"}'), whole_call("c2", "plan_details", '{"plan": "free"}'),
         whole_call("c3", "plan_details", '{"plan": "gold"}')]


def record_of(pieces: list[Piece], terminal: Terminal) -> FinishRecord:
    request = parse_chat_request({"prompt": "What does my plan give me?"}, settings())
    return finish_record(request=request, identity=Identity("alice"), transport="http", pieces=pieces,
                         terminal=terminal, cause="completed", timings=Timings(1.0, 0.5, 0.1))


def test_results_and_errors_stay_parts_of_their_own_and_every_rounds_text_is_kept() -> None:
    record = record_of(THREE_ROUNDS, Done("stop", len(THREE_ROUNDS), {"total_tokens": 30}))
    assert record.text == "Let me look. Pro gives 50000 tokens."
    assert record.parts == [
        {"type": "text", "text": "Let me look. "},
        {"type": "tool_call", "index": 0, "id": "c1", "name": "plan_details", "arguments": '{"plan": "pro"}'},
        *RESULTS_1,
        {"type": "tool_call", "index": 1, "id": "c2", "name": "plan_details", "arguments": '{"plan": "free"}'},
        {"type": "tool_call", "index": 2, "id": "c3", "name": "plan_details", "arguments": '{"plan": "gold"}'},
        *RESULTS_2,  # two adjacent results, then an error: each whole, none merged into the one before
        {"type": "text", "text": "Pro gives 50000 tokens."},
    ]
    assert record.tool_calls == CALLS
    assert record.finish_reason == "stop" and record.error is None


def test_every_rounds_calls_when_the_last_round_ends_the_stream_with_calls() -> None:
    """The step cap (or a reply that also calls a client's tool) ends the stream after a reply with calls: `done`
    carries that reply's calls, and the record still has the earlier rounds' too."""
    last_round = [call(3, '{"plan": "pro"}', "c4", "plan_details")]
    pieces: list[Piece] = [*ROUND_1, *RESULTS_1, *ROUND_2, *RESULTS_2, *last_round]
    record = record_of(pieces, Done("tool_steps_exceeded", len(pieces), None,
                                    [whole_call("c4", "plan_details", '{"plan": "pro"}')]))
    assert record.tool_calls == [*CALLS, whole_call("c4", "plan_details", '{"plan": "pro"}')]
    assert record.finish_reason == "tool_steps_exceeded" and record.text == "Let me look. "


def test_a_calls_fragments_are_one_call_though_another_calls_came_between() -> None:
    pieces: list[Piece] = [call(0, '{"a":', "c1", "f"), call(1, '{"b":', "c2", "g"), call(0, " 1}"), call(1, " 2}")]
    record = record_of(pieces, Done("tool_calls", 4, None, [whole_call("c1", "f", '{"a": 1}'),
                                                            whole_call("c2", "g", '{"b": 2}')]))
    assert record.tool_calls == [whole_call("c1", "f", '{"a": 1}'), whole_call("c2", "g", '{"b": 2}')]


def test_a_stream_that_failed_after_a_round_still_has_its_calls_and_results() -> None:
    pieces: list[Piece] = [*ROUND_1, *RESULTS_1, "Pro gi"]
    record = record_of(pieces, Failed(ErrorCode.UPSTREAM_TIMEOUT, "The model took too long.", len(pieces)))
    assert record.error == "upstream_timeout" and record.finish_reason is None
    assert record.tool_calls == CALLS[:1] and record.text == "Let me look. Pro gi"
    assert [part["type"] for part in record.parts] == ["text", "tool_call", "tool_result", "text"]
