"""Server-side tools (`@relay.tool`, docs/protocol.md "Server-side tools") on a real server, driven by real clients:
the server is tests/tool_app.py (examples/server_tools.py with the tests' tools), started as a user starts an app
that mounts the relay, in each async mode; the model is the fake upstream, scripted one reply per round."""

from __future__ import annotations

import ast
import json
import shlex
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from relay_client import RelayClient, ToolCallPart, ToolResultPart, tool_message
from tests.clients import DONE, SioProbe, ndjson_events
from tests.conftest import API_KEY, BIN, MODES, ROOT, LiveServer, free_port, launch, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls, script_reply
from tests.metrics_scrape import check_bounded, relay_samples, scrape_text
from tests.outcomes import joined_parts
from tests.tool_app import SECRET

TOOL_TIMEOUT, MAX_TOOL_STEPS = 1, 2
TRANSPORTS = ["socketio", "http"]
ADD = script_reply(("text", "Adding. "), ("tool", 0, "call_add", "add", '{"a": 2,'),
                   ("tool", 0, None, None, ' "b": 3}'))
ECHO = [{"echo_tool": True}]  # the fake's text: what the last tool message said
MODELS = ["fake-model", "fake-model-2", "not-on-upstream"]  # upstream_env's ALLOWED_MODELS
TOOLS = ["city_population", "add", "refuse", "crash", "slow"]  # the tool app's, as registered


class ToolServers:
    """The tool app, one server per async mode, started the first time a test asks for that mode."""

    def __init__(self, fake: FakeUpstream, folder: Path) -> None:
        self._fake, self._folder, self._servers = fake, folder, {}

    def __call__(self, mode: str) -> LiveServer:
        if mode not in self._servers:
            port = free_port()
            env = {**upstream_env(self._fake), "HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": mode,
                   "TOOL_TIMEOUT": str(TOOL_TIMEOUT), "MAX_TOOL_STEPS": str(MAX_TOOL_STEPS)}
            command = ([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "tests.tool_app:create_app()"]
                       if mode == "gevent" else [sys.executable, "-m", "tests.tool_app"])
            self._servers[mode] = launch(f"tools-{mode}", command, port, env, self._folder / f"{mode}.log")
        return self._servers[mode]

    def stop(self) -> None:
        for server in self._servers.values():
            stop_server(server)
            log = server.log()
            assert API_KEY not in log and SECRET not in log, "a secret or a tool's exception text leaked into the log"


@pytest.fixture(scope="module")
def tool_servers(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ToolServers]:
    servers = ToolServers(fake_upstream, tmp_path_factory.mktemp("tool-servers"))
    yield servers
    servers.stop()


def request_of(steps: list[list[dict]], tag: str, **fields: Any) -> dict:
    """A request whose model replies `steps[n]` to the request of round n; `tag` finds its requests at the fake."""
    return {"stream_id": f"s-{tag}", "messages": [{"role": "user", "content": controls(steps=steps, note=tag)}],
            **fields}


def parts_of(chunks: list[tuple[str, int, list[dict] | None]]) -> list[dict]:
    """Every chunk's parts (a chunk without parts is its text), in order, after checking the one seq."""
    seqs = [seq for _, seq, _ in chunks]
    assert seqs == sorted(set(seqs)), f"seq must strictly increase: {seqs}"
    return joined_parts([(text, parts) for text, _, parts in chunks])


def run(server: LiveServer, transport: str, payload: dict) -> tuple[list[dict], dict, dict]:
    """(the parts, joined; the terminal event; the chunks' seqs) of one request run to its end."""
    if transport == "http":
        with requests.post(f"{server.url}/message/stream", json=payload, stream=True, timeout=30,
                           headers={"Accept": "application/x-ndjson"}) as response:
            assert response.status_code == 200, response.text
            events = list(ndjson_events(response))
            token = response.headers["X-Resume-Token"]
        chunks = [(e["text"], e["seq"], e.get("parts")) for e in events if e["type"] == "chunk"]
        terminals = [e for e in events if e["type"] != "chunk"]
    else:
        probe = SioProbe(server.url)
        try:
            ack = probe.start(payload)
            assert "error" not in ack, ack
            probe.wait_terminal(payload["stream_id"], timeout=30)
            probe.settle()
            chunks = [(t, m["seq"], m.get("parts")) for name, (t, m) in
                      ((n, p) for n, p in probe.events if n == "chatgpt_description_chunk")]
            terminals = [{"type": "done" if n == DONE else "error", **p} for n, p in
                         probe.terminals(payload["stream_id"])]
            token = probe.tokens[payload["stream_id"]]
        finally:
            probe.close()
    assert len(terminals) == 1, f"exactly one terminal event: {terminals}"
    visible = json.dumps([chunks, terminals])
    assert SECRET not in visible and "Traceback" not in visible
    return parts_of(chunks), terminals[0], {"token": token, "last_seq": chunks[-1][1] if chunks else -1}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_call_its_result_then_the_text_in_one_stream(tool_servers: ToolServers, fake_upstream: FakeUpstream,
                                                         transport: str) -> None:
    """Arguments split over two deltas run the tool once with the whole arguments (2 + 3); the client sees the
    call, the result, then the model's next reply, all numbered by one seq; the model's second request carries
    the call and the tool's answer."""
    tag = uuid.uuid4().hex
    parts, done, seen = run(tool_servers("gevent"), transport, request_of([ADD, ECHO], tag))
    assert parts == [
        {"type": "text", "text": "Adding. "},
        {"type": "tool_call", "index": 0, "id": "call_add", "name": "add", "arguments": '{"a": 2, "b": 3}'},
        {"type": "tool_result", "id": "call_add", "name": "add", "result": 5},
        {"type": "text", "text": "(tool call_add: 5)"},
    ]
    assert done["type"] == "done" and done["finish_reason"] == "stop" and "tool_calls" not in done
    assert done["chunks"] == seen["last_seq"] + 1 == 5  # the text, two fragments, the result, the text
    first, second = fake_upstream.requests_with(tag)
    assert [t["function"]["name"] for t in first["tools"]] == ["city_population", "add", "refuse", "crash", "slow"]
    assert second["messages"][1:] == [
        {"role": "assistant", "content": "Adding. ", "tool_calls": [
            {"id": "call_add", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
        {"role": "tool", "tool_call_id": "call_add", "content": "5"}]
    assert done["usage"]["completion_tokens"] == 3 + 1  # each request's (the fake counts deltas), summed


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_refusal_a_bug_and_bad_arguments_are_tool_errors_and_the_loop_goes_on(
        tool_servers: ToolServers, fake_upstream: FakeUpstream, transport: str) -> None:
    tag = uuid.uuid4().hex
    calls = script_reply(("tool", 0, "c_refuse", "refuse", '{"reason": "Not on Sundays."}'),
                         ("tool", 1, "c_crash", "crash", "{}"),
                         ("tool", 2, "c_bad", "add", '{"a": "two", "b": 3}'),
                         ("tool", 3, "c_json", "add", '{"a": 1,'))
    parts, done, _ = run(tool_servers("gevent"), transport, request_of([calls, ECHO], tag))
    errors = [part for part in parts if part["type"] == "tool_error"]
    assert errors == [
        {"type": "tool_error", "id": "c_refuse", "name": "refuse", "message": "Not on Sundays."},
        {"type": "tool_error", "id": "c_crash", "name": "crash", "message": "Tool 'crash' failed."},
        {"type": "tool_error", "id": "c_bad", "name": "add",
         "message": "The arguments of tool 'add' are not valid: 'a': Input should be a valid integer, unable to "
                    "parse string as an integer."},
        {"type": "tool_error", "id": "c_json", "name": "add",
         "message": "The arguments of tool 'add' are not valid: they are not JSON."},
    ]
    assert parts[-1] == {"type": "text", "text": '(tool c_json: {"error":"The arguments of tool \'add\' are not '
                                                 'valid: they are not JSON."})'}
    assert done["finish_reason"] == "stop"
    second = fake_upstream.requests_with(tag)[1]
    assert [m["tool_call_id"] for m in second["messages"] if m["role"] == "tool"] == [
        "c_refuse", "c_crash", "c_bad", "c_json"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_step_cap_ends_the_stream_with_its_finish_reason(tool_servers: ToolServers, fake_upstream: FakeUpstream,
                                                             transport: str) -> None:
    """A model that never stops calling: MAX_TOOL_STEPS rounds run, the next reply's call is not run, and the
    stream ends with tool_steps_exceeded after MAX_TOOL_STEPS + 1 requests upstream."""
    tag = uuid.uuid4().hex
    parts, done, _ = run(tool_servers("gevent"), transport, request_of([ADD], tag))
    assert done["finish_reason"] == "tool_steps_exceeded"
    assert len(fake_upstream.requests_with(tag)) == MAX_TOOL_STEPS + 1
    assert [p["type"] for p in parts if p["type"] != "text"] == ["tool_call", "tool_result"] * MAX_TOOL_STEPS + [
        "tool_call"]
    calls = [p for p in parts if p["type"] == "tool_call"]
    assert [call["index"] for call in calls] == list(range(MAX_TOOL_STEPS + 1))  # one index per call in the stream
    assert done["tool_calls"] == [{"id": "call_add", "type": "function",
                                   "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]


def test_a_mixed_reply_runs_the_servers_calls_and_hands_the_rest_to_the_client(
        tool_servers: ToolServers, fake_upstream: FakeUpstream) -> None:
    tag = uuid.uuid4().hex
    weather = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    mixed = script_reply(("tool", 0, "c_add", "add", '{"a": 1, "b": 1}'), ("tool", 1, "c_w", "weather", "{}"))
    parts, done, _ = run(tool_servers("gevent"), "http", request_of([mixed, ECHO], tag, tools=[weather]))
    assert [p["type"] for p in parts] == ["tool_call", "tool_call", "tool_result"]
    assert done["finish_reason"] == "tool_calls"
    assert [call["id"] for call in done["tool_calls"]] == ["c_add", "c_w"]
    assert len(fake_upstream.requests_with(tag)) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_relay_client_answers_a_mixed_reply_and_the_model_goes_on(tool_servers: ToolServers,
                                                                   fake_upstream: FakeUpstream,
                                                                   transport: str) -> None:
    """The round trip docs/protocol.md describes for mixed calls, with relay_client: the server's result comes as a
    ToolResultPart, and the client sends the reply back with a `tool` message for every call."""
    tag = uuid.uuid4().hex
    weather = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    mixed = script_reply(("tool", 0, "c_add", "add", '{"a": 1, "b": 1}'), ("tool", 1, "c_w", "weather", "{}"))
    conversation: list[dict] = [{"role": "user", "content": controls(steps=[mixed, ECHO], note=tag)}]
    with RelayClient(tool_servers("gevent").url, transport=transport) as client:
        with client.stream(messages=conversation, tools=[weather]) as reply:
            parts = list(reply.parts())
        assert [type(part) for part in parts] == [ToolCallPart, ToolCallPart, ToolResultPart]
        assert reply.done is not None and reply.done.finish_reason == "tool_calls"
        answered = {result.id: result.content() for result in reply.tool_results}
        assert answered == {"c_add": "2"}
        conversation += [{"role": "assistant", "content": None, "tool_calls": reply.tool_calls},
                         *(tool_message(call["id"], answered.get(call["id"], "sunny")) for call in reply.tool_calls)]
        assert client.stream(messages=conversation, tools=[weather]).read() == "(tool c_w: sunny)"
    assert len(fake_upstream.requests_with(tag)) == 2


def test_a_client_tool_named_as_a_servers_is_refused(tool_servers: ToolServers, fake_upstream: FakeUpstream) -> None:
    tag = uuid.uuid4().hex
    clash = {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
    response = requests.post(f"{tool_servers('gevent').url}/message/stream", timeout=10,
                             json=request_of([ECHO], tag, tools=[clash]))
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "invalid_request", "message":
                                        "'tools' names the function 'add', which is a tool of the server's."}
    assert fake_upstream.requests_with(tag) == []


def test_a_resume_replays_the_tool_results(tool_servers: ToolServers) -> None:
    server, tag = tool_servers("gevent"), uuid.uuid4().hex
    parts, done, seen = run(server, "http", request_of([ADD, ECHO], tag))
    with requests.get(f"{server.url}/message/stream/s-{tag}", params={"after_seq": 1}, timeout=10, stream=True,
                      headers={"Accept": "application/x-ndjson", "X-Resume-Token": seen["token"]}) as response:
        events = list(ndjson_events(response))
    replayed = parts_of([(e["text"], e["seq"], e.get("parts")) for e in events if e["type"] == "chunk"])
    assert [part["type"] for part in replayed] == ["tool_call", "tool_result", "text"]
    assert replayed == [{"type": "tool_call", "index": 0, "arguments": ' "b": 3}'}, *parts[2:]]
    assert events[-1] == {"type": "done", **{k: v for k, v in done.items() if k != "type"}}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_tool_past_its_timeout_is_a_tool_error(tool_servers: ToolServers, mode: str, transport: str) -> None:
    tag = uuid.uuid4().hex
    slow = script_reply(("tool", 0, "c_slow", "slow", json.dumps({"tag": tag, "seconds": 60})))
    before = tool_counts(tool_servers(mode))
    parts, done, _ = run(tool_servers(mode), transport, request_of([slow, ECHO], tag))
    message = f"Tool 'slow' took longer than TOOL_TIMEOUT ({TOOL_TIMEOUT} s)."
    assert parts[1:] == [{"type": "tool_error", "id": "c_slow", "name": "slow", "message": message},
                         {"type": "text", "text": f'(tool c_slow: {{"error":"{message}"}})'}]
    assert done["finish_reason"] == "stop"
    running = requests.get(f"{tool_servers(mode).url}/test/tools/running", timeout=5).json()
    assert tag not in running, "a timed-out tool's task was left running"
    assert tool_counts(tool_servers(mode)) - before == Counter({("slow", "timeout"): 1, ("slow", "timed"): 1})


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stop_while_a_tool_runs_makes_no_further_request(tool_servers: ToolServers, fake_upstream: FakeUpstream,
                                                           mode: str, transport: str) -> None:
    server, tag = tool_servers(mode), uuid.uuid4().hex
    slow = script_reply(("tool", 0, "c_slow", "slow", json.dumps({"tag": tag, "seconds": 0.9 * TOOL_TIMEOUT})))
    payload = request_of([slow, ECHO], tag)
    before = tool_counts(server)

    def tool_running() -> bool:
        return tag in requests.get(f"{server.url}/test/tools/running", timeout=5).json()

    if transport == "http":
        with requests.post(f"{server.url}/message/stream", json=payload, stream=True, timeout=30,
                           headers={"Accept": "application/x-ndjson"}) as response:
            events = ndjson_events(response)
            wait_until(tool_running)
            stopped = requests.post(f"{server.url}/message/stream/s-{tag}/stop", timeout=10,
                                    headers={"X-Resume-Token": response.headers["X-Resume-Token"]})
            assert stopped.status_code == 200, stopped.text
            terminal = [e for e in events if e["type"] != "chunk"]
    else:
        probe = SioProbe(server.url)
        try:
            assert "error" not in probe.start(payload)
            wait_until(tool_running)
            assert probe.stop(payload["stream_id"]) == {"stream_id": payload["stream_id"]}
            probe.wait_terminal(payload["stream_id"])
            terminal = [{"type": "done", **p} for n, p in probe.terminals(payload["stream_id"]) if n == DONE]
        finally:
            probe.close()
    assert [t["finish_reason"] for t in terminal] == ["cancelled"]
    wait_until(lambda: not tool_running())  # the tool's task was ended too (or ran out), and then ...
    assert len(fake_upstream.requests_with(tag)) == 1  # ... no second request ever went upstream
    assert tool_counts(server) - before == Counter({("slow", "cancelled"): 1, ("slow", "timed"): 1})


def test_each_call_is_counted_once_by_its_tool_and_outcome(tool_servers: ToolServers) -> None:
    """GET /metrics after one reply that calls the server's tools nine times: the tool's own refusal, a bug,
    arguments that are not valid, five results, and a ninth call past MAX_TOOL_CALLS (8), each counted once in
    relay_tool_calls_total under the tool's name; only the calls that ran are timed. The timeout and stop tests
    above count theirs. gevent only: the runner counts, the same code in both modes (those two run in both)."""
    server, tag = tool_servers("gevent"), uuid.uuid4().hex
    calls = [("refuse", '{"reason": "No."}'), ("crash", "{}"), ("add", '{"a": "two", "b": 3}'),
             *(("add", json.dumps({"a": n, "b": 1})) for n in range(6))]
    reply = script_reply(*(("tool", n, f"c{n}", name, arguments) for n, (name, arguments) in enumerate(calls)))
    before = tool_counts(server)
    parts, done, _ = run(server, "http", request_of([reply, ECHO], tag))
    assert done["finish_reason"] == "stop"
    assert [p["type"] for p in parts if p["type"] != "tool_call"][:-1] == (
        ["tool_error"] * 3 + ["tool_result"] * 5 + ["tool_error"])
    assert tool_counts(server) - before == Counter({
        ("refuse", "error"): 1, ("crash", "failed"): 1, ("add", "bad_arguments"): 1, ("add", "ok"): 5,
        ("add", "not_run"): 1, ("refuse", "timed"): 1, ("crash", "timed"): 1, ("add", "timed"): 5})


def tool_counts(server: LiveServer) -> Counter[tuple[str, str]]:
    """The server's relay_tool_calls_total by (tool, outcome), and the count of relay_tool_duration_seconds by
    (tool, "timed"), from GET /metrics, every label checked bounded on the way."""
    samples = relay_samples(scrape_text(server.url))
    check_bounded(samples, MODELS, TOOLS)
    counts: Counter[tuple[str, str]] = Counter()
    for (name, pairs), value in samples.items():
        where = dict(pairs)
        if name == "relay_tool_calls_total":
            counts[(where["tool"], where["outcome"])] += int(value)
        elif name == "relay_tool_duration_seconds_count":
            counts[(where["tool"], "timed")] += int(value)
    return counts


def wait_until(condition: Any, timeout: float = 10) -> None:
    """Poll a condition that has no event to wait on (the test app's list of running tools)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for a condition"
        time.sleep(0.02)  # polling a condition; there is no event to wait on


def example_commands() -> dict[str, list[str]]:
    """The commands examples/server_tools.py's docstring gives to run it, by async mode, as a user types them."""
    doc = ast.get_docstring(ast.parse((ROOT / "examples" / "server_tools.py").read_text())) or ""
    commands = {}
    for line in doc.splitlines():
        words = shlex.split(line, comments=True) if line.startswith("    .venv/") or "ASYNC_MODE=" in line else []
        if words:
            mode = words.pop(0).split("=", 1)[1] if words[0].startswith("ASYNC_MODE=") else "gevent"
            commands[mode] = [str(BIN / words[0].removeprefix(".venv/bin/")), *words[1:]]
    return commands


def test_the_example_runs_as_its_docstring_says_and_reads_its_database(
        fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    """examples/server_tools.py itself, started as documented (eventlet here; the gevent command serves the same
    app through gunicorn, as every tool test above does): its tool reads the city table, and refuses a city it
    does not have with its own message."""
    commands = example_commands()
    assert sorted(commands) == sorted(MODES)
    assert commands["gevent"][1:] == ["-c", "gunicorn.conf.py", "examples.server_tools:create_app()"]
    port, tag = free_port(), uuid.uuid4().hex
    env = {**upstream_env(fake_upstream), "HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": "eventlet"}
    server = launch("example-eventlet", commands["eventlet"], port, env, tmp_path / "example.log")
    try:
        asks = script_reply(("tool", 0, "c1", "city_population", '{"city": "oslo"}'),
                            ("tool", 1, "c2", "city_population", '{"city": "Atlantis"}'))
        parts, done, _ = run(server, "http", request_of([asks, ECHO], tag))
    finally:
        stop_server(server)
    assert parts[2:] == [
        {"type": "tool_result", "id": "c1", "name": "city_population",
         "result": {"city": "Oslo", "population": 709000}},
        {"type": "tool_error", "id": "c2", "name": "city_population",
         "message": "No city named 'Atlantis' in the database."},
        {"type": "text", "text": '(tool c2: {"error":"No city named \'Atlantis\' in the database."})'}]
    assert done["finish_reason"] == "stop"


def test_the_ai_sdk_sees_a_server_tool_as_streamText_shows_an_executed_one(tool_servers: ToolServers) -> None:
    """Over POST /api/chat, read by the real `ai` package: the call's part carries its input and its output
    (`output-available`), and the model's next reply is a step of its own, as an AI SDK backend shows a tool it
    executed."""
    from tests import ai_sdk_client

    ask = controls(steps=[ADD, ECHO], note=uuid.uuid4().hex)
    result = ai_sdk_client.run(f"{tool_servers('gevent').url}/api/chat", "send", f"chat-{uuid.uuid4().hex[:12]}",
                               [ai_sdk_client.user(ask)])
    assert result["status"] == "ok" and result["errors"] == [], result
    assert result["message"]["parts"] == [
        {"type": "step-start"},
        {"type": "text", "text": "Adding. ", "state": "done"},
        {"type": "tool-add", "toolCallId": "call_add", "state": "output-available", "input": {"a": 2, "b": 3},
         "output": 5},
        {"type": "step-start"},
        {"type": "text", "text": "(tool call_add: 5)", "state": "done"},
    ]
    assert result["chunks"][-2:] == ["finish-step", "finish"]
