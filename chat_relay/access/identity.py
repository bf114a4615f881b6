"""Who is asking: the team's `identify` hook, run once per Socket.IO connection and once per HTTP request.

Without the hook, the static AUTH_TOKENS (or the address) say who the client is, as before. With it, the hook
decides, from what the request carries (the team's session cookie, a JWT, an API key of its own), and every
per-client limit counts per user id: two users behind one address get limits of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from werkzeug.datastructures import EnvironHeaders

IDENTITY_KEY = "chat_relay.identity"  # in the environ: the Identity of the connection or request, once identified
_RESULT_KEY = "chat_relay.identify_result"  # in the environ: what the hook answered, so it runs once per request


@dataclass(frozen=True)
class Identity:
    """A user as the team's app knows it: an id, and whatever else its hooks want (a plan, a tenant).

    Without an `identify` hook it is the relay's own client identity: a fingerprint of the AUTH_TOKENS token
    (`token:...`), or the address (`addr:...`).
    """

    user_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Caller:
    """What `identify` is given. It runs inside a Flask request context, so `flask.session` and `flask.request`
    are there too (over Socket.IO: the connect's)."""

    transport: Literal["socketio", "http"]
    environ: Mapping[str, Any]  # the WSGI environ (cookies, headers, the address)
    auth: object = None  # Socket.IO: the connect's `auth` payload; HTTP: None

    @property
    def headers(self) -> EnvironHeaders:
        return EnvironHeaders(self.environ)  # type: ignore[arg-type]


Identify = Callable[[Caller], "Identity | None"]
"""Return the caller's Identity, or None to refuse it (`unauthorized`); may raise a RelayError of its own."""


def client_key(identity: Identity) -> str:
    """The key limits count against: one per user id, apart from the static tokens' and addresses' keys."""
    return f"user:{identity.user_id}"


def cached_answer(environ: dict[str, Any], run: Callable[[], Identity | None]) -> Identity | None:
    """The hook's answer for this request: `run()` the first time (the pre-auth body bound may ask before the
    route), the same answer, or the same exception, after that."""
    if _RESULT_KEY not in environ:
        try:
            environ[_RESULT_KEY] = run()
        except Exception as err:  # kept, and raised again wherever the answer is asked for
            environ[_RESULT_KEY] = err
    answer = environ[_RESULT_KEY]
    if isinstance(answer, Exception):
        raise answer
    return answer  # type: ignore[no-any-return]
