"""Who may use the relay: bearer tokens (AUTH_TOKENS) or the team's `identify` hook (chat_relay/access/identity.py),
allowed hosts and origins, and the identity limits count.

`/healthz` (and the web page and `/models`) stay open; streaming needs a token when AUTH_TOKENS is set, and
a Host header in ALLOWED_HOSTS (chat_relay/access/hosts.py) always.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Any

from werkzeug.datastructures import EnvironHeaders

from ..config import Settings
from ..errors import ErrorCode, RelayError
from ..host_names import host_name
from ..observability.bug_reports import hook_answer, log_bug
from .auth_failures import AuthFailures
from .hosts import HOST_NOT_ALLOWED_MESSAGE, allowed_hosts
from .identity import IDENTITY_KEY, Caller, Identify, Identity, cached_answer, client_key

log = logging.getLogger(__name__)

CLIENT_KEY = "chat_relay.client"  # where a Socket.IO connection's identity is kept, in its environ

class Access:
    """Checks tokens, hosts and origins; built once from the settings."""

    def __init__(self, settings: Settings, identify: Identify | None = None) -> None:
        """`identify`: the team's hook, which replaces AUTH_TOKENS when given."""
        self._identify = identify
        # Digests, so every comparison is over 32 bytes whatever the lengths; the tokens are not kept.
        self._digests = [_digest(token.get_secret_value()) for token in settings.auth_tokens]
        self._origins = list(settings.cors_allowed_origins)
        self._hosts = allowed_hosts(settings.allowed_hosts, settings.host)
        self.failures = AuthFailures(settings)  # AUTH_FAILURE_LIMIT wrong tokens per address

    @property
    def tokens_required(self) -> bool:
        return bool(self._digests) and self._identify is None

    @property
    def authenticates(self) -> bool:
        """Whether a client must show who it is (a token, or whatever the `identify` hook reads)."""
        return self.tokens_required or self._identify is not None

    def identify_socketio(self, auth: object, environ: dict[str, Any], remote_addr: str | None) -> str:
        """A Socket.IO connect's client identity (kept with its Identity in the environ), or a refusal."""
        if self._identify is None:
            client = self.identify(socket_token(auth), remote_addr)
            environ[IDENTITY_KEY] = Identity(client)
            return client
        return self._identified(Caller("socketio", environ, auth), environ, remote_addr)

    def identified_before_body(self, environ: dict[str, Any]) -> bool:
        """Whether an HTTP request's caller is known, asked before its body is read (access/message_bound.py): the
        hook runs here then, once; the route takes its answer. Counts no failure, as `known` does not."""
        if self._identify is None:
            return not self.tokens_required or self.known(bearer_token(EnvironHeaders(environ)))
        hook = self._identify
        try:
            return cached_answer(environ, lambda: hook(Caller("http", environ))) is not None
        except Exception:  # the route raises it again, and answers it
            return False

    def user_before_body(self, environ: dict[str, Any]) -> str | None:
        """An HTTP request's client identity when the `identify` hook knows its caller, asked before its body is read
        (the hook runs here then, once; the route takes its answer), else None. Counts no failure, as `known` does
        not. The HTTP connection cap then counts the request per user (chat_relay/middleware/http_connection_cap.py).
        """
        hook = self._identify
        if hook is None:
            return None
        try:
            identity = cached_answer(environ, lambda: hook(Caller("http", environ)))
        except Exception:  # the route raises it again, and answers it
            return None
        if not isinstance(identity, Identity) or not isinstance(identity.user_id, str) or not identity.user_id:
            return None  # refused, or a hook's mistake the route reports
        return client_key(identity)

    def _identified(self, caller: Caller, environ: dict[str, Any], remote_addr: str | None) -> str:
        address = remote_addr or "unknown"
        self.failures.check(address)
        hook = self._identify
        assert hook is not None
        identity = hook_answer(log, "identify", "The server could not check who you are.",
                               lambda: cached_answer(environ, lambda: hook(caller)))
        if identity is None:
            self.failures.failed(address)
            raise RelayError(ErrorCode.UNAUTHORIZED, "You are not signed in, or not allowed to use this.")
        if not isinstance(identity, Identity) or not isinstance(identity.user_id, str) or not identity.user_id:
            log_bug(log, f"the identify hook returned a {type(identity).__name__}, not an Identity with a user_id")
            raise RelayError(ErrorCode.INTERNAL, "The server could not check who you are.")
        environ[IDENTITY_KEY] = identity
        return client_key(identity)

    def identify(self, token: object, remote_addr: str | None) -> str:
        """The client identity for limits: the token's fingerprint, or the remote address without auth.

        Raises `unauthorized` when tokens are required and this one is missing or wrong, and `rate_limited` when
        the address has sent too many wrong ones (chat_relay/access/auth_failures.py), whatever this one is.
        """
        if not self.tokens_required:
            return f"addr:{remote_addr or 'unknown'}"
        if not isinstance(token, str) or not token:
            raise RelayError(ErrorCode.UNAUTHORIZED, "A token is required: send it as a Bearer token.")
        address = remote_addr or "unknown"
        self.failures.check(address)
        if not self.known(token):
            self.failures.failed(address)
            raise RelayError(ErrorCode.UNAUTHORIZED, "The token is not valid.")
        return f"token:{_digest(token).hex()[:16]}"

    def known(self, token: object) -> bool:
        """Whether `token` is one of AUTH_TOKENS; counts no failure (the body bound asks before the route does)."""
        if not isinstance(token, str) or not token:
            return False
        digest = _digest(token)
        valid = False
        for known in self._digests:  # no early exit: the time taken does not say which token matched
            valid |= hmac.compare_digest(digest, known)
        return valid

    def check_http(self, environ: dict[str, Any], headers: Any, remote_addr: str | None) -> str:
        """For an HTTP stream request: check the host, the origin and the bearer token; return the client identity."""
        self.check_host(environ)
        self.check_origin(environ)
        if self._identify is not None:
            return self._identified(Caller("http", environ), environ, remote_addr)
        client = self.identify(bearer_token(headers), remote_addr)
        environ[IDENTITY_KEY] = Identity(client)
        return client

    def host_allowed(self, environ: Mapping[str, Any]) -> bool:
        """Whether the Host header (the forwarded one, through ProxyFix) names this server: in ALLOWED_HOSTS."""
        return host_name(environ.get("HTTP_HOST")) in self._hosts

    def check_host(self, environ: Mapping[str, Any]) -> None:
        """Refuse a request for a host name not in ALLOWED_HOSTS, with or without an Origin (DNS rebinding).

        A rebinding page's same-origin GET (engine.io's polling handshake) carries no Origin, so the Host is
        checked on its own; curl to 127.0.0.1 or localhost still passes.
        """
        if not self.host_allowed(environ):
            log.warning("refused a request for host %r: add its name to ALLOWED_HOSTS if it is this server's",
                        str(environ.get("HTTP_HOST"))[:100])
            raise RelayError(ErrorCode.HOST_NOT_ALLOWED, HOST_NOT_ALLOWED_MESSAGE)

    def check_origin(self, environ: Mapping[str, Any]) -> None:
        """Refuse a browser request from a foreign origin; requests without Origin (curl, servers) pass."""
        if not self.origin_allowed(environ.get("HTTP_ORIGIN"), environ):
            raise RelayError(ErrorCode.ORIGIN_NOT_ALLOWED, "Requests from this origin are not allowed.")

    def origin_allowed(self, origin: str | None, environ: Mapping[str, Any]) -> bool:
        """The rule for both transports (engine.io calls it for Socket.IO): no Origin, our own, or a listed one.

        The server's own origin stays allowed when others are listed, so its own page keeps working. It is
        our own only under an allowed host name: a rebound attacker.example would otherwise match itself.
        """
        if not origin or origin in self._origins:
            return True
        return self.host_allowed(environ) and origin in _own_origins(environ)


def bearer_token(headers: Any) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def socket_token(auth: object) -> object:
    """The token of a Socket.IO connect's `auth={"token": ...}`."""
    return auth.get("token") if isinstance(auth, dict) else None


def identity_of(environ: Mapping[str, Any]) -> Identity:
    """The Identity that `identify_socketio` or `check_http` found for this connection or request."""
    identity: Identity = environ[IDENTITY_KEY]
    return identity


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _own_origins(environ: Mapping[str, Any]) -> list[str]:
    # Forwarded headers count only through ProxyFix (TRUSTED_PROXIES), which rewrites these two.
    host = environ.get("HTTP_HOST")
    return [f"{environ.get('wsgi.url_scheme') or 'http'}://{host}"] if host else []
