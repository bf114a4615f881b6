"""How many bytes one message may carry, before auth and after: MAX_UNAUTHENTICATED_BYTES until a client has
shown a token, MAX_REQUEST_BYTES from then on.

MAX_REQUEST_BYTES holds an image (8 MiB). A client without a token could otherwise make the server hold that
much per connection while a message assembles, times MAX_CONNECTIONS_PER_CLIENT handshakes per address. So:

- a Socket.IO connection's messages (websocket frames together, polling POST bodies) are bounded by the small
  bound until a connect on it is admitted, the relay's or one to a team's own namespace (`Held.admitted` in
  chat_relay/access/connections.py), then by the large one; the websocket's bound is raised in place
  (chat_relay/async_drivers/, `bounded_websocket`);
- an HTTP stream request's body is read only up to the small bound unless it carries one of AUTH_TOKENS, or,
  with an `identify` hook, the hook (run here, in a request context, once: the route takes its answer) knows
  its caller (chat_relay/middleware/body_deadline.py); the route then refuses it with its usual 401, counted by
  the failed-auth throttle as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import parse_qs

from .auth import Access
from .connections import Connections


class MessageBound:
    """The bound for one message, per connection or request; built once in ChatRelay.init_app."""

    def __init__(self, before_auth: int, after_auth: int, connections: Connections, access: Access,
                 request_context: Callable[[dict[str, Any]], AbstractContextManager[object]] | None = None) -> None:
        """`request_context(environ)`: the app's, which an `identify` hook may need (flask.session)."""
        self._request_context = request_context or (lambda environ: contextlib.nullcontext())
        self.after_auth = after_auth
        self.before_auth = min(before_auth, after_auth)
        self._connections = connections
        self._access = access

    # Socket.IO

    def admitted(self, eio_sid: str | None) -> bool:
        """Whether this engine.io session's connect has been admitted (its client has shown a token, if any)."""
        held = self._connections.sessions.get(eio_sid or "")
        return held is not None and held.admitted

    def follow(self, eio_sid: str | None, set_bound: Callable[[int], None]) -> None:
        """Call `set_bound` with the session's bound now, and again with the large one once its connect is
        admitted: a websocket starts small and rises in place."""
        held = self._connections.sessions.get(eio_sid or "")
        if held is not None and held.admitted:
            set_bound(self.after_auth)
            return
        set_bound(self.before_auth)
        if held is not None:
            held.when_connected.append(lambda: set_bound(self.after_auth))

    # Bodies (BodyDeadline)

    def for_socketio_post(self, environ: Mapping[str, Any]) -> int:
        """A polling POST: the large bound only for a session whose connect has been admitted."""
        sid = parse_qs(str(environ.get("QUERY_STRING") or "")).get("sid", [None])[0]
        return self.after_auth if self.admitted(sid) else self.before_auth

    def for_stream_request(self, environ: dict[str, Any]) -> int:
        """An HTTP stream request: the large bound when no token is needed, it carries a right one, or the
        `identify` hook knows its caller."""
        if not self._access.authenticates:
            return self.after_auth
        with self._request_context(environ):
            known = self._access.identified_before_body(environ)
        return self.after_auth if known else self.before_auth
