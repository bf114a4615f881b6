"""`useChat` over Socket.IO: the relay's Socket.IO chat transport (frontend/src/socketChatTransport.js) driven from
Node against the running relay, read by the real `ai` package (frontend/test/live/socketChatClient.mjs), in each
async mode. For the same replies of the fake upstream it builds exactly the UI message that DefaultChatTransport
builds from POST /api/chat (tests/live/test_ai_sdk.py), sends the same conversation upstream, keeps the relay's
error codes, and its abort stops the reply at the relay."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

from tests import ai_sdk_client
from tests.ai_sdk_client import NODE, require_ai_package, user
from tests.conftest import API_KEY, ROOT, LiveServer
from tests.fake_upstream import FakeUpstream, controls, script_reply
from tests.live.test_embedding import team_server  # noqa: F401  (a fixture: the relay in a team's app)
from tests.live.test_server_tools import ADD, ECHO, ToolServers, tool_servers  # noqa: F401  (tool_servers: a fixture)

SCRIPT = ROOT / "frontend" / "test" / "live" / "socketChatClient.mjs"
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def over_socketio(server: LiveServer, messages: list[dict], **options: Any) -> dict[str, Any]:
    require_ai_package()
    argument = json.dumps({"chatId": f"chat-{uuid.uuid4().hex[:12]}", "messages": messages, **options})
    done = subprocess.run([NODE, str(SCRIPT), server.url, argument], cwd=ROOT / "frontend", capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip(), f"the Socket.IO client failed: {done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def over_http(server: LiveServer, messages: list[dict], **options: Any) -> dict[str, Any]:
    return ai_sdk_client.run(f"{server.url}/api/chat", "send", f"chat-{uuid.uuid4().hex[:12]}", messages, **options)


def without_ids(result: dict[str, Any]) -> dict[str, Any]:
    """The UI message but its id, which names its stream (msg-<stream id>): one stream per transport here."""
    message = result["message"]
    assert message["id"].startswith("msg-"), message
    return {**result, "message": {**message, "id": "msg-"}}


REPLIES = {
    "reasoning then text": script_reply(("reasoning", "Let me "), ("reasoning_content", "think."),
                                        ("text", "Hello"), ("text", " there.")),
    "parallel tool calls": script_reply(
        ("text", "Checking."), ("tool", 0, "call_a", "get_weather", '{"city":'), ("tool", 1, "call_b", "get_time", "{"),
        ("tool", 0, None, None, ' "Oslo"}'), ("tool", 1, None, None, '"tz": "CET"}')),
    "a refusal": script_reply(("refusal", "I can't help with that.")),
}


@pytest.mark.parametrize("reply", sorted(REPLIES))
def test_the_same_ui_message_as_over_http(live_server: LiveServer, reply: str) -> None:
    ask = controls(deltas=REPLIES[reply], finish_reason="tool_calls" if "tool" in reply else "stop")
    socketio, http = over_socketio(live_server, [user(ask)]), over_http(live_server, [user(ask)])
    assert socketio["status"] == "ok" and socketio["errors"] == [], socketio
    assert without_ids(socketio)["message"] == without_ids(http)["message"]
    # (how many deltas each run has depends on how the relay batched the pieces for each reader: not compared)
    assert socketio["chunks"][:2] == http["chunks"][:2] == ["start", "start-step"]
    assert socketio["chunks"][-2:] == http["chunks"][-2:] == ["finish-step", "finish"]


def test_the_same_conversation_goes_upstream(live_server: LiveServer, fake_upstream: FakeUpstream) -> None:
    """A tool's output sent back (the step after a call) reaches the model as over HTTP, body fields as they are."""
    sent = []
    for send in (over_socketio, over_http):
        tag = uuid.uuid4().hex
        messages = [user(f"Weather in Oslo? {tag}"), {"id": "a1", "role": "assistant", "parts": [
            {"type": "step-start"}, {"type": "reasoning", "text": "A tool, then.", "state": "done"},
            {"type": "tool-get_weather", "toolCallId": "call_1", "state": "output-available",
             "input": {"city": "Oslo"}, "output": {"temp": 3}}]}]
        result = send(live_server, messages, body={"tools": [WEATHER], "temperature": 0.5})
        if send is over_socketio:  # the reply continues the assistant's message, as useChat expects it to
            assert result["message"]["id"] == "a1", result
        [request] = fake_upstream.requests_with(tag)
        sent.append(json.loads(json.dumps(request).replace(tag, "<tag>")))
    assert sent[0] == sent[1]
    assert sent[0]["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"city":"Oslo"}'


def test_errors_keep_the_relay_codes(live_server: LiveServer) -> None:
    refused = over_socketio(live_server, [user("hi")], body={"model": "no-such-model"})
    assert refused["chunks"] == ["error"] and refused["errors"][0].startswith("invalid_request: "), refused
    failed = over_socketio(live_server, [user(controls(fault="error_event"))])
    [error] = failed["errors"]
    assert error.startswith("upstream_error: ") and "SECRET" not in error and API_KEY not in error
    assert failed["chunks"][-2:] == ["text-end", "error"]
    assert without_ids(failed)["message"] == without_ids(over_http(live_server, [user(controls(fault="error_event"))]))[
        "message"]


def test_an_abort_stops_the_reply_at_the_relay(live_server: LiveServer, fake_upstream: FakeUpstream) -> None:
    aborted = fake_upstream.aborted
    result = over_socketio(live_server, [user(controls(chunks=3000, delay=0.02))], stopAfter=3)
    assert result["cancelled"], "the relay did not end the stream on the stop"
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=10), "the upstream runs on"
    assert result["message"]["parts"][-1]["text"] == "w0 w1 w2 " and result["errors"] == []


def test_a_relay_mounted_in_another_app_under_its_own_names(team_server: LiveServer) -> None:  # noqa: F811
    """examples/embed_app.py: the relay's events are `assistant`, `assistant_chunk`... on the namespace /ai."""
    result = over_socketio(team_server, [user(controls(text=["Hi", " team."]))], event="assistant", namespace="/ai")
    assert result["status"] == "ok" and result["errors"] == [], result
    assert result["message"]["parts"][-1] == {"type": "text", "text": "Hi team.", "state": "done"}


@pytest.mark.parametrize("mode", ["gevent", "eventlet"])
def test_a_server_side_tool_as_over_http(tool_servers: ToolServers, mode: str) -> None:  # noqa: F811
    """A tool the relay runs itself (tests/tool_app.py): its part has input and output, the model's next reply is
    a step of its own, the same UI message as POST /api/chat gives."""
    server = tool_servers(mode)
    ask = controls(steps=[ADD, ECHO], note=uuid.uuid4().hex)
    socketio, http = over_socketio(server, [user(ask)]), over_http(server, [user(ask)])
    assert socketio["status"] == "ok" and socketio["errors"] == [], socketio
    assert without_ids(socketio)["message"] == without_ids(http)["message"]
    assert socketio["message"]["parts"][2] == {"type": "tool-add", "toolCallId": "call_add",
                                               "state": "output-available", "input": {"a": 2, "b": 3}, "output": 5}
