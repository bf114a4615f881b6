"""engine.io connections under the connection cap (chat_relay/access/connections.py): counted from the handshake,
closed when their Socket.IO connect is refused, and closed when they never send one.

python-socketio, refusing a connect, sends the refusal and forgets the namespace, but leaves the engine.io
connection open: a refused client, or one that never sends a connect, would keep holding one of the worker's
connections for as long as it answers pings. Here a refused websocket is closed right after its refusal,
and any connection not connected within SOCKETIO_CONNECT_TIMEOUT is closed, as socket.io's own server does:
one that never sent a connect, or a refused polling one whose client did not close it itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from ..access.connections import HELD_KEY, Connections, Held
from ..errors import ErrorCode, RelayError
from .refusal import refuse

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from flask_socketio import SocketIO

REFUSED_KEY = "chat_relay.refused"  # in the environ: its Socket.IO connect was refused, so it is to be closed


class HandshakeGate:
    """WSGI middleware: count each engine.io handshake against its address before engine.io sees it, and refuse
    new connections while the server drains (`draining()`), as new streams are refused then.

    Here, rather than in engine.io's connect event, so that a refusal is a 429 (503 while draining) with the
    same JSON body as the other refusals; engine.io's own can only be a 401. A handshake engine.io turns down
    (a bad query, a foreign origin) is released as it returns. A websocket, from its handshake or upgraded
    to, holds its count until its request ends with its socket, even once engine.io has forgotten it.
    `refused` is told of each refusal (the metrics).
    """

    def __init__(self, wsgi_app: WSGIApplication, connections: Connections, path: str = "/socket.io", *,
                 draining: Callable[[], bool] = lambda: False,
                 refused: Callable[[RelayError], None] = lambda err: None) -> None:
        self.wsgi_app = wsgi_app
        self.connections = connections
        self.path = path
        self.draining = draining
        self.refused = refused

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or ""
        if not (path == self.path or path.startswith(self.path + "/")):
            return self.wsgi_app(environ, start_response)
        sid = parse_qs(environ.get("QUERY_STRING") or "").get("sid")
        if sid is not None:
            upgraded = self.connections.sessions.get(sid[0]) if _is_websocket(environ) else None
            if upgraded is None:
                return self.wsgi_app(environ, start_response)
            return self._upgrade(upgraded, environ, start_response)
        try:
            if self.draining():  # a client reconnecting during the drain would hold the server open
                raise RelayError(ErrorCode.SERVER_SHUTDOWN, "The server is shutting down; try again in a moment.")
            held = self.connections.handshake(environ)
        except RelayError as err:
            self.refused(err)
            return refuse(err, start_response)
        # A websocket's request lasts as long as its socket: the count is held until the socket is closed, even
        # after engine.io has forgotten the session (a client that stopped answering pings).
        websocket = held.on_socket = _is_websocket(environ)
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            held.on_socket = False
            if held.session is None or websocket:  # nothing else releases it
                self.connections.close(environ)

    def _upgrade(self, held: Held, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """A polling connection moving to a websocket: from now on its count lasts as long as the socket."""
        held.on_socket = True
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            held.on_socket = False
            if held.gone:  # engine.io forgot it while the socket was open (a failed upgrade leaves it polling)
                self.connections.close({HELD_KEY: held})


def _is_websocket(environ: dict[str, Any]) -> bool:
    return str(environ.get("HTTP_UPGRADE", "")).lower() == "websocket"


def watch_sessions(socketio: SocketIO, connections: Connections, connect_timeout: float) -> None:
    """Hook engine.io's connect, message and disconnect events, around python-socketio's own handlers."""
    eio = socketio.server.eio
    on_connect, on_message, on_disconnect = (eio.handlers[event] for event in ("connect", "message", "disconnect"))
    environs: dict[str, dict[str, Any]] = {}  # eio sid -> the connection's environ, while it is open

    def connected(eio_sid: str, environ: dict[str, Any]) -> Any:
        held = environ.setdefault(HELD_KEY, Held())
        held.session = eio_sid
        connections.sessions[eio_sid] = held
        environs[eio_sid] = environ
        socketio.start_background_task(close_if_silent, eio_sid, environ)
        return on_connect(eio_sid, environ)

    def close(eio_sid: str) -> None:
        """engine.io's disconnect, without its wait for the queue to be sent, which a polling client that never
        polls again would make last forever. What is queued still goes out over a websocket, whose writer
        holds the session; it is forgotten at once, so a later request for it gets engine.io's 400."""
        session = eio.sockets.pop(eio_sid, None)
        if session is not None:
            session.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)

    def connected_elsewhere(eio_sid: str) -> bool:
        """Connected to a namespace of the team's own, on a server the relay shares (chat_relay/extension.py)."""
        manager = socketio.server.manager
        return any(manager.sid_from_eio_sid(eio_sid, namespace) is not None
                   for namespace in list(manager.get_namespaces()))

    def close_if_silent(eio_sid: str, environ: dict[str, Any]) -> None:
        socketio.sleep(connect_timeout)
        if environs.get(eio_sid) is environ and not (environ[HELD_KEY].connected or connected_elsewhere(eio_sid)):
            close(eio_sid)  # open, and still not connected to anything

    def message(eio_sid: str, data: Any) -> Any:
        try:
            return on_message(eio_sid, data)
        finally:
            environ = environs.get(eio_sid)
            held = None if environ is None else environ.get(HELD_KEY)
            if held is not None and not held.admitted and connected_elsewhere(eio_sid):
                # a connect to a team's own namespace was admitted: the team's handler has checked its client
                held.connected_elsewhere = True
                held.admit()
            if environ is not None and environ.pop(REFUSED_KEY, False):
                # The refusal is queued by now. Over a websocket it goes out before the close, so close at
                # once (in a task of its own: this is the connection's reader). A polling client takes it
                # with its next poll and then closes the session itself, as socket.io's clients do; closing
                # it first would turn that poll, or the client's own close, into an error. One that does
                # neither is closed at the connect timeout: it is not connected. One connected to another
                # namespace meanwhile (a team's own, chat_relay/extension.py) is that namespace's to keep.
                session = eio.sockets.get(eio_sid)
                if session is not None and session.upgraded and not connected_elsewhere(eio_sid):
                    socketio.start_background_task(close, eio_sid)

    def disconnected(eio_sid: str, reason: Any = None) -> Any:
        environ = environs.pop(eio_sid, None)
        held = connections.sessions.pop(eio_sid, None)
        if held is not None:
            held.gone = True
        if environ is not None and not (held is not None and held.on_socket):  # a websocket's: as its socket closes
            connections.close(environ)
        return on_disconnect(eio_sid, reason)

    eio.on("connect", connected)
    eio.on("message", message)
    eio.on("disconnect", disconnected)
