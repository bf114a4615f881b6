"""SIGTERM, as a process manager sends it: running streams finish within the grace period, the rest end with
`server_shutdown`, new streams are refused, and the server exits; no client is left without a terminal event.

gunicorn gets the signal on its master, which passes it to the worker (gunicorn.conf.py hooks in there);
eventlet's `python -m app` gets it directly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chat_relay.lifecycle.shutdown import chain_interrupt
from tests.clients import ERROR, SioProbe, ndjson_events, post_stream
from tests.conftest import MODES, LiveServer, free_port, launch, server_command, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls

GRACE = 4.0


@pytest.fixture(params=MODES)
def doomed(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path) -> Iterator[LiveServer]:
    """A server of its own: this test ends it."""
    env = {**upstream_env(fake_upstream), "SHUTDOWN_GRACE": str(GRACE)}
    server = start_server(request.param, env, tmp_path / "server.log")
    yield server
    if server.process.poll() is None:
        stop_server(server)


def test_sigterm_drains_then_exits(doomed: LiveServer, fake_upstream: FakeUpstream, gate: str) -> None:
    short, long = SioProbe(doomed.url), SioProbe(doomed.url)
    held = controls(chunks=3, gate=gate, hold_after=1, heartbeat=0.3)  # would run until the gate opens: never
    long.start({"prompt": held, "stream_id": "long"})
    long.wait_chunks("long", 1)
    http_events: list[dict] = []

    def read_http() -> None:
        with post_stream(doomed.url, {"prompt": held, "stream_id": "long-http"},
                         accept="application/x-ndjson") as response:
            http_events.extend(ndjson_events(response))

    reader = threading.Thread(target=read_http)
    reader.start()
    assert fake_upstream.wait_for(lambda f: f.in_flight_with(gate) == 2)
    short.start({"prompt": controls(chunks=6, delay=0.15), "stream_id": "short"})  # about 1 s: within the grace

    signalled = time.monotonic()
    doomed.process.send_signal(signal.SIGTERM)
    doomed.wait_log("shutdown: draining")
    refused = long.start({"prompt": "a new stream", "stream_id": "late"})  # on a connection still open
    assert refused["error"]["code"] == "server_shutdown"

    _, done = short.wait_terminal("short")
    assert done["finish_reason"] == "stop"
    assert "".join(t for _, t in short.chunks("short")) == "w0 w1 w2 w3 w4 w5 "
    name, error = long.wait_terminal("long", timeout=GRACE + 10)
    assert (name, error["code"]) == (ERROR, "server_shutdown")
    reader.join(GRACE + 10)
    assert not reader.is_alive()
    assert [e["type"] for e in http_events] == ["chunk", "error"]
    assert http_events[-1]["code"] == "server_shutdown"

    assert doomed.process.wait(timeout=20) == 0
    elapsed = time.monotonic() - signalled
    assert GRACE - 0.5 < elapsed < 20, elapsed  # waited for the grace period, exited well inside graceful_timeout
    for probe, stream_id in ((short, "short"), (long, "long")):
        assert len(probe.terminals(stream_id)) == 1
    log = doomed.log()
    assert log.count("cause=server_shutdown") == 2, log
    assert "Traceback" not in log
    short.close()
    long.close()


@pytest.mark.parametrize("mode", MODES)
def test_sigterm_on_an_idle_server_exits_at_once(mode: str, fake_upstream: FakeUpstream, tmp_path) -> None:
    """Process managers wait a few seconds, then kill: an idle server must not sleep through the signal."""
    server = start_server(mode, {**upstream_env(fake_upstream), "SHUTDOWN_GRACE": str(GRACE)}, tmp_path / "log")
    time.sleep(2)  # not a wait for anything: this is the idleness under test (no timers left pending)
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    try:
        assert server.process.wait(timeout=15) == 0
    finally:
        if server.process.poll() is None:
            stop_server(server)
    assert time.monotonic() - signalled < 10, "an idle server took too long to act on SIGTERM"


@pytest.mark.parametrize("mode", MODES)
def test_fast_streams_cut_by_sigterm_end_cleanly_on_keep_alive(mode: str, fake_upstream: FakeUpstream,
                                                              tmp_path) -> None:
    """Streams at full speed, cut with no grace: each connection gets its terminal line, then the end of the
    chunked body, and nothing after it (a late interrupt once wrote a stray 500 onto the connection)."""
    server = start_server(mode, {**upstream_env(fake_upstream), "SHUTDOWN_GRACE": "0"}, tmp_path / "log")
    port = int(server.url.rsplit(":", 1)[1])
    body = json.dumps({"prompt": controls(chunks=200_000)}).encode()
    request = (f"POST /message/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Accept: application/x-ndjson\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    received = [bytearray() for _ in range(3)]
    streaming = threading.Barrier(len(received) + 1)

    def read(into: bytearray) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:  # keep-alive: HTTP/1.1
            conn.sendall(request)
            while b'"type":"chunk"' not in into:
                into += conn.recv(65536)
            streaming.wait()
            while data := conn.recv(65536):
                into += data

    readers = [threading.Thread(target=read, args=(into,)) for into in received]
    try:
        for reader in readers:
            reader.start()
        streaming.wait(timeout=20)
        server.process.send_signal(signal.SIGTERM)
        for reader in readers:
            reader.join(30)
        assert server.process.wait(timeout=30) == 0
    finally:
        if server.process.poll() is None:
            stop_server(server)
    for data in received:
        last = data.rstrip(b"\r\n0").rsplit(b"\r\n", 1)[-1]  # the last chunk of the chunked body
        assert json.loads(last)["code"] == "server_shutdown", bytes(data[-300:])
        assert data.endswith(b"\r\n0\r\n\r\n"), bytes(data[-300:])
        assert b"HTTP/1.1 500" not in data
    log = server.log()
    assert log.count("cause=server_shutdown") == len(received)
    assert "Traceback" not in log and "StreamCancelled" not in log


def start_in_own_group(mode: str, env: dict[str, str], log_path: Path) -> LiveServer:
    """The relay as start_server starts it, in a process group of its own, as a terminal's job is: a test can
    then send the group a Ctrl-C, which reaches gunicorn's master and worker alike."""
    port = free_port()
    env = {"HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": mode, **env}
    return launch(mode, server_command(mode), port, env, log_path, new_session=True)


def _held_streams(server: LiveServer, gate: str) -> tuple[SioProbe, threading.Thread, list[dict]]:
    """One Socket.IO and one HTTP stream, both held mid-way by the fake until the gate opens (never)."""
    probe = SioProbe(server.url)
    held = controls(chunks=3, gate=gate, hold_after=1, heartbeat=0.3)
    probe.start({"prompt": held, "stream_id": "held"})
    http_events: list[dict] = []
    streaming = threading.Event()  # the HTTP stream's first chunk has arrived: it is past its status line

    def read_http() -> None:
        with post_stream(server.url, {"prompt": held, "stream_id": "held-http"},
                         accept="application/x-ndjson") as response:
            for event in ndjson_events(response):
                http_events.append(event)
                streaming.set()
        streaming.set()

    reader = threading.Thread(target=read_http)
    reader.start()
    probe.wait_chunks("held", 1)
    assert streaming.wait(10) and http_events[0].get("type") == "chunk", http_events
    return probe, reader, http_events


def _assert_cut_with_server_shutdown(server: LiveServer, probe: SioProbe, reader: threading.Thread,
                                     http_events: list[dict]) -> None:
    """Both streams end with `server_shutdown` within a few seconds (far inside SHUTDOWN_GRACE), then the
    server exits; each stream logged its stream_end line."""
    name, error = probe.wait_terminal("held", timeout=10)
    assert (name, error["code"]) == (ERROR, "server_shutdown")
    reader.join(10)
    assert not reader.is_alive()
    assert [e["type"] for e in http_events] == ["chunk", "error"] and http_events[-1]["code"] == "server_shutdown"
    assert server.process.wait(timeout=15) == 0
    assert len(probe.terminals("held")) == 1
    log = server.log()
    assert log.count("cause=server_shutdown") == 2, log
    assert "Traceback" not in log
    probe.close()


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_ends_running_streams_at_once_then_exits(mode: str, fake_upstream: FakeUpstream, gate: str,
                                                        tmp_path) -> None:
    """The terminal's Ctrl-C reaches the server's whole process group (gunicorn's master and worker alike):
    no grace period, each running stream ends with its `server_shutdown` event, then the server exits."""
    env = {**upstream_env(fake_upstream), "SHUTDOWN_GRACE": "20"}
    server = start_in_own_group(mode, env, tmp_path / "server.log")
    try:
        probe, reader, http_events = _held_streams(server, gate)
        os.killpg(server.process.pid, signal.SIGINT)
        _assert_cut_with_server_shutdown(server, probe, reader, http_events)
    finally:
        if server.process.poll() is None:
            stop_server(server)


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_cuts_a_sigterm_drain_short(mode: str, fake_upstream: FakeUpstream, gate: str, tmp_path) -> None:
    """SIGTERM (to the server alone, as a process manager sends it) waits SHUTDOWN_GRACE; Ctrl-C then ends it."""
    env = {**upstream_env(fake_upstream), "SHUTDOWN_GRACE": "20"}
    server = start_in_own_group(mode, env, tmp_path / "server.log")
    try:
        probe, reader, http_events = _held_streams(server, gate)
        server.process.send_signal(signal.SIGTERM)
        server.wait_log("shutdown: draining 2 streams")
        assert probe.terminals("held") == []  # still within the grace period
        os.killpg(server.process.pid, signal.SIGINT)
        _assert_cut_with_server_shutdown(server, probe, reader, http_events)
    finally:
        if server.process.poll() is None:
            stop_server(server)


def test_a_second_ctrl_c_exits_at_once() -> None:
    """Real signals to this process, through the handlers `chain_interrupt` installs (the servers' own Ctrl-C
    handling): the first SIGINT, and the SIGQUIT gunicorn's master adds, start the quick drain; only a second
    SIGINT exits at once."""
    calls: list[object] = []

    class Recorder:  # stands in for the app's Shutdown, to see which calls the signals make
        def begin(self, when_drained: object = None, grace: float | None = None) -> None:
            calls.append(("drain", grace))

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGQUIT)}
    try:
        chain_interrupt(Recorder(), when_drained=lambda: None, exit_now=lambda: calls.append("exit now"),  # type: ignore[arg-type]
                        also=(signal.SIGQUIT,))
        for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGINT):
            os.kill(os.getpid(), signum)  # the handler runs in this thread before os.kill returns to the test
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert calls == [("drain", 0), "exit now"]  # the drain began once


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_exits_even_with_a_vanished_polling_client(mode: str, fake_upstream: FakeUpstream, tmp_path) -> None:
    """A long-polling Socket.IO client that is gone without a word (a tab just closed) never takes its close
    packet: the drain must not wait for it. Before, the worker waited until gunicorn killed it at
    graceful_timeout (30 s)."""
    server = start_in_own_group(mode, upstream_env(fake_upstream), tmp_path / "server.log")
    try:
        handshake = requests.get(f"{server.url}/socket.io/?EIO=4&transport=polling", timeout=5)
        sid = json.loads(handshake.text[1:])["sid"]  # "0{...}": engine.io's open packet
        connect = requests.post(f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}", data="40", timeout=5)
        assert connect.text.lower() == "ok"  # connected to the namespace; it never polls again
        os.killpg(server.process.pid, signal.SIGINT)
        assert server.process.wait(timeout=25) == 0  # generous, but inside graceful_timeout
    finally:
        if server.process.poll() is None:
            stop_server(server)
    assert "SIGKILL" not in server.log() and "Traceback" not in server.log()
