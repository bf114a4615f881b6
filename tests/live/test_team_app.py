"""examples/team_app, a team's app on the relay's hooks, started as its docstring says, in each async mode, driven
over both transports with its own login: only logged-in users stream, each conversation is saved and shown back
at /history, the upstream gets the team's system prompt and a keyed hash of the user (FORWARD_USER), never the
name, the model's call of the team's tool is run on the server from its SQLite data and kept in the history, and
the free plan's budget runs out."""

from __future__ import annotations

import ast
import json
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chat_relay.config import Settings
from chat_relay.hooks.forward_user import UserHashes
from tests.clients import SioProbe
from tests.conftest import API_KEY, BIN, MODES, ROOT, LiveServer, free_port, launch, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls, script_reply
from tests.live.test_access import refused_connect
from tests.outcomes import TRANSPORTS, Outcome, run_http, run_socketio
from tests.waits import until

SECRET = "team-app-test-secret"
FREE_BUDGET = 300  # bob's: one long reply's worth (tests below)


def documented_command(mode: str) -> list[str]:
    """The command examples/team_app/app.py's docstring gives for `mode`, as a user types it."""
    doc = ast.get_docstring(ast.parse((ROOT / "examples" / "team_app" / "app.py").read_text())) or ""
    for line in doc.splitlines():
        words = shlex.split(line, comments=True) if line.startswith("    ") and "team_app" in line else []
        if not words or words[0] == "curl":
            continue
        settings = [word for word in words if "=" in word and word.split("=", 1)[0].isupper()]
        program, *args = words[len(settings):]
        if ("ASYNC_MODE=eventlet" in settings) == (mode == "eventlet"):
            assert program.startswith(".venv/bin/"), line
            return [str(BIN / program.removeprefix(".venv/bin/")), *args]
    raise AssertionError(f"examples/team_app/app.py gives no command for {mode}")


@pytest.fixture(scope="module", params=MODES)
def team_app(request: pytest.FixtureRequest, fake_upstream: FakeUpstream,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    mode, port = request.param, free_port()
    workdir: Path = tmp_path_factory.mktemp(f"team-app-{mode}")
    env = {**upstream_env(fake_upstream), "HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": mode,
           "SECRET_KEY": SECRET, "TEAM_DB": str(workdir / "team.sqlite3"), "FORWARD_USER": "true",
           "TEAM_FREE_BUDGET": str(FREE_BUDGET)}
    server = launch(f"team-{mode}", documented_command(mode), port, env, workdir / "server.log")
    yield server
    stop_server(server)
    assert API_KEY not in server.log() and SECRET not in server.log()


def logged_in(server: LiveServer, name: str, password: str) -> requests.Session:
    session = requests.Session()
    answer = session.post(f"{server.url}/login", json={"name": name, "password": password}, timeout=10)
    assert answer.status_code == 200, answer.text
    return session


def ask(server: LiveServer, session: requests.Session, transport: str, payload: dict) -> Outcome:
    if transport == "http":
        return run_http(f"{server.url}/ai", payload, headers={"Cookie": f"session={session.cookies['session']}"})
    probe = SioProbe(server.url, headers={"Cookie": f"session={session.cookies['session']}"})
    try:
        return run_socketio(probe, payload)
    finally:
        probe.close()


def test_only_logged_in_users_may_ask(team_app: LiveServer) -> None:
    refused = run_http(f"{team_app.url}/ai", {"prompt": "hi"})
    assert refused.status == 401 and refused.terminal["code"] == "unauthorized"
    _, reasons = refused_connect(team_app.url)
    assert [reason["data"]["code"] for reason in reasons] == ["unauthorized"]
    wrong = requests.post(f"{team_app.url}/login", json={"name": "alice", "password": "nope"}, timeout=10)
    assert wrong.status_code == 401
    assert requests.get(f"{team_app.url}/history", timeout=10).status_code == 401


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_users_conversations_are_saved_and_shown_back(team_app: LiveServer, transport: str,
                                                        fake_upstream: FakeUpstream) -> None:
    alice = logged_in(team_app, "alice", "wonderland")
    tag = uuid.uuid4().hex
    prompt = controls(chunks=4, tag=tag)
    outcome = ask(team_app, alice, transport, {"prompt": prompt, "stream_id": tag})
    assert outcome.terminal["type"] == "done" and outcome.text == "w0 w1 w2 w3 "

    (sent,) = fake_upstream.requests_with(tag)
    assert sent["messages"] == [
        {"role": "system", "content": "You are the team's assistant. The user is on the pro plan."},
        {"role": "user", "content": prompt}]
    hashes = UserHashes(Settings(openai_api_key="x", forward_user=True, secret_key=SECRET,
                                 _env_file=None))  # type: ignore[call-arg]
    assert sent["safety_identifier"] == hashes.of("alice") and "alice" not in str(sent)

    def saved() -> list[dict]:
        return [entry for entry in alice.get(f"{team_app.url}/history", timeout=10).json()["history"]
                if entry["stream_id"] == tag]

    assert until(lambda: bool(saved()))
    assert saved() == [{"stream_id": tag, "asked": prompt, "answer": "w0 w1 w2 w3 ", "tools": [],
                        "finish_reason": "stop", "error": None, "tokens": outcome.terminal["usage"]["total_tokens"]}]
    bob = logged_in(team_app, "bob", "builder")
    assert all(entry["stream_id"] != tag for entry in bob.get(f"{team_app.url}/history", timeout=10).json()["history"])


PLAN_LOOKUP = script_reply(("text", "Let me look. "), ("tool", 0, "call_plan", "plan_details", '{"plan":'),
                           ("tool", 0, None, None, ' "free"}'), ("tool", 1, "call_gold", "plan_details",
                                                                '{"plan": "gold"}'))
ECHO = [{"echo_tool": True}]  # the fake's next reply: what the last tool message said
FREE_PLAN = {"plan": "free", "daily_tokens": FREE_BUDGET, "models": "the default model"}  # app.py's plans table


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_models_call_of_the_teams_tool_is_streamed_and_kept_in_the_history(
        team_app: LiveServer, transport: str, fake_upstream: FakeUpstream) -> None:
    """The model calls plan_details twice (a plan the table has, one it has not); the relay runs both on the server,
    the client sees the calls, the row read from SQLite, the tool's refusal, then the model's text; on_finish keeps
    the same calls and outcomes in the user's history."""
    alice = logged_in(team_app, "alice", "wonderland")
    tag = uuid.uuid4().hex
    prompt = controls(steps=[PLAN_LOOKUP, ECHO], note=tag)
    outcome = ask(team_app, alice, transport, {"prompt": prompt, "stream_id": tag})
    gold_error = "There is no plan named 'gold'."
    answer = f'Let me look. (tool call_gold: {{"error":"{gold_error}"}})'
    assert outcome.terminal["type"] == "done" and outcome.terminal["finish_reason"] == "stop"
    assert outcome.parts == [
        {"type": "text", "text": "Let me look. "},
        {"type": "tool_call", "index": 0, "id": "call_plan", "name": "plan_details", "arguments": '{"plan": "free"}'},
        {"type": "tool_call", "index": 1, "id": "call_gold", "name": "plan_details", "arguments": '{"plan": "gold"}'},
        {"type": "tool_result", "id": "call_plan", "name": "plan_details", "result": FREE_PLAN},
        {"type": "tool_error", "id": "call_gold", "name": "plan_details", "message": gold_error},
        {"type": "text", "text": answer.removeprefix("Let me look. ")},
    ]
    first, second = fake_upstream.requests_with(tag)
    assert [tool["function"]["name"] for tool in first["tools"]] == ["plan_details"]
    assert [m["content"] for m in second["messages"] if m["role"] == "tool"] == [
        json.dumps(FREE_PLAN, separators=(",", ":")), json.dumps({"error": gold_error}, separators=(",", ":"))]

    def saved() -> list[dict]:
        return [entry for entry in alice.get(f"{team_app.url}/history", timeout=10).json()["history"]
                if entry["stream_id"] == tag]

    assert until(lambda: bool(saved()))
    assert saved() == [{"stream_id": tag, "asked": prompt, "answer": answer, "tools": [
        {"id": "call_plan", "name": "plan_details", "arguments": '{"plan": "free"}', "result": FREE_PLAN},
        {"id": "call_gold", "name": "plan_details", "arguments": '{"plan": "gold"}', "error": gold_error}],
        "finish_reason": "stop", "error": None, "tokens": outcome.terminal["usage"]["total_tokens"]}]


def test_the_history_keeps_every_rounds_calls_when_the_last_round_calls_a_clients_tool(
        team_app: LiveServer, fake_upstream: FakeUpstream) -> None:
    """A second round that calls the team's tool and one of the client's ends the stream with `tool_calls` (the
    client answers its call); done carries that round's calls, and the history still has the first round's."""
    alice = logged_in(team_app, "alice", "wonderland")
    tag = uuid.uuid4().hex
    chart = {"type": "function", "function": {"name": "show_chart", "parameters": {"type": "object"}}}
    mixed = script_reply(("tool", 0, "call_pro", "plan_details", '{"plan": "pro"}'),
                         ("tool", 1, "call_chart", "show_chart", "{}"))
    outcome = ask(team_app, alice, "http", {"prompt": controls(steps=[PLAN_LOOKUP, mixed], note=tag),
                                            "stream_id": tag, "tools": [chart]})
    assert outcome.terminal["finish_reason"] == "tool_calls"
    assert [call["id"] for call in outcome.terminal["tool_calls"]] == ["call_pro", "call_chart"]
    assert len(fake_upstream.requests_with(tag)) == 2

    def saved_tools() -> list[dict] | None:
        history = alice.get(f"{team_app.url}/history", timeout=10).json()["history"]
        return next((entry["tools"] for entry in history if entry["stream_id"] == tag), None)

    assert until(lambda: saved_tools() is not None)
    pro = {"plan": "pro", "daily_tokens": 50_000, "models": "any model the relay allows"}
    assert [{key: step.get(key) for key in ("id", "result", "error")} for step in saved_tools() or []] == [
        {"id": "call_plan", "result": FREE_PLAN, "error": None},
        {"id": "call_gold", "result": None, "error": "There is no plan named 'gold'."},
        {"id": "call_pro", "result": pro, "error": None},
        {"id": "call_chart", "result": None, "error": None}]  # the client's tool: the client runs it


def test_the_free_plans_budget_runs_out(team_app: LiveServer) -> None:
    bob = logged_in(team_app, "bob", "builder")
    long_reply = {"prompt": controls(chunks=200), "max_tokens": 250}
    first = ask(team_app, bob, "http", {**long_reply, "stream_id": uuid.uuid4().hex})
    assert first.terminal["type"] == "done"
    for transport in TRANSPORTS:  # what is left of 300 tokens is less than another such reply may take
        refused = ask(team_app, bob, transport, {**long_reply, "stream_id": uuid.uuid4().hex})
        assert refused.terminal["code"] == "budget_exceeded" and refused.terminal["retry_after"] >= 1
    alice = logged_in(team_app, "alice", "wonderland")  # another user, another budget
    assert ask(team_app, alice, "socketio", {**long_reply, "stream_id": uuid.uuid4().hex}).terminal["type"] == "done"
