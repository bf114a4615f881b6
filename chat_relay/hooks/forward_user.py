"""FORWARD_USER: the upstream learns which of the team's users sent a request (OpenAI's `safety_identifier`, or
`user` for servers that only know that field), as a keyed hash of the user id, never the id itself.

Keyed with a key derived from SECRET_KEY: the same user gets the same value on every instance and after a
restart (so the upstream's abuse reports can be traced back), and nobody without the secret can tell from
the value which user it is, nor check a guess.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace

from ..access.identity import Identity
from ..config import Settings
from ..streams.request_validation import ChatRequest

_SALT = b"chat-relay.forward-user"  # its own key: never the resume tokens' signing key


class UserHashes:
    """One per app; `tagged(request, identity)` adds the field when FORWARD_USER is on."""

    def __init__(self, settings: Settings) -> None:
        self._field = settings.forward_user_field
        self._key: bytes | None = None
        if settings.forward_user:
            assert settings.secret_key is not None  # the settings refuse FORWARD_USER without it
            self._key = hmac.new(settings.secret_key.get_secret_value().encode(), _SALT, hashlib.sha256).digest()

    def of(self, user_id: str) -> str:
        assert self._key is not None
        return hmac.new(self._key, user_id.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()

    def tagged(self, request: ChatRequest, identity: Identity) -> ChatRequest:
        if self._key is None:
            return request
        return replace(request, options={**request.options, self._field: self.of(identity.user_id)})
