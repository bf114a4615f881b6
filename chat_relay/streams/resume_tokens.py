"""Resume tokens: an unguessable, signed capability to read one stream again, from any connection or instance.

Signed with itsdangerous (Flask's own signer) over the stream's global key, its stream_id and, when
AUTH_TOKENS is on, the client identity, so that a token leaked from one client is useless to another. Without
AUTH_TOKENS the identity is an address, which changes when a phone moves to another network: the token is
then bound to the stream alone, and holding it is what proves the right to read.

A signed token is not encrypted: anyone can base64-decode it without the secret, and nginx logs
`?resume_token=` by default. The client identity is derived from the access token (chat_relay/access/auth.py), so
it goes in only as a keyed hash (HMAC with a key derived from the server's secret): without the secret it
cannot be used to check guesses of the access token offline.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

import redis
from itsdangerous import BadSignature, URLSafeSerializer

from ..config import Settings
from ..errors import ErrorCode, RelayError

log = logging.getLogger(__name__)

SECRET = "relay:secret"  # the resume tokens' signing secret in Redis, when SECRET_KEY is not set

# One message for every refusal, so a caller learns nothing about whether the stream exists.
NO_SUCH_STREAM = "No stream of yours with that stream_id and resume_token can be resumed."

_SALT = "chat-relay.resume"
_BINDING_SALT = b"chat-relay.resume.client"  # its own key: the binding's HMAC never reuses the signing key


class ResumeTokens:
    def __init__(self, secret: str | bytes, bind_client: bool) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_SALT)
        key = secret.encode() if isinstance(secret, str) else secret
        self._binding_key = hmac.new(key, _BINDING_SALT, hashlib.sha256).digest()
        self._bind_client = bind_client

    def issue(self, stream_key: str, stream_id: str, client: str) -> str:
        return self._serializer.dumps([stream_key, stream_id, self._binding(client)])

    def check(self, token: object, stream_id: object, client: str) -> str:
        """The stream's key, if `token` was issued for this stream_id (and client); else invalid_request."""
        if not isinstance(token, str) or not isinstance(stream_id, str) or len(token) > 1000:
            raise RelayError(ErrorCode.INVALID_REQUEST, NO_SUCH_STREAM)
        try:
            stream_key, issued_for, bound = self._serializer.loads(token)
        except (BadSignature, ValueError, TypeError):
            raise RelayError(ErrorCode.INVALID_REQUEST, NO_SUCH_STREAM) from None
        if issued_for != stream_id or not isinstance(bound, str) \
                or not hmac.compare_digest(bound, self._binding(client)):
            raise RelayError(ErrorCode.INVALID_REQUEST, NO_SUCH_STREAM)
        return str(stream_key)

    def _binding(self, client: str) -> str:
        """The client, as only this server's secret can reproduce it ("" when tokens are bound to streams alone)."""
        if not self._bind_client:
            return ""
        return hmac.new(self._binding_key, client.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def resume_secret(settings: Settings, store: redis.Redis | None) -> bytes:
    """What resume tokens are signed with: SECRET_KEY; else, with REDIS_URL, one secret every instance reads
    from Redis (the first to start makes it); else one for this process (one instance needs no more)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    if store is not None:
        try:
            store.set(SECRET, secrets.token_bytes(32), nx=True)
            value = store.get(SECRET)
            if isinstance(value, bytes):
                return value
        except redis.RedisError:
            log.warning("the shared store is unreachable at start: resume tokens from this instance will be "
                        "valid on this instance only. Set SECRET_KEY (the same on every instance) to avoid this.")
    return secrets.token_bytes(32)

