"""How a WSGI middleware refuses a request: the relay's JSON refusal (errors.http_refusal), before Flask routes it."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from ..errors import RelayError, http_refusal


def refuse(err: RelayError, start_response: Callable[..., Any]) -> list[bytes]:
    """Answer `err` in the same JSON shape as the HTTP routes' refusals; clients of a handshake see it fail."""
    status, headers, body = http_refusal(err)
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]
