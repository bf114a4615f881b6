"""Server-side tools without a server (issue 18): a function's schema and argument checks, the offer in a request's
tools, one call run to a part (result, refusal, bug, timeout, size), one round of the loop, and the pieces' merging
and sizes. The live tests (tests/live/test_server_tools.py) run them in streams."""

from __future__ import annotations

import json
import threading
import time
from typing import Annotated, Any

import orjson
import pytest
from pydantic import BaseModel, Field

from chat_relay import ToolError
from chat_relay.async_drivers import AsyncDriver, mode_driver
from chat_relay.config import Settings
from chat_relay.errors import ErrorCode, RelayError
from chat_relay.extension import ChatRelay
from chat_relay.streams.parts import merged, piece_bytes
from chat_relay.streams.request_validation import parse_chat_request
from chat_relay.streams.tool_steps import summed_usage
from chat_relay.streams.upstream_sse import ChunkParser
from chat_relay.tools.loop import STEPS_EXCEEDED, ToolRounds
from chat_relay.tools.registry import ToolRegistry, tool_of
from chat_relay.tools.runner import ToolRunner
from tests.unit.test_parts_fast import sse

SECRET = "SECRET-IN-AN-EXCEPTION"


class Place(BaseModel):
    city: str
    country: str = "NO"


def population(place: Place, year: Annotated[int, Field(ge=1900, description="The census year.")] = 2020) -> dict:
    """The population of a place in a year."""
    return {"city": place.city, "year": year, "people": 709_000}


def threads() -> AsyncDriver:
    """The threading mode's driver, as the fast tests run: OS threads, which cannot be interrupted."""
    def spawn(target: Any, *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        return thread

    return AsyncDriver("threading", spawn, time.sleep, threading.Event, mode_driver("threading"))


def registry_of(*functions: Any) -> ToolRegistry:
    registry = ToolRegistry()
    for function in functions:
        registry.add(tool_of(function))
    return registry


def call(name: str, arguments: str, call_id: str = "c1") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


# The registry: schema from the signature, arguments checked against it.

def test_the_schema_comes_from_the_type_hints_and_the_docstring() -> None:
    definition = tool_of(population).definition()
    function = definition["function"]
    assert definition["type"] == "function" and function["name"] == "population"
    assert function["description"] == "The population of a place in a year."
    parameters = function["parameters"]
    assert parameters["type"] == "object" and parameters["required"] == ["place"]
    assert parameters["additionalProperties"] is False
    assert parameters["properties"]["year"] == {"default": 2020, "description": "The census year.", "minimum": 1900,
                                                "title": "Year", "type": "integer"}
    assert parameters["$defs"]["Place"]["required"] == ["city"]


def test_a_name_and_a_description_may_be_given() -> None:
    tool = tool_of(population, name="census", description="Who lives where.")
    assert (tool.name, tool.definition()["function"]["description"]) == ("census", "Who lives where.")


@pytest.mark.parametrize("function, problem", [
    (lambda *args: None, "named arguments only"),
    (lambda **kwargs: None, "named arguments only"),
])
def test_a_function_the_model_cannot_call_by_name_is_refused(function: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        tool_of(function, name="f")


def test_a_bad_name_and_a_name_taken_twice_are_refused() -> None:
    with pytest.raises(ValueError, match="name must match"):
        tool_of(population, name="two words")
    registry = registry_of(population)
    with pytest.raises(ValueError, match="registered already"):
        registry.add(tool_of(population))


@pytest.mark.parametrize("arguments, message", [
    ('{"place": {"city": "Oslo"}', "they are not JSON."),
    ('[1, 2]', "they must be a JSON object."),
    ('{}', "'place': Field required."),
    ('{"place": {"city": "Oslo"}, "year": 1850}', "'year': Input should be greater than or equal to 1900."),
    ('{"place": {}}', "'place.city': Field required."),
    ('{"place": {"city": "Oslo"}, "mood": "happy"}', "'mood': Extra inputs are not permitted."),
])
def test_invalid_arguments_are_refused_naming_the_first_problem(arguments: str, message: str) -> None:
    with pytest.raises(ToolError) as refused:
        tool_of(population).arguments(arguments)
    assert refused.value.message == "The arguments of tool 'population' are not valid: " + message


def test_valid_arguments_are_the_functions_own_types() -> None:
    arguments = tool_of(population).arguments('{"place": {"city": "Oslo"}, "year": 2000}')
    assert arguments == {"place": Place(city="Oslo"), "year": 2000}
    assert tool_of(lambda: 1, name="now").arguments("") == {}  # some servers send no arguments at all


def test_relay_tool_registers_with_and_without_options() -> None:
    relay = ChatRelay()

    @relay.tool
    def first(x: int) -> int:
        """One."""
        return x

    @relay.tool(name="second_one", description="Two.")
    def second(y: str) -> str:
        return y

    assert first(1) == 1 and second("a") == "a"  # the functions themselves, unchanged
    assert "first" in relay.tools and "second_one" in relay.tools and len(relay.tools) == 2


# The offer: the server's tools after the client's, a clash refused.

def test_the_servers_tools_follow_the_clients_and_a_clash_is_refused() -> None:
    settings = Settings(openai_api_key="k")
    registry = registry_of(population)
    plain = parse_chat_request({"prompt": "hi"}, settings)
    assert registry.offered(plain).options["tools"] == [tool_of(population).definition()]
    mine = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    request = parse_chat_request({"prompt": "hi", "tools": [mine]}, settings)
    assert [t["function"]["name"] for t in registry.offered(request).options["tools"]] == ["weather", "population"]
    assert request.options["tools"] == [mine]  # the client's request itself is left as it was
    clash = {"type": "function", "function": {"name": "population", "parameters": {"type": "object"}}}
    with pytest.raises(RelayError) as refused:
        registry.offered(parse_chat_request({"prompt": "hi", "tools": [clash]}, settings))
    assert refused.value.code is ErrorCode.INVALID_REQUEST
    assert refused.value.message == "'tools' names the function 'population', which is a tool of the server's."
    assert ToolRegistry().offered(plain) is plain  # no tools: nothing changes


# One call, run.

def runner_of(*functions: Any, timeout: float = 5, max_bytes: int = 1000) -> ToolRunner:
    return ToolRunner(registry_of(*functions), threads(), timeout, max_bytes)


def test_a_result_is_json_and_the_model_gets_it_as_a_string() -> None:
    outcome = runner_of(population).run(call("population", '{"place": {"city": "Oslo"}}'))
    result = {"city": "Oslo", "year": 2020, "people": 709_000}
    assert outcome.part == {"type": "tool_result", "id": "c1", "name": "population", "result": result}
    assert orjson.loads(outcome.content) == result

    def greet(name: str) -> str:
        return f"Hello, {name}"

    text = runner_of(greet).run(call("greet", '{"name": "Ada"}'))
    assert (text.part["result"], text.content) == ("Hello, Ada", "Hello, Ada")  # a string stays itself

    def place() -> Place:
        return Place(city="Oslo")

    assert runner_of(place).run(call("place", "{}")).part["result"] == {"city": "Oslo", "country": "NO"}


def test_a_tools_own_refusal_is_its_message() -> None:
    def refuse() -> None:
        raise ToolError("Not on Sundays.")

    outcome = runner_of(refuse).run(call("refuse", "{}"))
    assert outcome.part == {"type": "tool_error", "id": "c1", "name": "refuse", "message": "Not on Sundays."}
    assert orjson.loads(outcome.content) == {"error": "Not on Sundays."}


def test_a_bug_in_a_tool_is_a_generic_message_and_a_log_line_without_its_text(caplog: pytest.LogCaptureFixture) -> None:
    def crash() -> None:
        raise RuntimeError(SECRET)

    outcome = runner_of(crash).run(call("crash", "{}"))
    assert outcome.part["message"] == "Tool 'crash' failed."
    assert "tool crash failed: RuntimeError" in caplog.text and SECRET not in caplog.text + repr(outcome)


def test_a_tool_past_its_timeout_is_given_up_on() -> None:
    release = threading.Event()

    def stuck() -> str:
        release.wait(10)
        return "late"

    try:
        outcome = runner_of(stuck, timeout=0.05).run(call("stuck", "{}"))
    finally:
        release.set()
    assert outcome.part["message"] == "Tool 'stuck' took longer than TOOL_TIMEOUT (0.05 s)."


def test_a_result_too_large_or_not_json_is_a_tool_error() -> None:
    def large() -> str:
        return "x" * 2000

    def opaque() -> object:
        return object()

    runner = runner_of(large, opaque)
    assert runner.run(call("large", "{}")).part["message"] == (
        "The result of tool 'large' is larger than MAX_TOOL_RESULT_BYTES (1,000 bytes).")
    assert runner.run(call("opaque", "{}")).part["message"] == "Tool 'opaque' failed."


# One round of the loop.

def adds() -> ToolRounds:
    def add(a: int, b: int) -> int:
        return a + b

    registry = registry_of(add)
    return ToolRounds(registry, ToolRunner(registry, threads(), 5, 1000), max_steps=1)


def test_a_round_runs_the_servers_calls_and_extends_the_conversation() -> None:
    rounds, appended = adds(), []
    request = parse_chat_request({"prompt": "2 + 3?"}, Settings(openai_api_key="k"))
    calls = [call("add", '{"a": 2, "b": 3}')]
    following = rounds.next_request(request, "Adding.", calls, appended.append)
    assert appended == [{"type": "tool_result", "id": "c1", "name": "add", "result": 5}]
    assert following is not None and following.messages == [
        {"role": "user", "content": "2 + 3?"},
        {"role": "assistant", "content": "Adding.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "c1", "content": "5"}]
    # The cap: a second round is not run, and says why the stream ends.
    assert rounds.next_request(following, "", calls, appended.append) is None
    assert rounds.finish_reason == STEPS_EXCEEDED and len(appended) == 1


def test_calls_past_max_tool_calls_are_not_run() -> None:
    request = parse_chat_request({"prompt": "hi"}, Settings(openai_api_key="k"))
    registry = adds()._tools
    rounds, appended = ToolRounds(registry, ToolRunner(registry, threads(), 5, 1000), 5, max_calls=2), []
    calls = [call("add", json.dumps({"a": 1, "b": n}), f"c{n}") for n in range(3)]
    following = rounds.next_request(request, "", calls, appended.append)
    assert [part["type"] for part in appended] == ["tool_result", "tool_result", "tool_error"]
    assert appended[2]["message"] == "Not run: at most MAX_TOOL_CALLS (2) calls of the server's tools run per reply."
    assert following is not None and len([m for m in following.messages if m["role"] == "tool"]) == 3


def test_the_clients_calls_end_the_loop_and_mixed_calls_end_it_after_the_servers_run() -> None:
    request = parse_chat_request({"prompt": "hi"}, Settings(openai_api_key="k"))
    rounds, appended = adds(), []
    assert rounds.next_request(request, "", [call("weather", "{}")], appended.append) is None
    assert appended == [] and rounds.finish_reason is None
    mixed = [call("add", '{"a": 1, "b": 1}', "c1"), call("weather", "{}", "c2")]
    assert rounds.next_request(request, "", mixed, appended.append) is None
    assert appended == [{"type": "tool_result", "id": "c1", "name": "add", "result": 2}]
    assert rounds.finish_reason is None  # the model's own "tool_calls" ends the stream


# Pieces: never merged, counted by their JSON, numbered after the earlier calls; usage summed.

def test_tool_results_are_never_merged_and_count_their_json() -> None:
    result = {"type": "tool_result", "id": "a", "name": "f", "result": {"n": 1}}
    error = {"type": "tool_error", "id": "b", "name": "f", "message": "no"}
    assert merged([result, dict(result), error, dict(error)])[1] == [result, result, error, error]
    assert piece_bytes(result) == len(b'{"n":1}') + len(b"a") + len(b"f")
    assert piece_bytes({**result, "result": "é"}) == len('"é"'.encode()) + 2


def test_a_later_replys_calls_are_numbered_after_the_earlier_ones() -> None:
    parser = ChunkParser(index_base=3)
    pieces = parser.feed(sse([{"tool_calls": [{"index": 0, "id": "x", "function": {"name": "f", "arguments": ""}}]},
                              {"tool_calls": [{"index": 1, "id": "y", "function": {"name": "g", "arguments": ""}}]}],
                             finish="tool_calls"))
    assert [piece["index"] for piece in pieces] == [3, 4]  # type: ignore[index]
    assert parser.index_end == 5 and [c["id"] for c in parser.tool_calls or []] == ["x", "y"]
    assert ChunkParser(index_base=2).index_end == 2


def test_usage_is_summed_key_by_key() -> None:
    first = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    second = {"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23, "reasoning_tokens": 1}
    assert summed_usage(first, second) == {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35,
                                           "reasoning_tokens": 1}
    assert summed_usage(None, second) == second and summed_usage(first, None) == first
    assert summed_usage(None, None) is None


def test_each_call_logs_one_line_without_its_arguments_or_result(caplog: pytest.LogCaptureFixture) -> None:
    def echo(text: str) -> str:
        return text

    caplog.set_level("INFO")
    runner_of(echo).run(call("echo", json.dumps({"text": SECRET})), stream_id="s9")
    lines = [record for record in caplog.records if getattr(record, "event", None) == "tool_call"]
    assert len(lines) == 1 and lines[0].fields["stream_id"] == "s9" and lines[0].fields["outcome"] == "tool_result"
    assert lines[0].fields["tool"] == "echo" and SECRET not in caplog.text
