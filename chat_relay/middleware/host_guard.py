"""Socket.IO only for the host names the server answers to (ALLOWED_HOSTS: access/hosts.py), checked before
engine.io sees the request: the defence against DNS rebinding for the handshake and its transports."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

from ..errors import RelayError
from .refusal import refuse


class SocketIOHostGuard:
    """WSGI middleware: refuse a Socket.IO request (handshake, polling, websocket) whose Host is not allowed.

    engine.io checks the Origin only when there is one, and a same-origin polling GET carries none, so the
    Host is checked here, before engine.io sees the request. ProxyFix wraps this, so behind a trusted proxy
    the forwarded host is the one checked. `check_host` raises the RelayError to answer with; `refused` is told
    of it (the metrics).
    """

    def __init__(self, wsgi_app: WSGIApplication, check_host: Callable[[dict[str, Any]], None],
                 path: str = "/socket.io", refused: Callable[[RelayError], None] = lambda err: None) -> None:
        self.wsgi_app = wsgi_app
        self.check_host = check_host
        self.path = path
        self.refused = refused

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or ""
        if path == self.path or path.startswith(self.path + "/"):
            try:
                self.check_host(environ)
            except RelayError as err:  # the same JSON body as the HTTP refusals; clients see a failed handshake
                self.refused(err)
                return refuse(err, start_response)
        return self.wsgi_app(environ, start_response)
