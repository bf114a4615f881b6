"""docs/security.md and docs/protocol.md say what the new bounds answer, in the words the server uses."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chat_relay.access.auth_failures import AuthFailures
from chat_relay.async_drivers import AsyncDriver, TimeLimitExceeded, mode_driver
from chat_relay.config import Settings
from chat_relay.errors import RelayError
from chat_relay.middleware.body_deadline import BodyDeadline
from chat_relay.middleware.http_connection_cap import HttpConnectionCap

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()
SECURITY = (ROOT / "docs" / "security.md").read_text()
DEFAULTS = Settings(_env_file=None)  # type: ignore[call-arg]

THREADS = AsyncDriver("threading", threading.Thread, time.sleep, threading.Event, mode_driver("threading"))


def refusal_of(app: Any, environ: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Call WSGI `app`; the status and the error object it answered."""
    seen: list[str] = []
    body = b"".join(app(environ, lambda status, headers: seen.append(status)))
    return seen[0], json.loads(body)["error"]


def documented(code: str, message: str) -> None:
    assert f"`{code}`" in PROTOCOL and f'"{message}"' in PROTOCOL, message
    assert f"`{code}`" in SECURITY


def test_the_failed_auth_throttle_refusal_is_documented() -> None:
    failures = AuthFailures(DEFAULTS)
    for _ in range(10):  # AUTH_FAILURE_LIMIT's default
        failures.failed("10.0.0.1")
    with pytest.raises(RelayError) as caught:
        failures.check("10.0.0.1")
    assert caught.value.retry_after is not None
    documented(caught.value.code.value, caught.value.message)


def test_the_http_connection_cap_refusal_is_documented() -> None:
    def held(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b""]

    cap = HttpConnectionCap(held, DEFAULTS.max_connections_per_client)
    for _ in range(DEFAULTS.max_connections_per_client):  # never closed: all still in progress
        cap({"PATH_INFO": "/message/stream", "REMOTE_ADDR": "10.0.0.2"}, lambda *args: None)
    status, error = refusal_of(cap, {"PATH_INFO": "/message/stream", "REMOTE_ADDR": "10.0.0.2"})
    assert status.startswith("429")
    documented(error["code"], error["message"])


def test_the_body_deadline_refusal_is_documented() -> None:
    class Stalled(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise TimeLimitExceeded  # what time_limit raises in a green thread at the deadline

    deadline = BodyDeadline(lambda environ, start_response: [b""], DEFAULTS.request_body_timeout, THREADS,
                            DEFAULTS.max_request_bytes)
    status, error = refusal_of(deadline, {"CONTENT_LENGTH": "10", "wsgi.input": Stalled()})
    assert status.startswith("408")
    documented(error["code"], error["message"])


@pytest.mark.parametrize("setting", [
    "AUTH_TOKENS", "AUTH_FAILURE_LIMIT", "ALLOWED_HOSTS", "CORS_ALLOWED_ORIGINS", "TRUSTED_PROXIES", "METRICS_ALLOW",
    "MAX_PROMPT_CHARS", "MAX_MESSAGES", "MAX_TOKENS_LIMIT", "ALLOWED_MODELS", "MAX_STREAMS_PER_CLIENT",
    "MAX_STREAMS_TOTAL", "RATE_LIMIT", "MAX_CONNECTIONS_PER_CLIENT", "SOCKETIO_CONNECT_TIMEOUT", "PING_INTERVAL",
    "PING_TIMEOUT", "UPSTREAM_CONNECT_TIMEOUT", "UPSTREAM_READ_TIMEOUT", "RESUME_GRACE", "RESUME_TTL",
    "SHUTDOWN_GRACE", "REQUEST_BODY_TIMEOUT", "REDIS_TIMEOUT", "SECRET_KEY", "MAX_REQUEST_BYTES",
    "WORKER_CONNECTIONS", "MAX_UNAUTHENTICATED_BYTES",
])
def test_every_bound_is_in_docs_security(setting: str) -> None:
    assert f"`{setting}`" in SECURITY
