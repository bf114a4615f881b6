"""Both transports of `useChat` write the same UI message chunks for the same relay events: the Socket.IO chat
transport's translator (frontend/src/relayToUIChunks.js, run by node) and POST /api/chat's writer
(chat_relay/transports/ai_sdk/ui_stream.py), and both convert the same UI messages to the same relay messages
(frontend/src/uiMessagesToRelay.js and ui_request.py). So a `useChat` app sees the same messages whichever it uses."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from chat_relay.errors import ErrorCode, RelayError
from chat_relay.streams.events import Chunk, Done, Failed, PartsChunk
from chat_relay.transports.ai_sdk.ui_request import parse_ui_request
from chat_relay.transports.ai_sdk.ui_stream import UIMessageWriter
from tests.conftest import ROOT

SRC = ROOT / "frontend" / "src"
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
TOOL = {"type": "tool_call", "index": 0}

# Each a reply as the relay's events: (text, seq, parts or None) for a chunk, then a Done or a Failed.
REPLIES: dict[str, list[Any]] = {
    "text": [("Hel", 0, None), ("lo.", 1, None), Done("length", 2, None)],
    "reasoning, text, tool call": [
        ("", 0, [{"type": "reasoning", "text": "Hm."}]),
        ("It", 2, [{"type": "reasoning", "text": " Yes."}, {"type": "text", "text": "It"}]),
        ("", 3, [{**TOOL, "id": "call_1", "name": "get_weather", "arguments": '{"city":'}]),
        ("", 4, [{**TOOL, "arguments": ' "Oslo"}'}]),
        Done("tool_calls", 5, None, [CALL]),
    ],
    "a call whose id comes late, and one that only the done event has": [
        ("", 0, [{**TOOL, "arguments": "{"}]), ("", 1, [{**TOOL, "id": "c0", "name": "f", "arguments": "}"}]),
        Done("tool_calls", 2, None, [{"id": "c0", "function": {"name": "f", "arguments": "{}"}},
                                     {"id": "c9", "function": {"name": "g", "arguments": "not json"}}]),
    ],
    "calls as streamed, without the done's": [
        ("", 0, [{**TOOL, "id": "a", "name": "f", "arguments": '{"x": 1}'}]),
        ("", 1, [{"type": "tool_call", "index": 1, "id": "b", "name": "g", "arguments": ""}]),
        Done("function_call", 2, None),
    ],
    "a refusal": [("", 0, [{"type": "refusal", "text": "No."}]), Done("content_filter", 1, None)],
    "the relay's own tools, then the next reply": [
        ("", 0, [{**TOOL, "id": "a", "name": "clock", "arguments": "{}"}]),
        ("", 1, [{"type": "tool_call", "index": 1, "id": "b", "name": "weather", "arguments": '{"city": "Oslo"}'}]),
        ("", 3, [{"type": "tool_result", "id": "a", "name": "clock", "result": {"time": "noon"}},
                 {"type": "tool_error", "id": "b", "name": "weather", "message": "No forecast."}]),
        ("It is noon.", 4, None), Done("stop", 5, None),
    ],
    "an error mid-text": [("Hel", 0, None), Failed(ErrorCode.UPSTREAM_TIMEOUT, "The model went quiet.", 1)],
    "a stop": [("Hel", 0, None), Done("cancelled", 1, None)],
    "nothing but the end": [Done("stop", 0, None)],
}

# node: the translator fed each reply's events, as the transport feeds it the Socket.IO events.
TRANSLATE = """
import { RelayToUIChunks } from "%s";
const replies = JSON.parse(process.argv[1]);
const out = {};
for (const [name, events] of Object.entries(replies)) {
  const t = new RelayToUIChunks("msg-s1");
  out[name] = events.flatMap((e) => e.kind === "chunk" ? t.chunk(e.text, e.parts ?? undefined)
    : e.kind === "done" ? t.done(e.body) : t.error(e.body));
}
console.log(JSON.stringify(out));
"""
CONVERT = """
import { toRelayMessages } from "%s";
console.log(JSON.stringify(toRelayMessages(JSON.parse(process.argv[1]))));
"""
REFUSE = """
import { toRelayMessages } from "%s";
try { toRelayMessages(JSON.parse(process.argv[1])); } catch (err) { console.log(JSON.stringify(err.message)); }
"""


def node(script: str, argument: object) -> Any:
    if shutil.which("node") is None:
        pytest.skip("node is missing (the page's tests need it too)")
    result = subprocess.run(["node", "--input-type=module", "-e", script, json.dumps(argument)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def relay_event(event: Any) -> Any:
    if isinstance(event, tuple):
        text, seq, parts = event
        return Chunk(text, seq) if parts is None else PartsChunk(text, seq, parts)
    return event


def socketio_event(event: Any) -> dict[str, Any]:
    """The event as the Socket.IO transport gets it: a chunk's text and parts, a terminal's payload."""
    if isinstance(event, tuple):
        return {"kind": "chunk", "text": event[0], "parts": event[2]}
    return {"kind": "done" if isinstance(event, Done) else "error", "body": event.payload("s1")}


def test_the_socketio_transport_writes_the_chunks_post_api_chat_writes() -> None:
    over_socketio = node(TRANSLATE % (SRC / "relayToUIChunks.js").as_uri(),
                         {name: [socketio_event(e) for e in events] for name, events in REPLIES.items()})
    for name, events in REPLIES.items():
        writer = UIMessageWriter("s1")
        over_http = writer.begin() + [chunk for event in events for chunk in writer.event(relay_event(event))]
        assert over_socketio[name] == over_http, name


UI_MESSAGES = [
    {"id": "s", "role": "system", "parts": [{"type": "text", "text": "Be brief."}]},
    {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Hi"}]},
    {"id": "u2", "role": "user", "parts": [
        {"type": "text", "text": "This?"},
        {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,iVBORw0KGgo="}]},
    {"id": "a", "role": "assistant", "parts": [
        {"type": "step-start"}, {"type": "reasoning", "text": "Hm."}, {"type": "text", "text": "Looking."},
        {"type": "tool-get_weather", "toolCallId": "c1", "state": "output-available",
         "input": {"city": "Tromsø", "days": [1, 2], "units": {"metric": True, "precision": 0.5}}, "output": "3 °C"},
        {"type": "tool-forecast", "toolCallId": "c5", "state": "output-available", "input": {"city": "Oslo"},
         "output": {"days": [{"high": 4, "note": None}]}},
        {"type": "dynamic-tool", "toolName": "clock", "toolCallId": "c2", "state": "output-error", "input": {},
         "errorText": "No clock."},
        {"type": "tool-pay", "toolCallId": "c3", "state": "output-denied", "input": {},
         "approval": {"id": "p", "approved": False, "reason": "Too dear."}},
        {"type": "step-start"}, {"type": "text", "text": "Done."},
        {"type": "tool-late", "toolCallId": "c4", "state": "input-available", "input": {}},
    ]},
    {"id": "u3", "role": "user", "parts": [{"type": "text", "text": "Thanks"}]},
]


def test_both_transports_send_the_same_relay_messages() -> None:
    over_socketio = node(CONVERT % (SRC / "uiMessagesToRelay.js").as_uri(), UI_MESSAGES)
    over_http = parse_ui_request({"id": "chat-1", "messages": UI_MESSAGES}).payload["messages"]
    assert over_socketio == over_http


def test_both_refuse_a_file_that_is_not_an_image_in_the_same_words() -> None:
    pdf = [{"id": "u", "role": "user", "parts": [{"type": "file", "mediaType": "application/pdf", "url": "data:,"}]}]
    script = REFUSE % (SRC / "uiMessagesToRelay.js").as_uri()
    with pytest.raises(RelayError) as refused:
        parse_ui_request({"id": "chat-1", "messages": pdf})
    assert node(script, pdf) == f"{refused.value.code.value}: {refused.value.message}"
