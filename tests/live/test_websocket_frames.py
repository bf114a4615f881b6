"""The websocket transport's frames, against the real server in both modes: whole, and compressed only on request."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
import websocket  # websocket-client, which python-socketio's Client uses too

from tests.clients import DONE
from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import check_cursor

OFFER = "permessage-deflate; client_max_window_bits"


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"


def handshake_extensions(server: LiveServer) -> str | None:
    """Open a websocket that offers permessage-deflate, as browsers do; return what the server accepted."""
    ws = websocket.create_connection(ws_url(server), timeout=10, header=[f"Sec-WebSocket-Extensions: {OFFER}"])
    try:
        return ws.getheaders().get("sec-websocket-extensions")
    finally:
        ws.close()


@pytest.fixture(scope="module", params=MODES)
def compressing(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    env = {**upstream_env(fake_upstream), "WEBSOCKET_COMPRESSION": "true"}
    server = start_server(request.param, env, tmp_path_factory.mktemp("deflate") / "server.log")
    yield server
    stop_server(server)


def test_compression_is_off_by_default(live_server: LiveServer) -> None:
    assert handshake_extensions(live_server) is None


def test_compression_when_turned_on(compressing: LiveServer) -> None:
    assert "permessage-deflate" in (handshake_extensions(compressing) or "")


def test_a_client_that_stops_reading_gets_every_frame_whole(
    live_server: LiveServer, fake_upstream: FakeUpstream
) -> None:
    """8 MB of reply to a client whose receive window is a few KB and that reads nothing until the upstream
    has started (back-pressure then pauses it before it finishes): the server's writes block and resume, and
    coalesced frames grow to megabytes."""
    pieces = [f"w{i}{'.' * 65_000} " for i in range(128)]
    ws = websocket.create_connection(ws_url(live_server), timeout=30,
                                     sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    try:
        assert ws.recv().startswith("0{")  # engine.io open
        ws.send("40")  # Socket.IO connect to "/"
        assert ws.recv().startswith("40")
        started = fake_upstream.started
        ws.send("420" + json.dumps(["chatgpt_description",
                                    {"prompt": controls(chunks=128, pad=65_000, burst=True), "stream_id": "big"}]))
        assert fake_upstream.wait_for(lambda f: f.started > started, timeout=30)
        chunks, done = [], None
        while done is None:
            try:
                message = ws.recv()
            except websocket.WebSocketException as err:  # a frame that was not written whole
                raise AssertionError(f"a broken frame: {type(err).__name__}") from None
            if message == "2":  # engine.io ping
                ws.send("3")
                continue
            if message.startswith("430"):  # the ack
                continue
            assert message.startswith("42"), message[:80]
            name, *args = json.loads(message[2:])
            if name == "chatgpt_description_chunk":
                chunks.append((args[1]["seq"], args[0]))
            else:
                assert name == DONE, args
                done = args[0]
    finally:
        ws.close()
    check_cursor(chunks, pieces, done)
    assert "".join(text for _, text in chunks) == "".join(pieces)
