"""LOG_FORMAT=json on the real server, in both modes: every line of its output is one JSON object (its own lines,
gunicorn's or eventlet's access lines and notices, warnings), and each stream's `stream_end` record carries the
same fields, with the same values, as the `stream_end` line of the default text format for the same stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests

from tests.clients import SioProbe
from tests.conftest import API_KEY, MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import run_http, run_socketio
from tests.waits import until

BASE = {"time", "level", "logger", "message"}  # every record's


@pytest.fixture(scope="module", params=MODES)
def logs(request: pytest.FixtureRequest, fake_upstream: FakeUpstream,
         tmp_path_factory) -> Iterator[tuple[str, str, list[str]]]:
    """The same streams through a text server and a JSON one; their whole logs once both have stopped."""
    folder = tmp_path_factory.mktemp(f"logs-{request.param}")
    outputs, tokens = [], []
    for log_format in ("text", "json"):
        server = start_server(request.param, {**upstream_env(fake_upstream), "LOG_FORMAT": log_format},
                              folder / f"{log_format}.log")
        try:
            tokens.append(drive(server, f"gate-logs-{request.param}-{log_format}", fake_upstream))
        finally:
            stop_server(server)
        outputs.append(server.log())
    yield outputs[0], outputs[1], tokens


def drive(server: LiveServer, gate: str, fake: FakeUpstream) -> str:
    """Completed, stopped and failed streams over Socket.IO, an HTTP stream and its resume (with the token in
    the query, as EventSource sends it), and a request for a foreign host (a warning). Returns the token."""
    probe = SioProbe(server.url)
    try:
        assert run_socketio(probe, {"prompt": controls(chunks=3), "stream_id": "done"}).terminal["type"] == "done"
        probe.start({"prompt": controls(chunks=3, gate=gate, hold_after=1, heartbeat=0.3), "stream_id": "stopped"})
        probe.wait_chunks("stopped", 1)
        probe.stop("stopped")
        probe.wait_terminal("stopped")
        failed = run_socketio(probe, {"prompt": controls(fault="401"), "stream_id": "failed"})
        assert failed.terminal["code"] == "upstream_auth"
    finally:
        probe.close()
    http = run_http(server.url, {"prompt": controls(chunks=2), "stream_id": "http-done"})
    token = http.headers["X-Resume-Token"]
    again = requests.get(f"{server.url}/message/stream/http-done", params={"resume_token": token}, timeout=10)
    assert again.status_code == 200
    refused = requests.post(f"{server.url}/message/stream", json={"prompt": "x"}, headers={"Host": "evil.example"},
                            timeout=10)
    assert refused.status_code == 400
    assert until(lambda: server.streams() == 0)
    return token


def text_stream_ends(log: str) -> dict[str, dict[str, str]]:
    """`stream_end k=v k=v ...` lines, by stream_id."""
    ends = {}
    for line in log.splitlines():
        if " stream_end " in line:
            fields = dict(pair.split("=", 1) for pair in line.split(" stream_end ", 1)[1].split())
            ends[fields["stream_id"]] = fields
    return ends


def test_every_line_is_one_json_object(logs: tuple[str, str, list[str]]) -> None:
    _, json_log, tokens = logs
    lines = json_log.splitlines()
    assert len(lines) > 10
    for line in lines:
        record = json.loads(line)  # fails on any line that is not JSON
        assert isinstance(record, dict) and record.keys() >= BASE, line
    assert API_KEY not in json_log and tokens[1] not in json_log


def test_stream_end_records_carry_the_text_formats_fields(logs: tuple[str, str, list[str]]) -> None:
    text_log, json_log, _ = logs
    in_text = text_stream_ends(text_log)
    in_json = {record["stream_id"]: record for record in map(json.loads, json_log.splitlines())
               if record.get("event") == "stream_end"}
    assert sorted(in_json) == sorted(in_text) == ["done", "failed", "http-done", "stopped"]
    for stream_id, record in in_json.items():
        fields = {key: value for key, value in record.items() if key not in BASE | {"event"}}
        assert fields.keys() == in_text[stream_id].keys(), stream_id
        assert isinstance(fields["chunks"], int) and isinstance(fields["duration_ms"], int)
        for key in fields.keys() - {"duration_ms"}:
            assert str(fields[key]) == in_text[stream_id][key], (stream_id, key)
        assert record["message"] == "stream_end" and record["level"] == "INFO"
    assert [in_json[s]["cause"] for s in ("done", "stopped", "failed")] == ["completed", "stopped", "upstream_auth"]


def test_access_lines_and_warnings_are_records_with_fields(logs: tuple[str, str, list[str]]) -> None:
    _, json_log, _ = logs
    records = [json.loads(line) for line in json_log.splitlines()]
    access = [record for record in records if record.get("event") == "access"]
    assert {"remote_addr", "method", "path", "status", "bytes", "duration_ms"} <= access[0].keys()
    seen = {(record["method"], record["path"], record["status"]) for record in access}
    assert {("POST", "/message/stream", 200), ("GET", "/message/stream/http-done", 200),
            ("POST", "/message/stream", 400), ("GET", "/healthz", 200)} <= seen
    assert all("?" not in record["path"] for record in access)  # a resume token can travel in the query
    warnings = [record for record in records
                if record["level"] == "WARNING" and record["logger"] == "chat_relay.access.auth"]
    assert len(warnings) == 1 and "refused a request for host 'evil.example'" in warnings[0]["message"]
