"""Socket.IO connects spoken in the wire protocol over engine.io websockets, each read bounded, for the tests of the
connection caps (tests/live/test_connection_cap.py per client, tests/live/test_user_connections.py per user).

Not python-socketio's client: a refused client disconnects itself right after its connect_error, and its engine.io
client can then wait out its 30 s write-loop timeout (the write loop may take the close and its end marker in one
batch, before the state says disconnecting), which a burst of a dozen refusals hits now and then. Here each connect
reads its answer.
"""

from __future__ import annotations

import json
import threading

import websocket

from tests.conftest import LiveServer


def raw_session(server: LiveServer, address: str) -> websocket.WebSocket:
    """An engine.io websocket session from `address` (X-Forwarded-For), open, that has sent nothing: no Socket.IO
    connect."""
    ws = websocket.create_connection(f"{server.url.replace('http', 'ws', 1)}/socket.io/?EIO=4&transport=websocket",
                                     header=[f"X-Forwarded-For: {address}"], timeout=15)
    opened = ws.recv()
    assert opened.startswith("0") and "sid" in json.loads(opened[1:])
    return ws


def until_closed(ws: websocket.WebSocket) -> list[str]:
    """Read until the server closes the connection; the packets that came before. Fails on a read timeout."""
    packets = []
    try:
        while True:
            packet = ws.recv()
            if not packet:  # the close frame
                return packets
            packets.append(packet)
    except websocket.WebSocketConnectionClosedException:
        return packets
    finally:
        ws.close()


def refusal_code(answer: str) -> str | None:
    """The code of a refused connect (`44{"message": ..., "data": {"code": ...}}`), or None."""
    return json.loads(answer[2:])["data"]["code"] if answer.startswith("44") else None


def connect_burst(server: LiveServer, connects: list[tuple[str, dict]]) -> list[str]:
    """One engine.io session per (address, auth), each opened in its own thread, then all their Socket.IO connects
    sent at once, released by a barrier; each one's answer (`40...` admitted, `44...` refused), in order.

    Opened together, so that none waits long between its handshake and its connect: the server closes a session
    not connected within SOCKETIO_CONNECT_TIMEOUT.
    """
    barrier = threading.Barrier(len(connects))
    sessions: list[websocket.WebSocket] = []
    answers: list[str | BaseException | None] = [None] * len(connects)

    def connect(i: int, address: str, auth: dict) -> None:
        try:
            ws = raw_session(server, address)
            sessions.append(ws)
            barrier.wait(timeout=30)
            ws.send("40" + json.dumps(auth))
            answers[i] = ws.recv()
        except Exception as err:  # reported below, with the others' answers
            barrier.abort()  # the others fail at the barrier too, rather than wait out its timeout
            answers[i] = err

    threads = [threading.Thread(target=connect, args=(i, *each)) for i, each in enumerate(connects)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for ws in sessions:
            ws.close()
    assert all(isinstance(answer, str) for answer in answers), answers
    return answers  # type: ignore[return-value]  # all str, as asserted
