"""A read deadline for request bodies: REQUEST_BODY_TIMEOUT seconds for the whole body, then 408 and a hang-up.

Neither gunicorn's gevent worker nor eventlet's server bounds how long a body may take: a client sending one byte
every few seconds holds its connection, and one of the worker's WORKER_CONNECTIONS, for as long as it likes. So
the body is read here, whole, before the app sees it, within the deadline, and handed on in memory. Bodies are
at most MAX_REQUEST_BYTES; one that says it is larger is left to the app's 413, and its connection closed after
it rather than read. engine.io's polling POSTs go through here too.

Before auth the bound is smaller (MAX_UNAUTHENTICATED_BYTES, chat_relay/access/message_bound.py): a body past it is
not read. A request the app refuses by its token anyway (`refused_by_auth`: the stream routes' 401) goes on to the
app with no body, and its connection is closed after the answer; any other (engine.io's polling POST before its
connect) is refused here with 413.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..async_drivers import AsyncDriver, TimeLimitExceeded
from ..errors import ErrorCode, RelayError
from .refusal import hang_up, refuse

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

from werkzeug.wsgi import ClosingIterator

_READ = 64 * 1024


class BodyDeadline:
    """WSGI middleware: read each request's body within `timeout` seconds, or answer 408 and close the connection."""

    def __init__(self, wsgi_app: WSGIApplication, timeout: float, driver: AsyncDriver, limit: int, *,
                 applies: Callable[[str], bool] = lambda path: True,
                 refused: Callable[[RelayError, str], None] = lambda err, path: None,
                 bound: Callable[[dict[str, Any]], int] | None = None,
                 refused_by_auth: Callable[[str], bool] = lambda path: False) -> None:
        """`applies(path)`: whether this request is the relay's to bound (a team's routes are the team's).
        `bound(environ)`: this request's bound, at most `limit` (a smaller one before auth). `refused(err, path)`:
        told of each refusal, with the request's path (the metrics' transport: Socket.IO's polling POSTs or HTTP)."""
        self.wsgi_app = wsgi_app
        self.bound = bound
        self.refused_by_auth = refused_by_auth
        self.applies = applies
        self.timeout = timeout
        self.driver = driver
        self.limit = limit
        self.refused = refused

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = _content_length(environ)
        chunked = "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower()
        if (length is None and not chunked) or not self.applies(environ.get("PATH_INFO") or ""):
            # no body (a GET, a websocket upgrade), or not the relay's request
            return self.wsgi_app(environ, start_response)
        if length is not None and length > self.limit:  # refused unread by the app (413); then hang up
            return ClosingIterator(self.wsgi_app(environ, start_response), [lambda: hang_up(environ)])
        limit = self.limit if self.bound is None else min(self.bound(environ), self.limit)
        if length is not None and length > limit:  # before auth, over its bound: never read
            return self._over_auth_bound(environ, start_response, limit)
        try:
            with self.driver.time_limit(self.timeout):
                body = _read(environ["wsgi.input"], length, limit)
        except TimeLimitExceeded:
            err = RelayError(ErrorCode.INVALID_REQUEST,
                             f"The request body did not arrive within {self.timeout:g} seconds.")
            self.refused(err, environ.get("PATH_INFO") or "")
            return refuse(err, start_response, 408, close_in=environ)
        except OSError:  # the client left mid-body: nobody to answer
            hang_up(environ)
            return []
        if body is None and limit < self.limit:
            return self._over_auth_bound(environ, start_response, limit)
        if body is None:
            err = RelayError(ErrorCode.INVALID_REQUEST, f"The request is too large: at most {self.limit} bytes.")
            self.refused(err, environ.get("PATH_INFO") or "")
            return refuse(err, start_response, 413, close_in=environ)
        return self.wsgi_app(_with_body(environ, body), start_response)

    def _over_auth_bound(self, environ: dict[str, Any], start_response: Callable[..., Any],
                         limit: int) -> Iterable[bytes]:
        """A body over the bound before auth, left unread: the app's own 401 (which counts a wrong token against
        the failed-auth throttle) for a request it refuses by its token, else 413; then hang up."""
        if self.refused_by_auth(environ.get("PATH_INFO") or ""):
            answer = self.wsgi_app(_with_body(environ, b""), start_response)
            return ClosingIterator(answer, [lambda: hang_up(environ)])
        err = RelayError(ErrorCode.INVALID_REQUEST,
                         f"The request is too large: at most {limit} bytes before the connection is authorized.")
        self.refused(err, environ.get("PATH_INFO") or "")
        return refuse(err, start_response, 413, close_in=environ)


def _with_body(environ: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The request as the app reads it: this body, in memory, read to its end."""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ["wsgi.input_terminated"] = True
    return environ


def _content_length(environ: dict[str, Any]) -> int | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length > 0 else None


def _read(stream: Any, length: int | None, limit: int) -> bytes | None:
    """The whole body: `length` bytes, or a chunked one to its end; None if a chunked one passes `limit`."""
    parts, total = [], 0
    wanted = length if length is not None else limit + 1
    while total < wanted:
        data = stream.read(min(_READ, wanted - total))
        if not data:
            break
        parts.append(data)
        total += len(data)
    if length is None and total > limit:
        return None
    return b"".join(parts)
