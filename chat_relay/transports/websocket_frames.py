"""How the websocket transport writes frames: each one whole, and compressed only when WEBSOCKET_COMPRESSION says so.

- Whole frames. Under gevent, engine.io's websocket is simple-websocket, which writes a frame with one
  `socket.send`. On a socket whose buffer is nearly full (a client that reads slowly), that writes part of
  the frame and the rest is lost, so the client's stream is corrupt (simple-websocket issue #45).
  Coalesced chunks make large frames common. Here simple-websocket gets a socket whose `send` is
  `sendall`. eventlet's websocket already writes with `sendall`.
- Compression. Both servers accept permessage-deflate whenever a browser offers it, which runs every small
  message through zlib: about 20% more CPU per piece when the worker is busiest, for about 70% fewer bytes of
  messages that are small anyway (docs/benchmarks.md). So by default the offer is not seen: the handshake's
  extensions header is dropped.

Installed into engine.io in place of its own websocket class for the async mode (engine.io has no option
for either).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

EXTENSIONS_HEADER = "HTTP_SEC_WEBSOCKET_EXTENSIONS"


class WholeFrames:
    """A socket whose `send` writes everything it is given, as simple-websocket assumes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def send(self, data: bytes, flags: int = 0) -> int:
        self._sock.sendall(data, flags)
        return len(data)

    def __getattr__(self, name: str) -> Any:  # recv, fileno, close...: the socket's own
        return getattr(self._sock, name)


def install(eio_server: Any, compression: bool, green: bool) -> None:
    """Replace engine.io's websocket class (gevent or eventlet) with one that writes whole frames and
    sees a compression offer only when `compression` is on. Without `green` tasks (threading) it is left alone."""
    base = eio_server._async.get("websocket")
    if not green or base is None:
        return

    class RelayWebSocket(base):  # type: ignore[misc, valid-type]
        def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            sock = environ.get("gunicorn.socket")
            if sock is not None or (not compression and EXTENSIONS_HEADER in environ):
                environ = dict(environ)  # the request's own environ stays as it was
                if sock is not None:
                    environ["gunicorn.socket"] = WholeFrames(sock)
                if not compression:
                    environ.pop(EXTENSIONS_HEADER, None)
            return super().__call__(environ, start_response)

    # engine.io's table of async primitives is the driver module's own dict: copy it, never change it.
    eio_server._async = {**eio_server._async, "websocket": RelayWebSocket}
