"""The protocol's error codes as exceptions, so a program can catch the one it can act on.

One base, `RelayError`, with `.code` and `.message` as the server sent them; a subclass per code of
docs/protocol.md ("Error codes"). A code this client does not know (a newer server) is a plain `RelayError`.
Failures of the connection itself, which have no protocol code, are `RelayConnectionError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RelayError(Exception):
    """A failure the relay reported, with its protocol code and a message meant for people."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, retry_after: int | None = None,
                 stream_id: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code or type(self).code
        self.message = message
        self.retry_after = retry_after  # whole seconds to wait, for rate_limited and resume_unavailable
        self.stream_id = stream_id
        self.status = status  # the HTTP status, when the error came as one

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidRequest(RelayError):
    code = "invalid_request"


class UpstreamAuth(RelayError):
    code = "upstream_auth"


class RateLimited(RelayError):
    code = "rate_limited"


class UpstreamTimeout(RelayError):
    code = "upstream_timeout"


class UpstreamUnavailable(RelayError):
    code = "upstream_unavailable"


class UpstreamError(RelayError):
    code = "upstream_error"


class InternalError(RelayError):
    code = "internal"


class Unauthorized(RelayError):
    code = "unauthorized"


class OriginNotAllowed(RelayError):
    code = "origin_not_allowed"


class HostNotAllowed(RelayError):
    code = "host_not_allowed"


class TooManyStreams(RelayError):
    code = "too_many_streams"


class TooManyConnections(RelayError):
    code = "too_many_connections"


class ServerShutdown(RelayError):
    code = "server_shutdown"


class StreamExpired(RelayError):
    code = "stream_expired"


class ResumeUnavailable(RelayError):
    code = "resume_unavailable"


class Interrupted(RelayError):
    code = "interrupted"


class StalledReader(RelayError):
    """The stream was ended because this client took none of its text for the server's STALLED_READER_TIMEOUT."""

    code = "stalled_reader"


class BudgetExceeded(RelayError):
    """The user's token budget on the server is used up until `retry_after`."""

    code = "budget_exceeded"


class RelayConnectionError(RelayError):
    """No answer in the protocol's terms: the server could not be reached, went silent, or broke the protocol."""

    code = "connection_error"


BY_CODE: dict[str, type[RelayError]] = {cls.code: cls for cls in (
    InvalidRequest, UpstreamAuth, RateLimited, UpstreamTimeout, UpstreamUnavailable, UpstreamError, InternalError,
    Unauthorized, OriginNotAllowed, HostNotAllowed, TooManyStreams, TooManyConnections, ServerShutdown,
    StreamExpired, ResumeUnavailable, Interrupted, StalledReader, BudgetExceeded)}


def error_from(payload: Mapping[str, Any], *, status: int | None = None, retry_after: int | None = None) -> RelayError:
    """The exception for an error object of the protocol: `{"code", "message"}`, maybe `retry_after`, `stream_id`."""
    code = str(payload.get("code") or "error")
    message = str(payload.get("message") or code)
    wait = payload.get("retry_after", retry_after)
    return BY_CODE.get(code, RelayError)(
        message, code=code, retry_after=int(wait) if isinstance(wait, int | float) else None,
        stream_id=payload.get("stream_id"), status=status)
