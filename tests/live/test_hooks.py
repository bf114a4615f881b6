"""The team's hooks on a real server (tests/hooks_app.py, started as its docstring says), over both transports:
identify (limits per user, refusals), prepare (what the upstream gets), on_finish (once per stream, whatever the
end, off the delivery path). The budget across instances is in tests/e2e/test_hooks_cluster.py."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.clients import SioProbe, ndjson_events
from tests.conftest import API_KEY, BIN, MODES, LiveServer, free_port, launch, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls, script_reply
from tests.live.test_access import refused_connect
from tests.outcomes import TRANSPORTS, Outcome, run_http, run_socketio
from tests.waits import until

NDJSON = "application/x-ndjson"


def hooks_command(mode: str) -> list[str]:
    """As tests/hooks_app.py's docstring says to start it."""
    if mode == "gevent":
        return [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "tests.hooks_app:create_app()"]
    return [str(BIN / "python"), "-m", "tests.hooks_app"]


def start_hooks_app(mode: str, env: dict[str, str], workdir: Path, port: int | None = None) -> LiveServer:
    port = port or free_port()
    env = {"HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": mode, "HOOK_LOG": str(workdir / "hooks.jsonl"),
           **env}
    return launch(f"hooks-{mode}", hooks_command(mode), port, env, workdir / f"server-{port}.log")


class HookLog:
    """The lines tests/hooks_app.py's on_finish wrote, one per call."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self, stream_id: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [json.loads(line) for line in self.path.read_text().splitlines() if line]
        return [line for line in lines if stream_id is None or line["stream_id"] == stream_id]

    def wait_for(self, stream_id: str, timeout: float = 10) -> dict[str, Any]:
        assert until(lambda: bool(self.lines(stream_id)), timeout), f"on_finish never ran for {stream_id}"
        return self.lines(stream_id)[0]


@pytest.fixture(scope="module", params=MODES)
def hooks_server(request: pytest.FixtureRequest, fake_upstream: FakeUpstream,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, HookLog]]:
    workdir = tmp_path_factory.mktemp(f"hooks-{request.param}")
    # One stream per user at a time: each test's users are its own, so the cap shows per user.
    env = {**upstream_env(fake_upstream), "MAX_STREAMS_PER_CLIENT": "1", "MAX_UNAUTHENTICATED_BYTES": "4096"}
    server = start_hooks_app(request.param, env, workdir)
    yield server, HookLog(workdir / "hooks.jsonl")
    stop_server(server)
    assert API_KEY not in server.log(), "the API key leaked into the server log"


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def run(transport: str, url: str, who: str, payload: dict[str, Any]) -> Outcome:
    """One request to its end, as user `who`."""
    if transport == "http":
        return run_http(url, payload, headers={"X-User": who})
    probe = SioProbe(url, auth={"user": who})
    try:
        return run_socketio(probe, payload)
    finally:
        probe.close()


@dataclass
class HeldResponse:
    """A streamed response being read, and its reader, both kept until `close()` hangs up."""

    response: requests.Response
    lines: Iterator[dict[str, Any]]

    def close(self) -> None:
        self.response.close()


def held_stream(transport: str, url: str, who: str, gate: str) -> tuple[Any, str]:
    """A stream of `who` held at the fake's gate after one piece; its client, to close once the gate opens."""
    stream_id = uuid.uuid4().hex
    payload = {"prompt": controls(chunks=3, gate=gate, hold_after=1, heartbeat=0.3), "stream_id": stream_id}
    if transport == "http":
        response = requests.post(f"{url}/message/stream", json=payload, stream=True, timeout=20,
                                 headers={"X-User": who, "Accept": NDJSON})
        assert response.status_code == 200
        lines = ndjson_events(response)  # kept: a reader dropped would close the response, which ends the stream
        assert next(lines)["text"] == "w0 "
        return HeldResponse(response, lines), stream_id
    probe = SioProbe(url, auth={"user": who})
    assert "error" not in probe.start(payload)
    probe.wait_chunks(stream_id, 1)
    return probe, stream_id


# identify

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_users_behind_one_address_have_limits_of_their_own(hooks_server: tuple[LiveServer, HookLog],
                                                              transport: str, gate: str,
                                                              fake_upstream: FakeUpstream) -> None:
    server, _ = hooks_server
    alice, bob = user(), user()
    client, _ = held_stream(transport, server.url, alice, gate)
    try:
        second = run(transport, server.url, alice, {"prompt": controls(chunks=2), "stream_id": uuid.uuid4().hex})
        assert second.terminal.get("code") == "too_many_streams", (second, client)  # MAX_STREAMS_PER_CLIENT=1
        other = run(transport, server.url, bob, {"prompt": controls(chunks=2), "stream_id": uuid.uuid4().hex})
        assert other.terminal["type"] == "done" and other.text == "w0 w1 ", other  # bob, from the same 127.0.0.1
        assert server.streams() == 1  # alice's first, still held
    finally:
        fake_upstream.open_gate(gate)
        client.close()


def test_a_refused_identity_gets_unauthorized_over_both_transports(hooks_server: tuple[LiveServer, HookLog],
                                                                   fake_upstream: FakeUpstream) -> None:
    server, _ = hooks_server
    refused = run_http(server.url, {"prompt": "hi"}, headers={"X-User": "nobody"})
    assert refused.status == 401 and refused.terminal["code"] == "unauthorized"
    assert run_http(server.url, {"prompt": "hi"}).terminal["code"] == "unauthorized"  # no X-User at all
    for auth in ({"user": "nobody"}, None):
        _, reasons = refused_connect(server.url, **({} if auth is None else {"auth": auth}))
        assert [reason["data"]["code"] for reason in reasons] == ["unauthorized"]


def test_an_identified_request_may_be_large_and_an_unknown_one_may_not(hooks_server: tuple[LiveServer, HookLog],
                                                                       fake_upstream: FakeUpstream) -> None:
    """MAX_UNAUTHENTICATED_BYTES: identify runs before the body is read (once: the route takes its answer)."""
    server, _ = hooks_server
    big = {"prompt": controls(chunks=1, padding="x" * 10_000), "stream_id": uuid.uuid4().hex}  # over 4096 bytes
    refused = run_http(server.url, big, headers={"X-User": "nobody"})
    assert refused.status == 401 and refused.terminal["code"] == "unauthorized"
    known = run_http(server.url, big, headers={"X-User": user()})
    assert known.terminal["type"] == "done" and known.text == "w0 "


# prepare

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_upstream_gets_exactly_what_prepare_returned(hooks_server: tuple[LiveServer, HookLog], transport: str,
                                                          fake_upstream: FakeUpstream) -> None:
    server, _ = hooks_server
    who, tag = user(), uuid.uuid4().hex
    prompt = controls(chunks=2, tag=tag)
    outcome = run(transport, server.url, who, {"prompt": prompt, "temperature": 0.5, "stream_id": tag})
    assert outcome.terminal["type"] == "done"
    (sent,) = fake_upstream.requests_with(tag)
    assert sent["messages"] == [{"role": "system", "content": f"You help {who}."}, {"role": "user", "content": prompt}]
    assert sent["model"] == "fake-model" and sent["temperature"] == 0.5
    assert who not in json.dumps({k: v for k, v in sent.items() if k != "messages"})  # FORWARD_USER is off


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_invalid_prepared_request_is_refused_with_a_code(hooks_server: tuple[LiveServer, HookLog],
                                                            transport: str, fake_upstream: FakeUpstream) -> None:
    server, _ = hooks_server
    before, who = len(fake_upstream.requests), user()
    invalid = run(transport, server.url, who, {"prompt": "invalid-prepare", "stream_id": uuid.uuid4().hex})
    assert invalid.terminal["code"] == "internal"  # the team's mistake, not the client's
    assert invalid.status in (None, 500)
    refused = run(transport, server.url, user(), {"prompt": "team-refuses", "stream_id": uuid.uuid4().hex})
    assert refused.terminal["code"] == "invalid_request"
    assert refused.terminal["message"] == "The team does not allow this."
    assert len(fake_upstream.requests) == before  # neither reached the upstream
    assert "the prepare hook returned an invalid request" in server.log()
    # The refused requests gave back their slots: the user's one stream (MAX_STREAMS_PER_CLIENT=1) may start.
    after = run(transport, server.url, who, {"prompt": controls(chunks=2), "stream_id": uuid.uuid4().hex})
    assert after.terminal["type"] == "done"


# on_finish

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_on_finish_gets_the_whole_reply_once(hooks_server: tuple[LiveServer, HookLog], transport: str,
                                             fake_upstream: FakeUpstream) -> None:
    server, hook_log = hooks_server
    who, stream_id = user(), uuid.uuid4().hex
    deltas = script_reply(("reasoning", "think "), ("reasoning", "more"), ("text", "Hello "), ("text", "there"),
                          ("tool", 0, "call_1", "lookup", '{"q": '), ("tool", 0, None, None, '"x"}'))
    outcome = run(transport, server.url, who, {"prompt": controls(deltas=deltas, finish_reason="tool_calls"),
                                               "stream_id": stream_id})
    assert outcome.terminal["type"] == "done"
    record = hook_log.wait_for(stream_id)
    assert record["user"] == who and record["transport"] == transport
    assert record["text"] == outcome.text == "Hello there" and record["reasoning"] == "think more"
    assert record["tool_calls"] == outcome.terminal["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}]
    assert [part["type"] for part in record["parts"]] == ["reasoning", "text", "tool_call"]
    assert record["finish_reason"] == "tool_calls" and record["error"] is None and record["cause"] == "completed"
    assert record["usage"] == outcome.terminal["usage"]
    assert record["duration"] >= record["first_piece"] > 0
    assert len(hook_log.lines(stream_id)) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_on_finish_runs_once_for_failed_and_stopped_streams(hooks_server: tuple[LiveServer, HookLog],
                                                            transport: str, gate: str,
                                                            fake_upstream: FakeUpstream) -> None:
    server, hook_log = hooks_server
    failed_id = uuid.uuid4().hex
    failed = run(transport, server.url, user(), {"prompt": controls(chunks=5, fault="drop", drop_after=2),
                                                 "stream_id": failed_id})
    assert failed.terminal["code"] == "upstream_unavailable"
    record = hook_log.wait_for(failed_id)
    assert record["error"] == "upstream_unavailable" and record["finish_reason"] is None
    assert record["text"] == failed.text == "w0 w1 "

    client, stopped_id = held_stream(transport, server.url, user(), gate)
    try:
        if transport == "socketio":
            assert client.stop(stopped_id) == {"stream_id": stopped_id}
            assert client.wait_terminal(stopped_id)[1]["finish_reason"] == "cancelled"
        else:  # a hang-up: nobody reads it, so it is cancelled (RESUME_GRACE=0)
            client.close()
        record = hook_log.wait_for(stopped_id)
    finally:
        fake_upstream.open_gate(gate)
        client.close()
    assert record["finish_reason"] == "cancelled" and record["text"] == "w0 "
    assert record["cause"] == ("stopped" if transport == "socketio" else "client_gone")
    assert until(lambda: server.streams() == 0)  # ended for good: a second call would have come by now
    assert len(hook_log.lines(failed_id)) == 1 and len(hook_log.lines(stopped_id)) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_hook_that_raises_breaks_nothing_and_is_logged_without_its_message(
        hooks_server: tuple[LiveServer, HookLog], transport: str, fake_upstream: FakeUpstream) -> None:
    server, hook_log = hooks_server
    who, stream_id = user(), uuid.uuid4().hex
    outcome = run(transport, server.url, who, {"prompt": controls(chunks=3, note="hook-raises"),
                                               "stream_id": stream_id})
    assert outcome.terminal["type"] == "done" and outcome.text == "w0 w1 w2 "
    hook_log.wait_for(stream_id)
    server.wait_log(f"stream {stream_id}: the on_finish hook failed: RuntimeError")
    assert "secret-in-message" not in server.log()
    after = run(transport, server.url, who, {"prompt": controls(chunks=2), "stream_id": uuid.uuid4().hex})
    assert after.terminal["type"] == "done" and after.text == "w0 w1 "


def test_a_hook_that_waits_delays_no_stream(hooks_server: tuple[LiveServer, HookLog], tmp_path: Path,
                                            fake_upstream: FakeUpstream) -> None:
    """The hook of a stream waits on a gate the test holds: its stream's `done` comes anyway, and other streams,
    on both transports, run to their end meanwhile; the hook's record comes only once the gate opens."""
    server, hook_log = hooks_server
    who, stream_id, gate = user(), uuid.uuid4().hex, tmp_path / "hook-gate"
    probe = SioProbe(server.url, auth={"user": who})
    try:
        first = run_socketio(probe, {"prompt": controls(chunks=3, note=f"hook-waits:{gate}"),
                                    "stream_id": stream_id})
        assert first.terminal["type"] == "done" and first.text == "w0 w1 w2 "
        for transport in TRANSPORTS:  # the same user's next stream: the first's slot is free, its hook or not
            other = run(transport, server.url, who, {"prompt": controls(chunks=2), "stream_id": uuid.uuid4().hex})
            assert other.terminal["type"] == "done" and other.text == "w0 w1 "
        assert hook_log.lines(stream_id) == []  # still waiting
        gate.touch()
        assert hook_log.wait_for(stream_id)["finish_reason"] == "stop"
    finally:
        probe.close()


def test_every_stream_of_a_burst_gets_one_record(hooks_server: tuple[LiveServer, HookLog],
                                                 fake_upstream: FakeUpstream) -> None:
    server, hook_log = hooks_server
    ids = [uuid.uuid4().hex for _ in range(8)]
    barrier = threading.Barrier(len(ids))
    outcomes: dict[str, Outcome] = {}

    def one(stream_id: str) -> None:
        barrier.wait(timeout=10)
        outcomes[stream_id] = run_http(server.url, {"prompt": controls(chunks=4), "stream_id": stream_id},
                                       headers={"X-User": user()})

    threads = [threading.Thread(target=one, args=(stream_id,)) for stream_id in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert all(outcomes[stream_id].terminal["type"] == "done" for stream_id in ids)
    for stream_id in ids:
        assert hook_log.wait_for(stream_id)["text"] == "w0 w1 w2 w3 "
    assert until(lambda: server.streams() == 0)
    assert sorted(line["stream_id"] for line in hook_log.lines() if line["stream_id"] in ids) == sorted(ids)




def test_streams_cut_by_a_shutdown_are_recorded_before_the_server_exits(fake_upstream: FakeUpstream, gate: str,
                                                                        tmp_path: Path) -> None:
    """SIGTERM with no grace: a held stream ends with server_shutdown, and its on_finish (which waits on the test's
    gate, as a slow hook would) still runs before the worker exits."""
    env = {**upstream_env(fake_upstream), "SHUTDOWN_GRACE": "0"}
    server = start_hooks_app("gevent", env, tmp_path)
    hook_log, hook_gate = HookLog(tmp_path / "hooks.jsonl"), tmp_path / "hook-gate"
    probe = SioProbe(server.url, auth={"user": user()})
    try:
        stream_id = uuid.uuid4().hex
        probe.start({"prompt": controls(chunks=3, gate=gate, hold_after=1, heartbeat=0.3,
                                        note=f"hook-waits:{hook_gate}"), "stream_id": stream_id})
        probe.wait_chunks(stream_id, 1)
        server.process.terminate()
        _, error = probe.wait_terminal(stream_id)
        assert error["code"] == "server_shutdown"
        hook_gate.touch()  # the hook, waiting since the stream's end, may now finish
        assert server.process.wait(20) == 0
        record = hook_log.wait_for(stream_id, timeout=1)
        assert record["error"] == "server_shutdown" and record["cause"] == "server_shutdown" and record["text"] == "w0 "
    finally:
        fake_upstream.open_gate(gate)
        probe.close()
        stop_server(server)


def test_the_ai_sdk_endpoint_runs_the_same_hooks(hooks_server: tuple[LiveServer, HookLog],
                                                 fake_upstream: FakeUpstream) -> None:
    """POST /api/chat (docs/ai-sdk.md) asks identify, sends what prepare returned, and gets its on_finish record;
    an unknown caller is refused there too."""
    server, hook_log = hooks_server
    who, tag = user(), uuid.uuid4().hex
    body = {"id": f"chat-{tag[:12]}", "messages": [{"id": "u1", "role": "user", "parts": [
        {"type": "text", "text": controls(chunks=2, tag=tag)}]}], "trigger": "submit-message"}
    with requests.post(f"{server.url}/api/chat", json=body, headers={"X-User": who}, stream=True,
                       timeout=20) as response:
        assert response.status_code == 200, response.text
        stream_id = response.headers["X-Stream-Id"]
        sse = response.text
    assert '"type":"finish"' in sse and sse.rstrip().endswith("data: [DONE]")
    (sent,) = fake_upstream.requests_with(tag)
    assert sent["messages"][0] == {"role": "system", "content": f"You help {who}."}
    record = hook_log.wait_for(stream_id)
    assert record["user"] == who and record["text"] == "w0 w1 " and record["cause"] == "completed"
    refused = requests.post(f"{server.url}/api/chat", json=body, headers={"X-User": "nobody"}, timeout=20)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
