"""Quiet the one traceback a browser causes by closing its websocket while engine.io probes the upgrade.

engine.io's websocket driver turns that close into a bare `OSError()`, which gunicorn logs as "Socket
error processing request" with a full traceback. Nothing is wrong: the client left (a refused connect,
a closed tab). End the connection the way engine.io ends a websocket under gunicorn, with a debug line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger(__name__)

class ClosedWebsocketGuard:
    """WSGI middleware: a bare OSError from a websocket request under gunicorn is a client that left."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return self.wsgi_app(environ, start_response)
        except OSError as err:
            upgrade = environ.get("HTTP_UPGRADE", "").lower() == "websocket"
            if err.errno is not None or not upgrade or "gunicorn.socket" not in environ:
                raise
            log.debug("websocket closed by the client during %s", environ.get("PATH_INFO"))
            raise StopIteration from None  # gunicorn's async workers close the connection quietly
