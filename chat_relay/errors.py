"""The error vocabulary both transports share: a small set of codes, plain messages, HTTP statuses."""

from __future__ import annotations

import json
from enum import StrEnum


class ErrorCode(StrEnum):
    """Every way a request or a stream can fail, as clients see it."""

    INVALID_REQUEST = "invalid_request"
    UPSTREAM_AUTH = "upstream_auth"
    RATE_LIMITED = "rate_limited"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_ERROR = "upstream_error"
    INTERNAL = "internal"
    # Access, limits and shutdown (docs/protocol.md, "Security and limits").
    UNAUTHORIZED = "unauthorized"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    TOO_MANY_STREAMS = "too_many_streams"
    # Socket.IO: MAX_CONNECTIONS_PER_CLIENT (chat_relay/access/connections.py)
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SERVER_SHUTDOWN = "server_shutdown"
    # a Host header not in ALLOWED_HOSTS: DNS rebinding (chat_relay/access/hosts.py)
    HOST_NOT_ALLOWED = "host_not_allowed"
    # Resuming a stream (docs/protocol.md, "Resuming a stream").
    STREAM_EXPIRED = "stream_expired"  # a valid resume token, for a reply no longer kept (RESUME_TTL)
    RESUME_UNAVAILABLE = "resume_unavailable"  # the shared store (Redis) cannot be reached right now
    INTERRUPTED = "interrupted"  # the instance producing the reply died; the text it had sent is all there is
    # Back-pressure (docs/security.md, "Slow readers"): the reader took nothing for STALLED_READER_TIMEOUT.
    STALLED_READER = "stalled_reader"
    # A user's token budget (the `budget` hook, chat_relay/hooks/budget.py) is used up until `retry_after`.
    BUDGET_EXCEEDED = "budget_exceeded"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.UPSTREAM_AUTH: 502,  # our credentials were refused: the client can do nothing about it
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UPSTREAM_TIMEOUT: 504,
    ErrorCode.UPSTREAM_UNAVAILABLE: 502,
    ErrorCode.UPSTREAM_ERROR: 502,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.ORIGIN_NOT_ALLOWED: 403,
    ErrorCode.TOO_MANY_STREAMS: 429,
    ErrorCode.TOO_MANY_CONNECTIONS: 429,  # for a refused engine.io handshake; a Socket.IO refusal has no status
    ErrorCode.SERVER_SHUTDOWN: 503,
    ErrorCode.HOST_NOT_ALLOWED: 400,  # as Django answers a disallowed host
    ErrorCode.STREAM_EXPIRED: 410,
    ErrorCode.RESUME_UNAVAILABLE: 503,
    ErrorCode.INTERRUPTED: 502,
    ErrorCode.STALLED_READER: 408,  # only ever a stream's last event: its status was 200 long before
    ErrorCode.BUDGET_EXCEEDED: 429,
}


class RelayError(Exception):
    """A failure with a code and a message that are safe to show to the client."""

    def __init__(self, code: ErrorCode, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, object]:
        """The client-visible error; `retry_after` (seconds) only when the client should wait and retry."""
        error: dict[str, object] = {"code": self.code.value, "message": self.message}
        if self.retry_after is not None:
            error["retry_after"] = retry_after_seconds(self.retry_after)
        return error


def retry_after_seconds(seconds: float) -> int:
    """Whole seconds, rounded up, as the Retry-After header and the `retry_after` field carry them."""
    return max(0, int(seconds + 0.999))


def http_refusal(err: RelayError, status: int | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """A refusal over HTTP, the same from a route or a WSGI middleware: its status, headers and JSON body
    (`{"error": {...}}`), with Retry-After when the client should wait and a Bearer challenge for a token."""
    body = (json.dumps({"error": err.to_dict()}, separators=(",", ":"), sort_keys=True) + "\n").encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if err.retry_after is not None:
        headers.append(("Retry-After", str(retry_after_seconds(err.retry_after))))
    if err.code is ErrorCode.UNAUTHORIZED:
        headers.append(("WWW-Authenticate", 'Bearer realm="chat relay"'))
    return status or err.http_status, headers, body
