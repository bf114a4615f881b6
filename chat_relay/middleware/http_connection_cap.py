"""How many HTTP requests each address has in progress: at most MAX_CONNECTIONS_PER_CLIENT, as Socket.IO
connections are capped (chat_relay/access/connections.py), so that one address cannot take the worker's connections
(WORKER_CONNECTIONS) with slow bodies, streams or requests that never end, before or after auth.

Counted from the moment the server hands the request on to the moment its response closes (a stream's whole
life): per address, the only identity a request has before its body is read and its token checked; then, when
the team's `identify` hook knows its caller before the body (`client_of`), per user instead, as a Socket.IO
connection moves from its address to its client at its connect (chat_relay/access/connections.py), so that users
behind one address (an office) have caps of their own. Socket.IO's own requests are left to the Socket.IO cap.
Each count and its check happen with no switch to another green thread between them, so a burst cannot
overshoot. One more is refused with 429 `too_many_connections`, and its connection is closed, since its body
was not read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.wsgi import ClosingIterator

from ..errors import ErrorCode, RelayError
from .refusal import refuse

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class HttpConnectionCap:
    """WSGI middleware: refuse a request when its address, or its user once known, has `cap` requests in progress."""

    def __init__(self, wsgi_app: WSGIApplication, cap: int, *, applies: Callable[[str], bool] = lambda path: True,
                 refused: Callable[[RelayError], None] = lambda err: None,
                 client_of: Callable[[dict[str, Any]], str | None] = lambda environ: None) -> None:
        """`applies(path)`: whether the request counts (not Socket.IO's, which its own cap counts; not a team's).
        `client_of(environ)`: the caller's client identity if it is known before the body (the `identify` hook's
        user), else None; asked once the request holds its address's place, so that an address cannot make the
        server run the hook for more than `cap` requests at once."""
        self.wsgi_app = wsgi_app
        self.cap = cap
        self.applies = applies
        self.refused = refused
        self.client_of = client_of
        self._open: Counter[str] = Counter()  # addresses, and client identities ("user:<id>")

    def count(self, key: str) -> int:
        """HTTP requests in progress from an address, or of a client identity."""
        return self._open[key]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.applies(environ.get("PATH_INFO") or ""):
            return self.wsgi_app(environ, start_response)
        address = environ.get("REMOTE_ADDR") or "unknown"
        if self._open[address] >= self.cap:
            return self._refuse(environ, start_response, f"{self.cap} requests from your address are in progress")
        self._open[address] += 1
        held = address
        try:
            client = self.client_of(environ)  # the team's hook may switch green threads: the address's place is held
        except BaseException:
            self._release(held)
            raise
        if client is not None:
            self._release(held)  # from here on the request is its user's, wherever it comes from
            if self._open[client] >= self.cap:
                return self._refuse(environ, start_response, f"You have {self.cap} requests in progress")
            self._open[client] += 1
            held = client
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._release(held)

        try:
            response = self.wsgi_app(environ, start_response)
        except BaseException:
            release()
            raise
        return ClosingIterator(response, [release])

    def _release(self, key: str) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]

    def _refuse(self, environ: dict[str, Any], start_response: Callable[..., Any], whose: str) -> Iterable[bytes]:
        err = RelayError(ErrorCode.TOO_MANY_CONNECTIONS,
                         f"{whose}, the most allowed; try again when one has ended.")
        self.refused(err)
        return refuse(err, start_response, close_in=environ)
