"""Which host names the server answers to (ALLOWED_HOSTS): the defence against DNS rebinding.

A page on attacker.example can make its own name resolve to 127.0.0.1; the browser then sends
`Host: attacker.example` and `Origin: http://attacker.example` to the relay, which looks like the
relay's own origin. Only a host name the deployer listed (or a loopback name, which no one else can
point anywhere) proves that the browser was really talking to this server.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

from ..errors import RelayError
from ..host_names import allowed_host_entry

# Names a browser sends only for a page it really loaded from this machine: always answered.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
# Bind addresses that mean "every interface": they name no host a client would use.
ANY_ADDRESS = ("", "0.0.0.0", "::", "[::]")

HOST_NOT_ALLOWED_MESSAGE = "This server does not answer to that host name: ALLOWED_HOSTS lists the ones it does."

def allowed_hosts(listed: Iterable[str], bind_host: str) -> frozenset[str]:
    """The names answered: the loopback ones, HOST when it is one address, and those listed (already normalized)."""
    names = set(LOOPBACK_HOSTS) | set(listed)
    if bind_host.strip() not in ANY_ADDRESS:
        with contextlib.suppress(ValueError):  # not a name a Host header could carry: nothing to add
            names.add(allowed_host_entry(bind_host))
    return frozenset(names)


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
                body = json.dumps({"error": err.to_dict()}, separators=(",", ":")).encode()
                status = HTTPStatus(err.http_status)
                start_response(f"{status.value} {status.phrase}",
                               [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
        return self.wsgi_app(environ, start_response)
