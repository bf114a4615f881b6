"""How many HTTP requests each address has in progress: at most MAX_CONNECTIONS_PER_CLIENT, as Socket.IO
connections are capped (chat_relay/access/connections.py), so that one address cannot take the worker's connections
(WORKER_CONNECTIONS) with slow bodies, streams or requests that never end, before or after auth.

Counted per address, the only identity a request has before its body is read and its token checked, from
the moment the server hands the request on to the moment its response closes (a stream's whole life). Socket.IO's
own requests are left to the Socket.IO cap. The count and its check happen with no switch to another green
thread between them, so a burst cannot overshoot. One more is refused with 429 `too_many_connections`, and its
connection is closed, since its body was not read.
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
    """WSGI middleware: refuse an address's request when it has `cap` requests in progress already."""

    def __init__(self, wsgi_app: WSGIApplication, cap: int, *, applies: Callable[[str], bool] = lambda path: True,
                 refused: Callable[[RelayError], None] = lambda err: None) -> None:
        """`applies(path)`: whether the request counts (not Socket.IO's, which its own cap counts; not a team's)."""
        self.wsgi_app = wsgi_app
        self.cap = cap
        self.applies = applies
        self.refused = refused
        self._open: Counter[str] = Counter()

    def count(self, address: str) -> int:
        """HTTP requests in progress from `address`."""
        return self._open[address]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.applies(environ.get("PATH_INFO") or ""):
            return self.wsgi_app(environ, start_response)
        address = environ.get("REMOTE_ADDR") or "unknown"
        if self._open[address] >= self.cap:
            err = RelayError(ErrorCode.TOO_MANY_CONNECTIONS,
                             f"{self.cap} requests from your address are in progress, the most allowed; "
                             "try again when one has ended.")
            self.refused(err)
            return refuse(err, start_response, close_in=environ)
        self._open[address] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open[address] -= 1
                if self._open[address] <= 0:
                    del self._open[address]

        try:
            response = self.wsgi_app(environ, start_response)
        except BaseException:
            release()
            raise
        return ClosingIterator(response, [release])
