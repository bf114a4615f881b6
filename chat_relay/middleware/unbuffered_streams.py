"""Send each piece of the relay's HTTP streams when it comes, under eventlet's server too.

eventlet's WSGI server holds a streamed body's writes until 4 KB have gathered, unless the environ it gave the
app says `eventlet.minimum_write_chunk_size: 0`. A route cannot say so when the app is mounted behind
Flask-SocketIO (`socketio.run`, as a team starts its app): its middleware hands the app a copy of the environ,
and eventlet reads the original. So this middleware, installed around Flask-SocketIO's, says it on the original,
for the relay's stream paths only (a team's own routes keep the server's buffering). Elsewhere the key means
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

EVENTLET_MINIMUM_WRITE = "eventlet.minimum_write_chunk_size"


class UnbufferedStreams:
    """WSGI middleware: no minimum write size on the paths `applies` accepts."""

    def __init__(self, wsgi_app: WSGIApplication, applies: Callable[[str], bool]) -> None:
        self.wsgi_app = wsgi_app
        self.applies = applies

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.applies(environ.get("PATH_INFO") or ""):
            environ[EVENTLET_MINIMUM_WRITE] = 0
        return self.wsgi_app(environ, start_response)
