"""Hostile websocket clients against the real server in both modes (issue 23): what they can make it hold is
bounded, before auth too, and they cannot keep sockets open, fill the log, or hold up a shutdown.

Each attack is as small as still proves its point: the message bound is engine.io's 1,000,000 bytes, pings
come every second. A legitimate client streams beside the attack and must get all of its text.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.clients import DONE, SioProbe
from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.raw_websocket import (
    BINARY,
    CONTINUATION,
    TEXT,
    RawWebSocket,
    frame,
    polling_then_upgrade,
    rss_kib,
    worker_pid,
)

TOKEN = "tok-hostile-frames-1"
BOUND = 1_000_000  # MAX_REQUEST_BYTES, engine.io's max_http_buffer_size
MIB = 1024


def hostile_env(fake: FakeUpstream) -> dict[str, str]:
    return {**upstream_env(fake), "AUTH_TOKENS": TOKEN, "PING_INTERVAL": "1", "PING_TIMEOUT": "1",
            "LOG_LEVEL": "INFO"}


@pytest.fixture(scope="module", params=MODES)
def server(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    live = start_server(request.param, hostile_env(fake_upstream), tmp_path_factory.mktemp("hostile") / "server.log")
    yield live
    stop_server(live)


class Bystander:
    """A legitimate client with a stream running through the attack; `check()` asserts it got all of its text."""

    def __init__(self, server: LiveServer, pieces: int = 30) -> None:
        self.pieces = pieces
        self.probe = SioProbe(server.url, auth={"token": TOKEN})
        self.probe.start({"prompt": controls(chunks=pieces, delay=0.1), "stream_id": "bystander"})
        self.probe.wait_chunks("bystander", 1)

    def check(self) -> None:
        name, _ = self.probe.wait_terminal("bystander", timeout=30)
        assert name == DONE
        assert "".join(text for _, text in self.probe.chunks("bystander")) == "".join(
            f"w{i} " for i in range(self.pieces))
        self.probe.close()


def connections(server: LiveServer) -> int:
    return requests.get(f"{server.url}/healthz", timeout=5).json()["connections"]


def wait_until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)  # polling the server's /healthz or /proc: there is no event to wait on


def fragments_forever(server: LiveServer, outcome: list[object], frames: int = 150) -> None:
    """A handshake and no Socket.IO connect (no token), then a text message of `frames` 1 MB fragments, never
    finished. Records how the server ended it: its close code, or None for a bare EOF or reset."""
    ws = RawWebSocket(server.url, timeout=30)
    piece = b"x" * BOUND
    try:
        ws.send(frame(TEXT, piece, fin=False))
        continuation = frame(CONTINUATION, piece, fin=False)
        for _ in range(frames - 1):
            ws.send(continuation)
    except (BrokenPipeError, ConnectionResetError):
        pass  # closed by the server
    else:
        outcome.append("all sent")
    try:
        ws.read_to_end()
        while ws.received:
            if ws.next_message() is None:
                outcome.append(ws.close_code)
                break
        else:
            outcome.append(None)
    except (EOFError, ConnectionResetError):
        outcome.append(None)
    finally:
        ws.close()


def test_fragments_before_auth_are_bounded(server: LiveServer) -> None:
    """3 connections without a token send 150 x 1 MB continuation frames each: the server closes each after
    its message passes the bound, and holds at most a few MB."""
    log_before = len(server.log())
    worker = worker_pid(server.mode, server.process.pid)
    RawWebSocket(server.url).close()  # the websocket code paths are loaded before the baseline
    baseline = rss_kib(worker)
    bystander = Bystander(server)
    peak = [baseline]
    attacking = True

    def sample() -> None:
        while attacking:
            peak[0] = max(peak[0], rss_kib(worker))
            time.sleep(0.02)  # sampling memory as `top` would

    sampler = threading.Thread(target=sample)
    sampler.start()
    outcomes: list[object] = []
    attackers = [threading.Thread(target=fragments_forever, args=(server, outcomes)) for _ in range(3)]
    try:
        for attacker in attackers:
            attacker.start()
        for attacker in attackers:
            attacker.join(120)
    finally:
        attacking = False
        sampler.join()
    assert "all sent" not in outcomes, outcomes
    assert outcomes and all(code in (1009, None) for code in outcomes), outcomes
    grown = peak[0] - baseline
    assert grown < 3 * BOUND // 1024 + 12 * MIB, f"the worker grew by {grown // 1024} MiB"
    bystander.check()
    added = server.log()[log_before:]
    assert added.count("closed: a message over the size bound") == 3, added
    assert "Traceback" not in added


def test_attachments_are_bounded(server: LiveServer) -> None:
    """A binary event's attachments: no more than 16 announced, and together no more than the bound."""
    log_before = len(server.log())
    too_many = RawWebSocket(server.url)
    assert too_many.connect({"token": TOKEN}).startswith(b"40")
    too_many.send_text('4599999-["chatgpt_description",{"_placeholder":true,"num":0}]')
    too_many.read_to_end()
    too_many.close()

    too_big = RawWebSocket(server.url)
    assert too_big.connect({"token": TOKEN}).startswith(b"40")
    too_big.send_text('452-["chatgpt_description",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]')
    piece = frame(BINARY, b"\0" * 600_000)
    try:
        for _ in range(100):
            too_big.send(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass
    else:
        raise AssertionError("100 attachments of 600 kB were all taken")
    too_big.read_to_end()
    too_big.close()
    server.wait_log("attachments of more than")
    added = server.log()[log_before:]
    assert added.count("bad packet") == 2, added
    assert "Traceback" not in added


@pytest.mark.parametrize("how", ["websocket", "upgraded"])
def test_a_frozen_client_is_closed_at_the_socket(server: LiveServer, how: str) -> None:
    """Connected, then it never reads, never answers a ping, never closes: after the ping timeout its socket is
    closed, and until then it counts as a connection (against its client's cap). Whether it opened a websocket
    at once (python-socketio's clients here) or upgraded to one from long-polling (the browser's default)."""
    wait_until(lambda: connections(server) == 0)
    if how == "websocket":
        frozen = RawWebSocket(server.url, timeout=30)
        assert frozen.connect({"token": TOKEN}).startswith(b"40")
    else:
        frozen = polling_then_upgrade(server.url, {"token": TOKEN})
    assert connections(server) == 1
    # What the server sends (a ping, then its close) is read only to know when it gave up: the client answers
    # nothing, and the few bytes would sit in its buffer all the same.
    while (message := frozen.next_message()) not in (None, b"1"):
        assert message in (b"2", b"6"), message  # a ping, or the noop that follows an upgrade
    if server.mode == "gevent":  # eventlet closes the socket as it sends its close: nothing to see in between
        assert connections(server) == 1, "forgotten while its socket is still open"
    frozen.read_to_end()  # returns once the server closes the socket: EOF or reset
    frozen.close()
    wait_until(lambda: connections(server) == 0)


def test_a_frozen_client_with_a_reply_on_its_way_is_closed_at_the_socket(server: LiveServer) -> None:
    """A client that starts a long reply and then reads nothing, and answers no ping: the server's writes to it
    are stuck, yet after the ping timeout its socket is closed, without the client reading a byte."""
    wait_until(lambda: connections(server) == 0)
    frozen = RawWebSocket(server.url, timeout=30, rcvbuf=4096)
    assert frozen.connect({"token": TOKEN}).startswith(b"40")
    frozen.send_text("420" + json.dumps(["chatgpt_description", {
        "prompt": controls(chunks=128, pad=65_000, burst=True), "stream_id": "never-read"}]))
    assert connections(server) == 1
    wait_until(lambda: connections(server) == 0, timeout=30)  # its socket closed: its request has ended
    frozen.read_to_end()  # an end of file or a reset, after what was on its way
    frozen.close()


def test_unreadable_frames_close_with_one_line(server: LiveServer) -> None:
    """Text frames engine.io cannot read: the connection closes, with one log line, no traceback, and no HTTP
    response written into the websocket. 200 of them on each of 5 connections log 5 lines."""
    log_before = len(server.log())
    bystander = Bystander(server, pieces=10)
    for _ in range(5):
        ws = RawWebSocket(server.url)
        ws.send(frame(TEXT, b"hello") * 200)
        received = ws.read_to_end()
        ws.close()
        assert b"HTTP/1.1" not in received, received[:200]
    bystander.check()
    server.wait_log("not an engine.io packet")
    added = server.log()[log_before:]
    assert added.count("not an engine.io packet") == 5, added
    assert "Traceback" not in added
    assert len(added.splitlines()) < 40, f"{len(added.splitlines())} lines:\n{added[-3000:]}"


@pytest.mark.parametrize("mode", MODES)
def test_shutdown_does_not_wait_for_a_client_ignoring_the_close(
        mode: str, fake_upstream: FakeUpstream, tmp_path) -> None:
    """SIGTERM with an idle websocket whose client ignores the close frame: the server exits within its grace,
    not at gunicorn's graceful_timeout (30 s)."""
    env = {**hostile_env(fake_upstream), "SHUTDOWN_GRACE": "2", "PING_INTERVAL": "25", "PING_TIMEOUT": "20"}
    doomed = start_server(mode, env, tmp_path / "server.log")
    try:
        idle = RawWebSocket(doomed.url, timeout=30)
        assert idle.connect({"token": TOKEN}).startswith(b"40")
        signalled = time.monotonic()
        doomed.process.send_signal(signal.SIGTERM)
        assert doomed.process.wait(timeout=25) == 0
        assert time.monotonic() - signalled < 15, "waited for the idle client"
        idle.read_to_end()
        idle.close()
        assert "Traceback" not in doomed.log()
    finally:
        if doomed.process.poll() is None:
            stop_server(doomed)
