"""A refusal written by WSGI middleware, before Flask sees the request: the same JSON body as the routes' refusals,
and, when the request's body was left unread, the connection closed after it (a keep-alive server would
otherwise go on reading that body, at the client's pace, to find the next request)."""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from werkzeug.wsgi import ClosingIterator

from ..errors import RelayError, retry_after_seconds
from .http_hangup import client_socket


def refuse(environ: Mapping[str, Any], start_response: Callable[..., Any], err: RelayError,
           status: int | None = None, *, close: bool = False) -> Iterable[bytes]:
    """Answer `err` as `{"error": {...}}` with its status (or `status`) and Retry-After; `close`: hang up after."""
    body = json.dumps({"error": err.to_dict()}, separators=(",", ":")).encode()
    code = HTTPStatus(status or err.http_status)
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if err.retry_after is not None:
        headers.append(("Retry-After", str(retry_after_seconds(err.retry_after))))
    if close:
        headers.append(("Connection", "close"))
    start_response(f"{code.value} {code.phrase}", headers)
    return ClosingIterator([body], [lambda: hang_up(environ)] if close else [])


def hang_up(environ: Mapping[str, Any]) -> None:
    """End the connection once the response is out: the server's next read of it finds the end and closes it."""
    sock = client_socket(environ)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
