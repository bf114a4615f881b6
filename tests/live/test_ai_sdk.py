"""The AI SDK's chat endpoint (docs/ai-sdk.md) driven by the real `ai` package from Node, in each async mode: the
UI messages it builds from the relay's stream are the ones the same parts give from an AI SDK backend, for text,
reasoning and tool calls; errors keep the relay's codes; a stop ends the reply with `abort`; a chat's running
reply is resumed by its chat id, and a chat with none running answers 204."""

from __future__ import annotations

import json
import uuid

import requests

from tests import ai_sdk_client
from tests.ai_sdk_client import user
from tests.conftest import API_KEY, LiveServer
from tests.fake_upstream import FakeUpstream, controls, script_reply

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def held(gate: str) -> str:
    """A reply of four pieces that waits after two until `gate` opens, kept alive meanwhile (as a model server
    may, with empty deltas), so that the wait outlasts no UPSTREAM_READ_TIMEOUT."""
    return controls(chunks=4, gate=gate, hold_after=2, heartbeat=0.3)

TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}}


def chat_id() -> str:
    return f"chat-{uuid.uuid4().hex[:12]}"


def api(server: LiveServer) -> str:
    return f"{server.url}/api/chat"


def parts_of(result: dict, continues: str | None = None) -> list[dict]:
    """The reply's parts, after checking its id: the assistant message it `continues`, else its own."""
    assert result["status"] == "ok", result
    message = result["message"]
    assert message["role"] == "assistant", message
    assert message["id"] == continues if continues else message["id"].startswith("msg-"), message
    return message["parts"]


def same_as_an_ai_sdk_backend(result: dict, fake: FakeUpstream, messages: list[dict],
                               tools: list[dict] | None = None) -> None:
    """The UI message is the one an AI SDK backend (streamText on the same upstream) gives for the same request."""
    expected = ai_sdk_client.reference(fake.url, API_KEY, "fake-model", messages, tools)
    assert {**result["message"], "id": ""} == {**expected["message"], "id": ""}


def test_reasoning_then_text(live_server: LiveServer, fake_upstream: FakeUpstream) -> None:
    ask = controls(deltas=script_reply(("reasoning", "Let me "), ("reasoning_content", "think."),
                                       ("text", "Hello"), ("text", " there.")))
    result = ai_sdk_client.run(api(live_server), "send", chat_id(), [user(ask)])
    same_as_an_ai_sdk_backend(result, fake_upstream, [user(ask)])
    assert parts_of(result) == [
        {"type": "step-start"},
        {"type": "reasoning", "id": "reasoning-0", "text": "Let me think.", "state": "done"},
        {"type": "text", "text": "Hello there.", "state": "done"},
    ]
    assert result["chunks"][-2:] == ["finish-step", "finish"] and result["errors"] == []


def test_parallel_tool_calls(live_server: LiveServer, fake_upstream: FakeUpstream) -> None:
    """Two calls whose argument fragments interleave: each part whole, in the order the calls began."""
    ask = controls(finish_reason="tool_calls", deltas=script_reply(
        ("text", "Checking."),
        ("tool", 0, "call_a", "get_weather", '{"city":'), ("tool", 1, "call_b", "get_time", '{"tz":'),
        ("tool", 0, None, None, ' "Oslo"}'), ("tool", 1, None, None, ' "CET"}')))
    result = ai_sdk_client.run(api(live_server), "send", chat_id(), [user(ask)], body={"tools": [WEATHER, TIME]})
    same_as_an_ai_sdk_backend(result, fake_upstream, [user(ask)], [WEATHER, TIME])
    assert parts_of(result) == [
        {"type": "step-start"},
        {"type": "text", "text": "Checking.", "state": "done"},
        {"type": "tool-get_weather", "toolCallId": "call_a", "state": "input-available", "input": {"city": "Oslo"}},
        {"type": "tool-get_time", "toolCallId": "call_b", "state": "input-available", "input": {"tz": "CET"}},
    ]


def test_a_tool_result_goes_back_to_the_model(live_server: LiveServer, fake_upstream: FakeUpstream) -> None:
    """The client's tool output (a tool part with `output-available`) reaches the upstream as a Chat Completions
    tool call and tool message, as an AI SDK backend sends it; the body's extra fields are the relay's request
    fields, sent as they are."""
    tag = uuid.uuid4().hex
    messages = [
        user(f"Weather in Oslo? {tag}"),
        {"id": "a1", "role": "assistant", "parts": [
            {"type": "step-start"},
            {"type": "reasoning", "text": "A tool, then.", "state": "done"},
            {"type": "tool-get_weather", "toolCallId": "call_1", "state": "output-available",
             "input": {"city": "Oslo"}, "output": {"temp": 3}},
        ]},
    ]
    result = ai_sdk_client.run(api(live_server), "send", chat_id(), messages,
                               body={"tools": [WEATHER], "temperature": 0.5})
    # the reply continues the assistant message a1, as useChat expects after a tool's output (a new id would
    # show the call twice)
    assert parts_of(result, continues="a1")[-1]["text"].endswith('(tool call_1: {"temp":3})')
    [sent] = fake_upstream.requests_with(tag)
    assert sent["messages"] == [
        {"role": "user", "content": f"Weather in Oslo? {tag}"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":3}'},
    ]
    assert sent["tools"] == [WEATHER] and sent["temperature"] == 0.5
    same_as_an_ai_sdk_backend(result, fake_upstream, messages, [WEATHER])
    # the same messages, but for the reasoning, which this provider sends back and the relay leaves out (as
    # OpenAI's own provider does), and an empty content, which the relay sends as null
    by_the_ai_sdk = [{key: value or None if key == "content" else value for key, value in message.items()
                      if key != "reasoning_content"} for message in fake_upstream.requests_with(tag)[1]["messages"]]
    assert by_the_ai_sdk == sent["messages"]


def test_errors_keep_the_relay_codes(live_server: LiveServer) -> None:
    # before the reply: a status, whose JSON body the transport throws
    refused = ai_sdk_client.run(api(live_server), "send", chat_id(), [user("hi")], body={"model": "no-such-model"})
    assert refused["status"] == "refused"
    assert json.loads(refused["errors"][0])["error"]["code"] == "invalid_request"
    unknown = ai_sdk_client.run(api(live_server), "send", chat_id(), [user("hi")], body={"colour": "red"})
    assert "colour" in json.loads(unknown["errors"][0])["error"]["message"]
    # during the reply: an `error` chunk with the code, after the text that came
    failed = ai_sdk_client.run(api(live_server), "send", chat_id(), [user(controls(fault="error_event"))])
    assert failed["status"] == "ok" and failed["chunks"][-1] == "error", failed
    [error] = failed["errors"]
    assert error.startswith("upstream_error: ") and "SECRET" not in error and API_KEY not in error
    assert failed["message"]["parts"][-1] == {"type": "text", "text": "w0 ", "state": "done"}


def test_stop(live_server: LiveServer, fake_upstream: FakeUpstream, gate: str) -> None:
    chat = chat_id()
    sending = ai_sdk_client.start(api(live_server), "send", chat, [user(held(gate))])
    ai_sdk_client.connected(sending)
    stopped = requests.post(f"{api(live_server)}/{chat}/stop", timeout=10)
    assert stopped.status_code == 200, stopped.text
    result = ai_sdk_client.finish(sending)
    assert result["chunks"][-1] == "abort" and result["errors"] == []
    assert result["message"]["parts"][-1] == {"type": "text", "text": "w0 w1 ", "state": "streaming"}
    again = requests.post(f"{api(live_server)}/{chat}/stop", timeout=10)
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_request"
    fake_upstream.open_gate(gate)


def test_resume_on_the_same_instance(live_server: LiveServer, fake_upstream: FakeUpstream, gate: str) -> None:
    """A reload while the reply runs gets it from its start, then live; once it has ended, there is nothing to
    resume (204), as the AI SDK's resume expects."""
    chat = chat_id()
    sending = ai_sdk_client.start(api(live_server), "send", chat, [user(held(gate))])
    try:
        ai_sdk_client.connected(sending)
        resuming = ai_sdk_client.start(api(live_server), "resume", chat)
        ai_sdk_client.connected(resuming)
    finally:
        fake_upstream.open_gate(gate)
    sent, resumed = ai_sdk_client.finish(sending), ai_sdk_client.finish(resuming)
    assert resumed["message"] == sent["message"]
    assert parts_of(resumed) == [{"type": "step-start"}, {"type": "text", "text": "w0 w1 w2 w3 ", "state": "done"}]
    assert ai_sdk_client.run(api(live_server), "resume", chat)["status"] == "no-stream"
    assert ai_sdk_client.run(api(live_server), "resume", chat_id())["status"] == "no-stream"

