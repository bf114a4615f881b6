"""Fast checks of the access and admission rules, without a server."""

from __future__ import annotations

import threading

import pytest

from chat_relay.access.admission import Admission
from chat_relay.access.auth import Access, bearer_token
from chat_relay.access.hosts import allowed_hosts
from chat_relay.config import ConfigError, Settings, load_settings
from chat_relay.errors import ErrorCode, RelayError
from chat_relay.host_names import allowed_host_entry, host_name
from chat_relay.streams.producer import Producer
from chat_relay.streams.registry import ActiveStream, StreamRegistry
from chat_relay.streams.request_validation import ChatRequest
from chat_relay.streams.stream_buffer import StreamBuffer


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
    return ActiveStream(Producer(ChatRequest("s1", "m", []), None, StreamBuffer("s1", threading.Event)), key, client)  # type: ignore[arg-type]


def test_admission_order_and_counts() -> None:
    registry = StreamRegistry()
    admission = Admission(settings(max_streams_per_client=1, max_streams_total=2, rate_limit="3/minute"), registry)
    admission.admit("a")
    assert len(registry) == 1 and registry.count("a") == 1  # reserved before anything can switch
    registry.add(running("k-a", "a"), reserved=True)
    assert len(registry) == 1 and registry.count("a") == 1  # the reservation became the stream
    with pytest.raises(RelayError, match="1 streams running") as caught:
        admission.admit("a")
    assert caught.value.code is ErrorCode.TOO_MANY_STREAMS
    admission.admit("b")
    registry.add(running("k-b", "b"), reserved=True)
    with pytest.raises(RelayError, match="server") as caught:
        admission.admit("c")
    registry.remove("k-a")
    registry.remove("k-b")
    assert len(registry) == 0 and registry.count("a") == 0
    admission.admit("a")
    admission.give_back("a")  # a stream that did not start after all gives its slot back
    admission.admit("a")  # the 3rd for "a" (the refused one did not count)
    admission.give_back("a")
    with pytest.raises(RelayError) as caught:  # the 4th within a minute
        admission.admit("a")
    assert caught.value.code is ErrorCode.RATE_LIMITED and caught.value.to_dict()["retry_after"] >= 1
    assert len(registry) == 0 and registry.count("a") == 0  # a refusal by the rate limit gives the slot back
    admission.draining = True
    with pytest.raises(RelayError) as caught:
        admission.admit("z")
    assert caught.value.code is ErrorCode.SERVER_SHUTDOWN



def test_rate_limit_entries_expire_without_a_timer_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage sweeps inline (chat_relay/access/admission.py): expired entries still go, and memory stays
    bounded."""
    from limits import parse
    from limits.strategies import MovingWindowRateLimiter

    from chat_relay.access import admission as limits

    storage = limits.InlineSweepStorage()
    limiter = MovingWindowRateLimiter(storage)
    rate = parse("2/second")
    now = [1000.0]
    monkeypatch.setattr(limits.time, "time", lambda: now[0])  # limits' entries and windows read time.time()
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    threads = set(threading.enumerate())
    assert limiter.hit(rate, "a") and limiter.hit(rate, "a") and not limiter.hit(rate, "a")
    assert set(threading.enumerate()) <= threads  # no timer started by a hit
    now[0] += 1.5
    key_a = rate.key_for("a")
    assert limiter.hit(rate, "b")  # the window of "a" has passed, but the next sweep is not due yet
    assert len(storage.events[key_a]) == 2
    now[0] += limits._SWEEP_EVERY
    assert limiter.hit(rate, "b")  # due: this hit sweeps
    assert storage.events[key_a] == [] and limiter.test(rate, "a")


def test_every_limit_refusal_is_documented_with_its_code_and_message() -> None:
    """docs/protocol.md's table of the limits' refusals shows each message as the defaults make it."""
    from chat_relay.access.connections import Connections
    from tests.conftest import ROOT as root
    protocol = (root / "docs" / "protocol.md").read_text()
    readme = (root / "README.md").read_text()
    defaults = settings(auth_tokens="some-token")
    refusals: list[RelayError] = []

    def refused(call: object, *args: object) -> None:
        with pytest.raises(RelayError) as caught:
            call(*args)  # type: ignore[operator]
        refusals.append(caught.value)

    access = Access(defaults)
    refused(access.identify, None, "10.0.0.1")
    refused(access.identify, "wrong", "10.0.0.1")
    registry = StreamRegistry()
    admission = Admission(defaults, registry)
    for i in range(defaults.max_streams_per_client):
        admission.admit("a")
        registry.add(running(f"k{i}", "a"), reserved=True)
    refused(admission.admit, "a")
    for _ in range(60):  # RATE_LIMIT's default, each given back at once: only the rate limit counts them
        admission.admit("b")
        admission.give_back("b")
    refused(admission.admit, "b")
    full_registry = StreamRegistry()
    full = Admission(settings(max_streams_per_client=1000, max_streams_total=1, rate_limit=""), full_registry)
    full.admit("c")
    full_registry.add(running("k", "c"), reserved=True)
    refused(full.admit, "c")
    connections = Connections(defaults.max_connections_per_client)
    for _ in range(defaults.max_connections_per_client):
        connections.handshake({"REMOTE_ADDR": "10.0.0.1"})
        connections.connect({}, "d")
    refused(connections.handshake, {"REMOTE_ADDR": "10.0.0.1"})
    refused(connections.connect, {}, "d")
    full.draining = True
    refused(full.admit, "e")
    for err in refusals:
        assert f'| `{err.code.value}` | "' in protocol and f'"{err.message}"' in protocol, err.message
        assert f"`{err.code.value}`" in readme, err.code


def test_connection_counts_move_from_the_address_to_the_client_and_are_released_once() -> None:
    from chat_relay.access.connections import Connections

    connections = Connections(2)
    first, second = {"REMOTE_ADDR": "10.0.0.1"}, {"REMOTE_ADDR": "10.0.0.1"}
    connections.handshake(first)
    connections.handshake(second)
    with pytest.raises(RelayError) as caught:  # a third handshake from that address, none connected yet
        connections.handshake({"REMOTE_ADDR": "10.0.0.1"})
    assert caught.value.code is ErrorCode.TOO_MANY_CONNECTIONS and caught.value.http_status == 429
    connections.connect(first, "token:a")
    connections.connect(dict(first), "token:a")  # a copy of its environ, connecting again: counted once
    assert connections.count("handshake:10.0.0.1") == 1 and connections.count("token:a") == 1
    connections.handshake({"REMOTE_ADDR": "10.0.0.1"})  # the address has room again
    connections.connect(second, "token:a")
    refused = {"REMOTE_ADDR": "10.0.0.2"}
    connections.handshake(refused)
    with pytest.raises(RelayError, match="2 connections open"):
        connections.connect(refused, "token:a")
    assert connections.count("handshake:10.0.0.2") == 1  # a refused one counts against its address till closed
    connections.close(dict(refused))  # Flask-SocketIO's copy of the environ releases the same count
    connections.close(refused)
    assert connections.count("handshake:10.0.0.2") == 0
    connections.close(first)
    connections.close(first)
    assert connections.count("token:a") == 1 and connections.total == 2
