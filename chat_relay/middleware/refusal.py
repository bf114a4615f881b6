"""How a WSGI middleware refuses a request: the relay's JSON refusal (errors.http_refusal), before Flask routes it,
and, when the request's body was left unread, the connection closed after it (a keep-alive server would otherwise
go on reading that body, at the client's pace, to find the next request)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from werkzeug.wsgi import ClosingIterator

from ..async_drivers import client_socket
from ..errors import RelayError, http_refusal


def refuse(err: RelayError, start_response: Callable[..., Any], status: int | None = None, *,
           close_in: Mapping[str, Any] | None = None) -> Iterable[bytes]:
    """Answer `err` in the same JSON shape as the HTTP routes' refusals (its status, or `status`); with `close_in`
    (the request's environ), hang up once it is out."""
    code, headers, body = http_refusal(err, status)
    if close_in is not None:
        headers.append(("Connection", "close"))
    start_response(f"{code} {HTTPStatus(code).phrase}", headers)
    if close_in is None:
        return [body]
    environ = close_in
    return ClosingIterator([body], [lambda: hang_up(environ)])


def hang_up(environ: Mapping[str, Any]) -> None:
    """End the connection once the response is out: the server's next read of it finds the end and closes it."""
    sock = client_socket(environ)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
