"""The AI SDK endpoint's pure parts: the UI message stream written from relay events built by hand
(chat_relay/transports/ai_sdk/ui_stream.py), the AI SDK's request converted to the relay's
(ui_request.py), the chat index (chat_relay/streams/chat_index.py), and the endpoint's path option."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask_socketio import SocketIO

from chat_relay.config import Settings
from chat_relay.errors import ErrorCode, RelayError
from chat_relay.extension import ChatRelay
from chat_relay.streams.chat_index import ChatIndex
from chat_relay.streams.events import Chunk, Done, Failed, PartsChunk
from chat_relay.streams.request_validation import parse_chat_request
from chat_relay.transports.ai_sdk.ui_request import parse_ui_request
from chat_relay.transports.ai_sdk.ui_stream import ui_message_stream

CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}


def chunks(events: list) -> list[dict]:
    """The stream's chunks, after checking it is SSE `data:` lines ending with `[DONE]`."""
    body = b"".join(ui_message_stream("s1", events)).decode()
    lines = body.split("\n\n")
    assert lines[-2:] == ["data: [DONE]", ""], body
    assert all(line.startswith("data: ") for line in lines[:-1])
    return [json.loads(line[len("data: "):]) for line in lines[:-2]]


def test_text_only() -> None:
    assert chunks([Chunk("Hel", 0), Chunk("lo", 1), Done("stop", 2, None)]) == [
        {"type": "start", "messageId": "msg-s1"}, {"type": "start-step"},
        {"type": "text-start", "id": "text-0"},
        {"type": "text-delta", "id": "text-0", "delta": "Hel"}, {"type": "text-delta", "id": "text-0", "delta": "lo"},
        {"type": "text-end", "id": "text-0"},
        {"type": "finish-step"}, {"type": "finish", "finishReason": "stop"},
    ]


def test_reasoning_text_and_tool_calls_in_runs() -> None:
    """Each change of kind closes the run before it; a call's input comes whole at the end."""
    events = [
        PartsChunk("", 0, [{"type": "reasoning", "text": "Hm."}]),
        PartsChunk("It", 2, [{"type": "reasoning", "text": " Yes."}, {"type": "text", "text": "It"}]),
        PartsChunk("", 3, [{"type": "tool_call", "index": 0, "id": "call_1", "name": "get_weather",
                            "arguments": '{"city":'}]),
        PartsChunk("", 4, [{"type": "tool_call", "index": 0, "arguments": ' "Oslo"}'}]),
        Done("tool_calls", 5, None, [CALL]),
    ]
    assert chunks(events)[2:] == [
        {"type": "reasoning-start", "id": "reasoning-0"},
        {"type": "reasoning-delta", "id": "reasoning-0", "delta": "Hm."},
        {"type": "reasoning-delta", "id": "reasoning-0", "delta": " Yes."},
        {"type": "reasoning-end", "id": "reasoning-0"},
        {"type": "text-start", "id": "text-0"}, {"type": "text-delta", "id": "text-0", "delta": "It"},
        {"type": "text-end", "id": "text-0"},
        {"type": "tool-input-start", "toolCallId": "call_1", "toolName": "get_weather"},
        {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": '{"city":'},
        {"type": "tool-input-delta", "toolCallId": "call_1", "inputTextDelta": ' "Oslo"}'},
        {"type": "tool-input-available", "toolCallId": "call_1", "toolName": "get_weather",
         "input": {"city": "Oslo"}},
        {"type": "finish-step"}, {"type": "finish", "finishReason": "tool-calls"},
    ]


def test_a_call_starts_once_its_id_and_name_are_known() -> None:
    events = [PartsChunk("", 0, [{"type": "tool_call", "index": 0, "arguments": "{"}]),
              PartsChunk("", 1, [{"type": "tool_call", "index": 0, "id": "c", "name": "f", "arguments": "}"}]),
              Done("tool_calls", 2, None, [{"id": "c", "function": {"name": "f", "arguments": "{}"}}])]
    assert [c["type"] for c in chunks(events)[2:]] == ["tool-input-start", "tool-input-delta", "tool-input-available",
                                                       "finish-step", "finish"]
    assert chunks(events)[3]["inputTextDelta"] == "{}"


def test_arguments_that_are_not_json_are_a_tool_input_error() -> None:
    events = [Done("tool_calls", 0, None, [{"id": "c", "function": {"name": "f", "arguments": "{oops"}}])]
    start, error = chunks(events)[2:4]
    assert start == {"type": "tool-input-start", "toolCallId": "c", "toolName": "f"}
    assert error["type"] == "tool-input-error" and error["input"] == "{oops"


@pytest.mark.parametrize(("relay", "ai_sdk"), [("stop", "stop"), ("length", "length"),
                                               ("content_filter", "content-filter"), ("tool_calls", "tool-calls"),
                                               ("something_new", "other")])
def test_finish_reasons(relay: str, ai_sdk: str) -> None:
    assert chunks([Done(relay, 0, None)])[-1] == {"type": "finish", "finishReason": ai_sdk}


def test_an_error_keeps_the_relay_code() -> None:
    assert chunks([Chunk("a", 0), Failed(ErrorCode.RATE_LIMITED, "Slow down.", 1)])[-2:] == [
        {"type": "text-end", "id": "text-0"}, {"type": "error", "errorText": "rate_limited: Slow down."}]


def test_a_stop_is_an_abort() -> None:
    assert chunks([Chunk("a", 0), Done("cancelled", 1, None)])[-1] == {"type": "abort", "reason": "stopped"}


def test_refusals_are_text_and_kinds_to_come_are_left_out() -> None:
    events = [PartsChunk("", 0, [{"type": "refusal", "text": "No."}]),
              PartsChunk("", 1, [{"type": "a_kind_to_come", "x": 1}]), Done("stop", 2, None)]
    assert chunks(events)[2:] == [
        {"type": "text-start", "id": "text-0"}, {"type": "text-delta", "id": "text-0", "delta": "No."},
        {"type": "text-end", "id": "text-0"}, {"type": "finish-step"}, {"type": "finish", "finishReason": "stop"}]


def test_server_side_tools_are_outputs_and_the_next_reply_a_next_step() -> None:
    """The relay's server-side tools (tool_result, tool_error parts) as streamText's executed tools appear: the
    calls' inputs, their outputs, then the model's next reply in a step of its own."""
    call = {"type": "tool_call", "index": 0, "id": "c1", "name": "population", "arguments": '{"city":"Oslo"}'}
    events = [PartsChunk("", 0, [call, {**call, "index": 1, "id": "c2", "arguments": "{}"}]),
              PartsChunk("", 2, [{"type": "tool_result", "id": "c1", "name": "population", "result": {"n": 709000}},
                                 {"type": "tool_error", "id": "c2", "name": "population", "message": "Failed."}]),
              Chunk("Oslo.", 3), Done("stop", 4, None)]
    assert chunks(events)[2:] == [
        {"type": "tool-input-start", "toolCallId": "c1", "toolName": "population"},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"city":"Oslo"}'},
        {"type": "tool-input-start", "toolCallId": "c2", "toolName": "population"},
        {"type": "tool-input-delta", "toolCallId": "c2", "inputTextDelta": "{}"},
        {"type": "tool-input-available", "toolCallId": "c1", "toolName": "population", "input": {"city": "Oslo"}},
        {"type": "tool-input-available", "toolCallId": "c2", "toolName": "population", "input": {}},
        {"type": "tool-output-available", "toolCallId": "c1", "output": {"n": 709000}},
        {"type": "tool-output-error", "toolCallId": "c2", "errorText": "Failed."},
        {"type": "finish-step"}, {"type": "start-step"},
        {"type": "text-start", "id": "text-0"}, {"type": "text-delta", "id": "text-0", "delta": "Oslo."},
        {"type": "text-end", "id": "text-0"},
        {"type": "finish-step"}, {"type": "finish", "finishReason": "stop"},
    ]


# The request.

def ui(*messages: dict, **body: object) -> dict:
    return {"id": "chat-1", "messages": list(messages), "trigger": "submit-message", "messageId": None, **body}


def text(role: str, *texts: str) -> dict:
    return {"id": "m", "role": role, "parts": [{"type": "text", "text": t} for t in texts]}


def test_a_reply_continues_the_assistant_message_it_follows() -> None:
    """After a tool's output the last message is the assistant's: the reply is that message (useChat appends
    to it only when the ids match); after a user's message it is a new one; an id the reply cannot echo safely
    (control characters, too long) gives a new one too."""
    tool = {"type": "tool-f", "toolCallId": "c1", "state": "output-available", "input": {}, "output": 1}
    after_tool = {"id": "a1", "role": "assistant", "parts": [tool]}
    assert parse_ui_request(ui(text("user", "Hi"), after_tool)).message_id == "a1"
    assert parse_ui_request(ui(text("user", "Hi"))).message_id == ""
    for bad in ("a\n1", "x" * 201, ""):
        assert parse_ui_request(ui(text("user", "Hi"), {**after_tool, "id": bad})).message_id == ""
    body = b"".join(ui_message_stream("s1", [Done("stop", 0, None)], message_id="a1"))
    assert json.loads(body.split(b"\n\n")[0].removeprefix(b"data: ")) == {"type": "start", "messageId": "a1"}


def test_text_messages() -> None:
    converted = parse_ui_request(ui(text("system", "Be ", "brief."), text("user", "Hi"), text("user", "a", "b")))
    assert converted.chat_id == "chat-1"
    assert converted.payload == {"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}


def test_images_and_only_images() -> None:
    image = {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,iVBORw0KGgo=", "filename": "a"}
    converted = parse_ui_request(ui({"id": "m", "role": "user", "parts": [{"type": "text", "text": "What?"}, image]}))
    assert converted.payload["messages"][0]["content"][1] == {"type": "image_url",
                                                             "image_url": {"url": image["url"]}}
    pdf = {**image, "mediaType": "application/pdf"}
    with pytest.raises(RelayError, match=r"'messages\[0\].parts\[0\].mediaType' must be an image type"):
        parse_ui_request(ui({"id": "m", "role": "user", "parts": [pdf]}))


def test_assistant_steps_tool_calls_and_their_results() -> None:
    """One message per step; a call with a result (or an error, or a denial) and its tool message; reasoning and a
    call still waiting for its result left out."""
    parts = [
        {"type": "step-start"}, {"type": "reasoning", "text": "think"}, {"type": "text", "text": "Let me look."},
        {"type": "tool-get_weather", "toolCallId": "c1", "state": "output-available", "input": {"city": "Oslo"},
         "output": {"t": 3}},
        {"type": "dynamic-tool", "toolName": "lookup", "toolCallId": "c2", "state": "output-error",
         "input": {}, "errorText": "offline"},
        {"type": "tool-ask", "toolCallId": "c3", "state": "output-denied", "input": {},
         "approval": {"id": "a", "approved": False, "reason": "no"}},
        {"type": "tool-later", "toolCallId": "c4", "state": "input-available", "input": {}},
        {"type": "step-start"}, {"type": "text", "text": "It is 3."},
    ]
    assert parse_ui_request(ui({"id": "a", "role": "assistant", "parts": parts})).payload["messages"] == [
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "c2", "type": "function", "function": {"name": "lookup", "arguments": "{}"}},
            {"id": "c3", "type": "function", "function": {"name": "ask", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"t":3}'},
        {"role": "tool", "tool_call_id": "c2", "content": "offline"},
        {"role": "tool", "tool_call_id": "c3", "content": "no"},
        {"role": "assistant", "content": "It is 3."},
    ]


def test_body_fields_are_the_relays_and_checked_by_it() -> None:
    settings = Settings(openai_api_key="k", openai_model="m", _env_file=None)  # type: ignore[arg-type]
    converted = parse_ui_request(ui(text("user", "Hi"), temperature=0.2, seed=7))
    request = parse_chat_request(converted.payload, settings)
    assert request.temperature == 0.2 and request.options == {"seed": 7}
    with pytest.raises(RelayError, match="colour"):
        parse_chat_request(parse_ui_request(ui(text("user", "Hi"), colour="red")).payload, settings)


@pytest.mark.parametrize(("body", "problem"), [
    ([], "JSON object"),
    (ui(), "'messages'"),
    ({**ui(text("user", "Hi")), "id": "has spaces"}, "'id'"),
    ({**ui(text("user", "Hi")), "id": 5}, "'id'"),
    (ui({"role": "robot", "parts": []}), r"'messages\[0\].role'"),
    (ui(text("user", "Hi"), prompt="Hi"), "'prompt'"),
    (ui(text("user", "Hi"), stream_id="s"), "'stream_id'"),
    (ui({"id": "m", "role": "user", "parts": [{"type": "text", "text": 5}]}), r"'messages\[0\].parts\[0\].text'"),
    ({**ui(text("user", "Hi")), "trigger": "other"}, "'trigger'"),
])
def test_bad_requests_are_refused_naming_the_field(body: object, problem: str) -> None:
    with pytest.raises(RelayError, match=problem) as refused:
        parse_ui_request(body)
    assert refused.value.code is ErrorCode.INVALID_REQUEST


# The chat index.

def test_a_chat_is_found_by_its_own_caller_only() -> None:
    index = ChatIndex(ttl=60)
    index.record("addr:1.2.3.4", "c", "s1", "token1")
    assert index.find("addr:1.2.3.4", "c") == ("s1", "token1", "")
    assert index.find("addr:5.6.7.8", "c") is None
    assert index.find("addr:1.2.3.4", "other") is None
    index.record("addr:1.2.3.4", "c", "s2", "token2", "a1")  # the chat's next reply, continuing message a1
    assert index.find("addr:1.2.3.4", "c") == ("s2", "token2", "a1")


def test_a_chat_is_forgotten_after_the_ttl() -> None:
    index = ChatIndex(ttl=0.000001)
    index.record("me", "c", "s1", "t")
    assert index.find("me", "c") is None


# The path option.

@pytest.mark.parametrize("path", ["api/chat", "/api/chat/", "", "/api chat"])
def test_a_path_that_is_not_one_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="ai_sdk_path"):
        ChatRelay(ai_sdk_path=path)


def test_the_endpoint_follows_its_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYNC_MODE", raising=False)
    settings = Settings(openai_api_key="k", openai_model="m", _env_file=None)  # type: ignore[arg-type]
    routes = {}
    for name, options in {"default": {}, "moved": {"url_prefix": "/ai", "ai_sdk_path": "/chat"},
                          "none": {"ai_sdk_path": None}}.items():
        app = Flask(__name__)
        ChatRelay(app, SocketIO(app, async_mode="threading"), settings=settings, **options)  # type: ignore[arg-type]
        routes[name] = {rule.rule for rule in app.url_map.iter_rules() if "chat" in rule.rule}
    assert routes["default"] == {"/api/chat", "/api/chat/<chat_id>/stream", "/api/chat/<chat_id>/stop"}
    assert routes["moved"] == {"/ai/chat", "/ai/chat/<chat_id>/stream", "/ai/chat/<chat_id>/stop"}
    assert routes["none"] == set()
