"""examples/embed_app.py, the relay mounted in a team's Flask app, run as a user runs it in each async mode: the
team's own routes and Socket.IO handlers keep working, and the relay answers under its prefix, namespace and
event names only (docs/protocol.md, "Mounted in another app")."""

from __future__ import annotations

import ast
import re
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import engineio
import pytest
import requests

from relay_client.in_order import InOrderClient  # events handled in wire order (python-socketio #382)
from tests.clients import ndjson_events
from tests.conftest import API_KEY, BIN, MODES, ROOT, LiveServer, free_port, launch, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import check_cursor, run_http

PREFIX, NAMESPACE, EVENT = "/ai", "/ai", "assistant"
CONNECT_TIMEOUT = 1  # SOCKETIO_CONNECT_TIMEOUT: short, so that a test can see the watchdog pass


def documented_commands() -> dict[str, list[str]]:
    """The commands examples/embed_app.py's docstring gives to run it, by async mode, as a user types them
    (`.venv/bin/` is this test's venv): a command that would not run as written fails here."""
    doc = ast.get_docstring(ast.parse((ROOT / "examples" / "embed_app.py").read_text())) or ""
    commands = {}
    for line in doc.splitlines():
        words = shlex.split(line, comments=True) if line.startswith("    ") and "embed_app" in line else []
        if not words or words[0] == "curl":
            continue
        assignments = dict(word.split("=", 1) for word in words if re.fullmatch(r"[A-Z_]+=\S*", word))
        program, *args = words[len(assignments):]
        assert program.startswith(".venv/bin/"), f"not on the path unless .venv is activated: {line.strip()}"
        commands[assignments.get("ASYNC_MODE", "gevent")] = [str(BIN / program.removeprefix(".venv/bin/")), *args]
    return commands


def example_command(mode: str) -> list[str]:
    """The way examples/embed_app.py's docstring says to run it in `mode`."""
    return documented_commands()[mode]


def test_the_docstring_gives_a_command_for_each_mode() -> None:
    assert sorted(documented_commands()) == sorted(MODES)


@pytest.fixture(scope="module", params=MODES)
def team_server(request: pytest.FixtureRequest, fake_upstream: FakeUpstream,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    mode, port = request.param, free_port()
    log_path: Path = tmp_path_factory.mktemp(f"embed-{mode}") / "server.log"
    env = {**upstream_env(fake_upstream), "HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": mode,
           "SOCKETIO_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT)}
    server = launch(f"embed-{mode}", example_command(mode), port, env, log_path)  # waits for the team's /healthz
    yield server
    stop_server(server)
    assert API_KEY not in server.log(), "the API key leaked into the server log"


class TeamClient:
    """A socketio.Client on the team's "/" and, optionally, the relay's namespace; records every event it gets, in
    the order it came (relay_client/in_order.py)."""

    def __init__(self, url: str, namespaces: list[str], transport: str = "websocket") -> None:
        self.client = InOrderClient(reconnection=False)
        self.events: list[tuple[str, str, tuple[Any, ...]]] = []  # (namespace, event, arguments) in arrival order
        self._cond = threading.Condition()
        self.client.on("*", self._record, namespace="*")
        self.client.connect(url, namespaces=namespaces, transports=[transport], wait_timeout=10)

    def _record(self, event: str, namespace: str, *args: Any) -> None:
        with self._cond:
            self.events.append((namespace, event, args))
            self._cond.notify_all()

    def wait(self, namespace: str, event: str, timeout: float = 15) -> tuple[Any, ...]:
        with self._cond:
            if not self._cond.wait_for(lambda: self.named(namespace, event), timeout):
                raise AssertionError(f"no {event} on {namespace}; events so far: {self.events[-5:]}")
            return self.named(namespace, event)[0]

    def named(self, namespace: str, event: str) -> list[tuple[Any, ...]]:
        return [args for ns, name, args in self.events if (ns, name) == (namespace, event)]

    def close(self) -> None:
        if self.client.connected:
            self.client.disconnect()


@pytest.fixture
def team_client(team_server: LiveServer) -> Iterator[TeamClient]:
    client = TeamClient(team_server.url, ["/", NAMESPACE])
    yield client
    client.close()


def test_the_teams_own_routes_and_socketio_handlers_still_answer(team_server: LiveServer,
                                                                  team_client: TeamClient) -> None:
    assert requests.get(f"{team_server.url}/healthz", timeout=5).json() == {"status": "ok", "app": "team"}
    assert "Team app" in requests.get(f"{team_server.url}/", timeout=5).text
    assert team_client.wait("/", "welcome") == ({"app": "team"},)  # its connect handler on "/" ran
    assert team_client.client.call("echo", {"hi": 1}, timeout=10) == {"echo": {"hi": 1}}
    relay_health = requests.get(f"{team_server.url}{PREFIX}/healthz", timeout=5).json()
    assert relay_health["status"] == "ok" and relay_health["connections"] >= 1


def test_a_socketio_stream_under_the_custom_names_arrives_complete(team_client: TeamClient) -> None:
    ack = team_client.client.call(EVENT, {"prompt": controls(chunks=25), "stream_id": "s1"}, namespace=NAMESPACE,
                                  timeout=10)
    assert ack["stream_id"] == "s1" and isinstance(ack["resume_token"], str)
    (done,) = team_client.wait(NAMESPACE, f"{EVENT}_done")
    team_client.client.call("echo", "barrier", timeout=10)  # a round trip: a stray second terminal would show
    chunks = [(meta["seq"], text) for text, meta in team_client.named(NAMESPACE, f"{EVENT}_chunk")]
    check_cursor(chunks, [f"w{i} " for i in range(25)], done)
    assert "".join(text for _, text in chunks) == "".join(f"w{i} " for i in range(25))
    assert done["stream_id"] == "s1" and done["finish_reason"] == "stop"
    assert team_client.named(NAMESPACE, f"{EVENT}_error") == []
    assert len(team_client.named(NAMESPACE, f"{EVENT}_done")) == 1
    assert all(ns == NAMESPACE for ns, name, _ in team_client.events if name.startswith(EVENT))


def test_a_stream_reaches_only_its_client(team_server: LiveServer, team_client: TeamClient) -> None:
    bystander = TeamClient(team_server.url, ["/", NAMESPACE], transport="polling")
    try:
        team_client.client.call(EVENT, {"prompt": controls(chunks=5), "stream_id": "mine"}, namespace=NAMESPACE)
        team_client.wait(NAMESPACE, f"{EVENT}_done")
        bystander.wait("/", "welcome")
        bystander.client.call("echo", "barrier", timeout=10)
        assert [name for _, name, _ in bystander.events] == ["welcome"]
    finally:
        bystander.close()


def test_a_socketio_stream_over_polling_arrives_complete(team_server: LiveServer) -> None:
    client = TeamClient(team_server.url, ["/", NAMESPACE], transport="polling")
    try:
        client.client.call(EVENT, {"prompt": controls(chunks=8), "stream_id": "p1"}, namespace=NAMESPACE, timeout=10)
        (done,) = client.wait(NAMESPACE, f"{EVENT}_done")
        text = "".join(text for text, _ in client.named(NAMESPACE, f"{EVENT}_chunk"))
        assert text == "".join(f"w{i} " for i in range(8)) and done["chunks"] == 8
    finally:
        client.close()


def test_an_http_stream_under_the_prefix_arrives_complete(team_server: LiveServer) -> None:
    outcome = run_http(f"{team_server.url}{PREFIX}", {"prompt": controls(chunks=20), "stream_id": "h1"})
    assert outcome.status == 200
    assert outcome.text == "".join(f"w{i} " for i in range(20))
    assert outcome.terminal["type"] == "done" and outcome.terminal["chunks"] == 20


def test_the_ai_sdk_endpoint_under_the_prefix(team_server: LiveServer) -> None:
    """The real `ai` package's transport at /ai/api/chat, as an AI SDK page of the team's app would point it."""
    from tests import ai_sdk_client

    result = ai_sdk_client.run(f"{team_server.url}{PREFIX}/api/chat", "send", "team-chat",
                               [ai_sdk_client.user(controls(chunks=3))])
    assert result["message"]["parts"] == [{"type": "step-start"},
                                          {"type": "text", "text": "w0 w1 w2 ", "state": "done"}]
    assert requests.post(f"{team_server.url}/api/chat", json={}, timeout=10).status_code == 404  # the team's path


def test_the_default_names_are_not_answered(team_server: LiveServer, team_client: TeamClient) -> None:
    answered: list[tuple[str, object]] = []
    for namespace in ("/", NAMESPACE):  # acks would come at once, long before the stream below has ended
        team_client.client.emit("chatgpt_description", {"prompt": controls(chunks=2)}, namespace=namespace,
                                callback=lambda *ack, ns=namespace: answered.append((ns, ack)))
    team_client.client.call(EVENT, {"prompt": controls(chunks=3), "stream_id": "d1"}, namespace=NAMESPACE)
    team_client.wait(NAMESPACE, f"{EVENT}_done")
    team_client.client.call("echo", "barrier", timeout=10)
    assert answered == []
    assert [name for _, name, _ in team_client.events if name.startswith("chatgpt_description")] == []
    # Over HTTP the default path is the team's own 404, in its own format: the relay does not answer for the app.
    response = requests.post(f"{team_server.url}/message/stream", json={"prompt": controls(chunks=2)}, timeout=10)
    assert response.status_code == 404 and "error" not in response.text
    assert requests.get(f"{team_server.url}/nowhere", timeout=5).headers["Content-Type"].startswith("text/html")


def test_a_connection_to_the_teams_namespace_only_is_not_closed_as_silent(team_server: LiveServer) -> None:
    team_only = TeamClient(team_server.url, ["/"])
    witness_closed = threading.Event()
    witness = engineio.Client()  # opened after, and never connects to any namespace: closed at the timeout
    witness.on("disconnect", lambda *reason: witness_closed.set())
    try:
        team_only.wait("/", "welcome")
        witness.connect(team_server.url, engineio_path="socket.io", transports=["websocket"])
        assert witness_closed.wait(CONNECT_TIMEOUT + 10), "a connection with no namespace was never closed"
        # The team's connection opened first, so its watchdog has run too: it is still open.
        assert team_only.client.call("echo", "still here", timeout=10) == {"echo": "still here"}
    finally:
        team_only.close()
        if witness.state == "connected":
            witness.disconnect()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_connect_to_the_teams_namespace_lifts_the_bound_before_auth(team_server: LiveServer, transport: str) -> None:
    """MAX_UNAUTHENTICATED_BYTES (64 KiB) holds until a connect is admitted, the team's too: then a message
    may be as large as the team's server allows (engine.io's default, 1,000,000 bytes)."""
    team_only = TeamClient(team_server.url, ["/"], transport)
    try:
        team_only.wait("/", "welcome")
        large = "x" * 200_000
        assert team_only.client.call("echo", large, timeout=15) == {"echo": large}
    finally:
        team_only.close()


@pytest.mark.parametrize("transport", ["socketio", "http"])
def test_relay_client_speaks_the_mounted_names(team_server: LiveServer, transport: str) -> None:
    """relay_client, given the ChatRelay's prefix, namespace and event, reads a reply and stops another."""
    from relay_client import RelayClient

    with RelayClient(team_server.url, transport=transport, url_prefix=PREFIX, namespace=NAMESPACE,  # type: ignore[arg-type]
                     event=EVENT) as client:
        assert client.complete(controls(chunks=4)) == "w0 w1 w2 w3 "
        with client.stream(controls(chunks=1000, delay=0.02)) as reply:
            for _ in reply:
                reply.stop()
        assert reply.done is not None and reply.done.finish_reason == "cancelled"


def test_an_http_streams_first_piece_arrives_before_the_reply_goes_on(team_server: LiveServer,
                                                                        fake_upstream: FakeUpstream, gate: str) -> None:
    """Started with socketio.run, as a team starts its app: a piece is sent when it comes, not held back until
    4 KB have gathered (eventlet's server does that by default, and Flask-SocketIO hands the app a copy of the
    environ, where a route's own setting is lost)."""
    prompt = controls(chunks=3, gate=gate, hold_after=1, heartbeat=0.3)
    with requests.post(f"{team_server.url}{PREFIX}/message/stream", json={"prompt": prompt, "stream_id": "held"},
                       headers={"Accept": "application/x-ndjson"}, stream=True, timeout=20) as response:
        lines = ndjson_events(response)
        assert next(lines)["text"] == "w0 "  # while the upstream holds the rest
        fake_upstream.open_gate(gate)
        rest = list(lines)
        assert "".join(line["text"] for line in rest[:-1]) == "w1 w2 " and rest[-1]["type"] == "done"
