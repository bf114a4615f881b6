"""Fast checks of the access and admission rules, without a server."""

from __future__ import annotations

import pytest

from app.auth import Access, bearer_token
from app.config import ConfigError, Settings, load_settings
from app.errors import ErrorCode, RelayError
from app.limits import Admission
from app.registry import StreamRegistry
from app.relay import Relay
from app.schemas import ChatRequest


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type]


def test_identity_is_the_address_without_tokens_and_a_fingerprint_with_them() -> None:
    assert Access(settings()).identify(None, "10.0.0.7") == "addr:10.0.0.7"
    access = Access(settings(auth_tokens="alpha-token, beta-token"))
    alpha = access.identify("alpha-token", "10.0.0.7")
    assert alpha.startswith("token:") and "alpha" not in alpha
    assert access.identify("alpha-token", "10.9.9.9") == alpha != access.identify("beta-token", "10.0.0.7")
    for wrong in (None, "", "alpha-toke", "alpha-token ", 42, "\ud800"):
        with pytest.raises(RelayError) as caught:
            access.identify(wrong, "10.0.0.7")
        assert caught.value.code is ErrorCode.UNAUTHORIZED


@pytest.mark.parametrize("header, token", [
    ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None), ("", None),
])
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token({"Authorization": header}) == token


def test_origin_rule_follows_the_host_and_ignores_forged_forwarded_headers() -> None:
    access = Access(settings(cors_allowed_origins="https://app.example"))
    environ = {"wsgi.url_scheme": "http", "HTTP_HOST": "127.0.0.1:8000"}
    assert access.origin_allowed(None, environ)
    assert access.origin_allowed("http://127.0.0.1:8000", environ)
    assert access.origin_allowed("https://app.example", environ)
    assert not access.origin_allowed("https://evil.example", environ)
    proxied = {**environ, "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_HOST": "relay.example"}
    assert not access.origin_allowed("https://relay.example", proxied)  # only ProxyFix may rewrite the host


def test_tokens_and_rate_settings() -> None:
    assert "secret-token" not in repr(settings(auth_tokens="secret-token"))
    with pytest.raises(ConfigError, match="RATE_LIMIT"):
        load_settings(rate_limit="lots", _env_file=None)
    assert settings(rate_limit="").rate_limit == ""


def test_admission_order_and_counts() -> None:
    registry = StreamRegistry()
    admission = Admission(settings(max_streams_per_client=1, max_streams_total=2, rate_limit="3/minute"), registry)
    admission.admit("a")
    registry.add("sid-a", Relay(ChatRequest("s1", "m", []), upstream=None), "a")  # type: ignore[arg-type]
    with pytest.raises(RelayError, match="1 streams running") as caught:
        admission.admit("a")
    assert caught.value.code is ErrorCode.TOO_MANY_STREAMS
    admission.admit("b")
    registry.add("sid-b", Relay(ChatRequest("s1", "m", []), upstream=None), "b")  # type: ignore[arg-type]
    with pytest.raises(RelayError, match="server") as caught:
        admission.admit("c")
    registry.remove("sid-a", "s1")
    registry.remove("sid-b", "s1")
    assert len(registry) == 0 and registry.count("a") == 0
    admission.admit("a")
    admission.admit("a")  # the 3rd for "a" (the refused one did not count)
    with pytest.raises(RelayError) as caught:  # the 4th within a minute
        admission.admit("a")
    assert caught.value.code is ErrorCode.RATE_LIMITED and caught.value.to_dict()["retry_after"] >= 1
    admission.draining = True
    with pytest.raises(RelayError) as caught:
        admission.admit("z")
    assert caught.value.code is ErrorCode.SERVER_SHUTDOWN
