"""Fast checks of the access and admission rules, without a server."""

from __future__ import annotations

import threading

import pytest

from app.access.auth import Access, bearer_token
from app.access.hosts import allowed_host_entry, allowed_hosts, host_name
from app.access.limits import Admission
from app.config import ConfigError, Settings, load_settings
from app.errors import ErrorCode, RelayError
from app.streams.log import StreamLog
from app.streams.registry import ActiveStream, StreamRegistry
from app.streams.relay import Relay
from app.streams.schemas import ChatRequest


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


@pytest.mark.parametrize("header, name", [
    ("127.0.0.1:8714", "127.0.0.1"), ("127.0.0.1", "127.0.0.1"), ("LocalHost:80", "localhost"),
    ("localhost.:8000", "localhost"), ("Chat.Example.COM", "chat.example.com"), ("relay_1:8000", "relay_1"),
    ("[::1]:8714", "::1"), ("[::1]", "::1"), ("[0:0:0:0:0:0:0:1]:80", "::1"), ("[2001:DB8::7]", "2001:db8::7"),
    ("::1", None), ("[::1", None), ("[nope]:80", None), ("a.example:http", None), ("a.example:123456", None),
    ("a.example:80:80", None), ("a b.example", None), ("", None), (None, None), ("evil.example@127.0.0.1", None),
])
def test_host_name_of_a_host_header(header: str | None, name: str | None) -> None:
    assert host_name(header) == name


def test_allowed_hosts_entries_and_defaults() -> None:
    assert [allowed_host_entry(e) for e in ("Chat.Example.com", "[::1]", "::1", "192.0.2.7", "relay.")] == [
        "chat.example.com", "::1", "::1", "192.0.2.7", "relay"]
    for wrong in ("*", ".example.com", "https://chat.example.com", "chat.example.com:443", "a b", ""):
        with pytest.raises(ValueError):
            allowed_host_entry(wrong)
    with pytest.raises(ConfigError, match=r"ALLOWED_HOSTS.*wildcards"):
        load_settings(allowed_hosts="chat.example.com,*", _env_file=None)
    assert settings(allowed_hosts="Chat.Example.com, [::1]").allowed_hosts == ["chat.example.com", "::1"]
    loopback = {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts([], "127.0.0.1") == loopback
    assert allowed_hosts([], "0.0.0.0") == allowed_hosts([], "::") == loopback  # every interface names no host
    assert allowed_hosts(["chat.example.com"], "192.0.2.7") == loopback | {"chat.example.com", "192.0.2.7"}
    assert allowed_hosts([], "[2001:db8::7]") == loopback | {"2001:db8::7"}


def test_dns_rebinding_is_refused_and_listed_hosts_are_our_own() -> None:
    access = Access(settings())
    rebound = {"wsgi.url_scheme": "http", "HTTP_HOST": "attacker.example:8714"}
    assert not access.origin_allowed("http://attacker.example:8714", rebound)  # its own origin, but not ours
    for origin in (None, "http://attacker.example:8714"):
        with pytest.raises(RelayError) as caught:  # with or without an Origin: a same-origin GET sends none
            access.check_host({**rebound, "HTTP_ORIGIN": origin} if origin else rebound)
        assert caught.value.code is ErrorCode.HOST_NOT_ALLOWED and caught.value.http_status == 400
    for host in ("127.0.0.1:8714", "localhost:8714", "LOCALHOST:8714", "[::1]:8714"):
        environ = {"wsgi.url_scheme": "http", "HTTP_HOST": host}
        access.check_host(environ)
        assert access.origin_allowed(f"http://{host}", environ)
    access.check_host({"HTTP_HOST": "127.0.0.1"})
    with pytest.raises(RelayError):
        access.check_host({})  # no Host at all: no browser sends that
    listed = Access(settings(allowed_hosts="chat.example.com"))
    public = {"wsgi.url_scheme": "https", "HTTP_HOST": "Chat.Example.com"}
    listed.check_host(public)
    assert listed.origin_allowed("https://Chat.Example.com", public)
    assert not listed.origin_allowed("https://attacker.example", public)


def test_tokens_and_rate_settings() -> None:
    assert "secret-token" not in repr(settings(auth_tokens="secret-token"))
    with pytest.raises(ConfigError, match="RATE_LIMIT"):
        load_settings(rate_limit="lots", _env_file=None)
    assert settings(rate_limit="").rate_limit == ""


def running(key: str, client: str) -> ActiveStream:
    """A stream as the registry holds it while it runs (its producer is never started here)."""
    return ActiveStream(Relay(ChatRequest("s1", "m", []), None, StreamLog("s1", threading.Event)), key, client)  # type: ignore[arg-type]


def test_admission_order_and_counts() -> None:
    registry = StreamRegistry()
    admission = Admission(settings(max_streams_per_client=1, max_streams_total=2, rate_limit="3/minute"), registry)
    admission.admit("a")
    registry.add(running("k-a", "a"))
    with pytest.raises(RelayError, match="1 streams running") as caught:
        admission.admit("a")
    assert caught.value.code is ErrorCode.TOO_MANY_STREAMS
    admission.admit("b")
    registry.add(running("k-b", "b"))
    with pytest.raises(RelayError, match="server") as caught:
        admission.admit("c")
    registry.remove("k-a")
    registry.remove("k-b")
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
