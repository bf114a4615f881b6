"""A resume token decodes without the secret (it is signed, not encrypted): it must not let anyone who sees one
(an nginx log of ?resume_token=) check guesses of the access token offline."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from chat_relay.access.auth import Access
from chat_relay.config import Settings
from chat_relay.errors import RelayError
from chat_relay.streams.resume_tokens import ResumeTokens

ACCESS_TOKEN = "weak-token-1234"


def decoded_without_secret(resume_token: str) -> list[object]:
    """What anyone can read: itsdangerous's payload is base64url JSON before the signature."""
    payload = resume_token.rsplit(".", 1)[0]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_resume_token_carries_nothing_checkable_against_the_access_token() -> None:
    access = Access(Settings(_env_file=None, auth_tokens=ACCESS_TOKEN))  # type: ignore[call-arg]
    client = access.identify(ACCESS_TOKEN, "10.0.0.7")
    tokens = ResumeTokens(b"server-secret" * 3, bind_client=True)
    resume_token = tokens.issue("stream-key", "s1", client)

    readable = json.dumps(decoded_without_secret(resume_token))
    # An attacker's offline check: hash a guess without any secret and look for it in the token.
    unkeyed = hashlib.sha256(ACCESS_TOKEN.encode()).hexdigest()
    assert ACCESS_TOKEN not in readable
    assert client not in readable and client.split(":", 1)[1] not in readable
    assert not any(unkeyed[i:i + 8] in readable for i in range(len(unkeyed) - 7))

    # The binding is keyed: another server secret binds the same client to something else...
    other = ResumeTokens(b"another-secret" * 3, bind_client=True).issue("stream-key", "s1", client)
    assert decoded_without_secret(other)[2] != decoded_without_secret(resume_token)[2]
    # ...and it still binds: the token works for its client only.
    assert tokens.check(resume_token, "s1", client) == "stream-key"
    with pytest.raises(RelayError):
        tokens.check(resume_token, "s1", "token:0000000000000000")
