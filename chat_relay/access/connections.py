"""How many Socket.IO connections each client holds: at most MAX_CONNECTIONS_PER_CLIENT, so one client cannot
take all of the worker's connections (gunicorn's worker_connections) and lock everyone else out.

A connection is counted from its engine.io handshake to its close. Until its Socket.IO connect it counts
against its address, the only identity a handshake has; from the connect on, against its client identity,
the token's or the address's (chat_relay/access/auth.py), as the stream limits count. Each count and its check
happen with no switch to another green thread in between, so a burst of connections cannot overshoot.
The engine.io side (when connections open, connect and close) is wired in chat_relay/middleware/connection_cap.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ErrorCode, RelayError
from .auth import CLIENT_KEY

HELD_KEY = "chat_relay.connection"  # in the WSGI environ: the connection's Held

Environ = MutableMapping[str, Any]


@dataclass
class Held:
    """What one connection holds. One object, kept in its environ: Flask-SocketIO copies the environ before
    engine.io sees it, and every copy must release the same count, once."""

    key: str | None = None  # the count it is in: "handshake:<address>", or a client identity once connected
    connected: bool = False  # its Socket.IO connect was admitted
    session: str | None = None  # engine.io's sid, once engine.io has made a session of the handshake
    # Its websocket's request is running: the count is released when that ends, with the socket, and not when
    # engine.io forgets the session (a client that stopped answering pings still holds its socket).
    on_socket: bool = False
    gone: bool = False  # engine.io has forgotten the session
    # A connect to a namespace of a team's own was admitted (chat_relay/middleware/connection_cap.py).
    connected_elsewhere: bool = False
    # Called once at its first admitted connect: its websocket's message bound rises then (message_bound.py).
    when_connected: list[Callable[[], None]] = field(default_factory=list)

    @property
    def admitted(self) -> bool:
        """Some connect on it was admitted, the relay's or a team's: its client is past auth."""
        return self.connected or self.connected_elsewhere

    def admit(self) -> None:
        """Its first admitted connect: run what waited for it."""
        hooks, self.when_connected = self.when_connected, []
        for hook in hooks:
            hook()


class Connections:
    """One per app: counts open connections per address (not yet connected) and per client (connected)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._open: Counter[str] = Counter()  # "handshake:<address>" and client identities
        self.total = 0  # every connection counted, for /healthz
        self.sessions: dict[str, Held] = {}  # engine.io sid -> what its connection holds, while engine.io has it

    def handshake(self, environ: Environ) -> Held:
        """Count a new engine.io connection against its address, or refuse it with too_many_connections."""
        key = f"handshake:{environ.get('REMOTE_ADDR') or 'unknown'}"
        if self._open[key] >= self.cap:
            raise RelayError(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"{self.cap} connections from your address are waiting to connect, the most allowed; "
                "try again in a moment.",
            )
        held = environ[HELD_KEY] = Held()
        self._count(held, key)
        return held

    def connect(self, environ: Environ, client: str) -> None:
        """The Socket.IO connect: count the connection against `client` from now on, or refuse it.

        A refused connection keeps its address's count until it is closed, so refused connections that
        linger (a polling client's, until it polls for the refusal) are bounded too.
        """
        held = environ.setdefault(HELD_KEY, Held())
        if held.connected and held.key == client:  # a second connect on the same connection: counted already
            return
        if self._open[client] >= self.cap:
            raise RelayError(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"You have {self.cap} connections open, the most allowed; close one (another tab?) and try again.",
            )
        self.close(environ)  # its address's count, or an earlier connect's on the same connection
        self._count(held, client)
        held.connected = True
        environ[CLIENT_KEY] = client
        held.admit()

    def close(self, environ: Environ) -> None:
        """The connection is gone (or moves to another count): release what it holds. Safe to repeat."""
        held: Held | None = environ.get(HELD_KEY)
        if held is None or held.key is None:
            return
        self._open[held.key] -= 1
        if self._open[held.key] <= 0:
            del self._open[held.key]
        self.total -= 1
        held.key, held.connected = None, False

    def count(self, key: str) -> int:
        """Open connections held by one client identity, or by `handshake:<address>`."""
        return self._open[key]

    def _count(self, held: Held, key: str) -> None:
        self._open[key] += 1
        self.total += 1
        held.key = key
