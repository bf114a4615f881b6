"""Fast checks of the operations side, through Flask's test client (threading mode) and the parts themselves:
who may read /metrics, /readyz while draining (Ctrl-C's quick drain included) and without Redis, the counts
that the live tests cannot reach cheaply (the connection cap, retries by code), the JSON log formatter.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType, SimpleNamespace

import pytest
from flask import Flask
from gunicorn.glogging import SafeAtoms

from app import create_app
from app.serving.gunicorn_logs import _AccessFormatter
from chat_relay.config import ConfigError, Settings, load_settings
from chat_relay.errors import ErrorCode, RelayError
from chat_relay.lifecycle.readiness import Readiness
from chat_relay.observability.logs import JsonFormatter, log_event
from chat_relay.observability.metrics import Metrics, StreamEnd
from chat_relay.streams.events import Chunk, Done, Failed
from chat_relay.streams.producer import Producer
from chat_relay.streams.request_validation import ChatRequest
from chat_relay.streams.stream_buffer import StreamBuffer
from chat_relay.streams.upstream import Upstream
from chat_relay.transports.first_chunk import first_chunk_timed
from chat_relay.wiring import services_of
from tests.conftest import API_KEY, ROOT, free_port
from tests.fake_upstream import FakeUpstream, controls
from tests.metrics_scrape import check_bounded, labels, relay_samples


@pytest.fixture
def settings(fake_upstream: FakeUpstream) -> Settings:
    return Settings(openai_api_key=API_KEY, openai_base_url=fake_upstream.url, openai_model="fake-model",
                    async_mode="threading", upstream_max_retries=1, upstream_read_timeout=2, _env_file=None)


def scrape(app: Flask) -> dict:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    return relay_samples(response.get_data(as_text=True))


# Who may read /metrics.

@pytest.mark.parametrize("allow, peer, headers, status", [
    (None, "127.0.0.1", {}, 200),  # the default: loopback
    (None, "::1", {}, 200),
    (None, "10.1.2.3", {}, 404),
    (None, "127.0.0.1", {"X-Forwarded-For": "127.0.0.1"}, 404),  # through a proxy: never
    (None, "127.0.0.1", {"Forwarded": "for=127.0.0.1"}, 404),
    (None, "127.0.0.1", {"X-Forwarded-Host": "127.0.0.1"}, 404),
    (None, "127.0.0.1", {"Host": "attacker.example"}, 404),  # DNS rebinding
    ("10.0.0.0/8,::1", "10.1.2.3", {}, 200),
    ("10.0.0.0/8,::1", "::ffff:10.1.2.3", {}, 200),  # an IPv4 client of a dual-stack socket
    ("10.0.0.0/8,::1", "127.0.0.1", {}, 404),
    ("", "127.0.0.1", {}, 404),  # off
])
def test_metrics_answer_only_a_direct_scraper_that_metrics_allow_lists(
        settings: Settings, allow: str | None, peer: str, headers: dict[str, str], status: int) -> None:
    if allow is not None:
        settings = Settings(**{**settings.model_dump(), "metrics_allow": allow}, _env_file=None)
    client = create_app(settings).test_client()
    response = client.get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": peer})
    assert response.status_code == status
    if status == 200:
        assert response.content_type.startswith("text/plain") and "relay_streams_running 0.0" in response.text
    else:
        assert response.json["error"]["code"] == "invalid_request" and "relay_" not in response.text


def test_behind_trusted_proxies_the_forwarded_address_does_not_count(settings: Settings) -> None:
    """ProxyFix makes X-Forwarded-For the client's address; a proxied request is refused whatever it says."""
    settings.trusted_proxies = 1
    settings.metrics_allow = ["10.0.0.0/8"]
    client = create_app(settings).test_client()
    forwarded = client.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"},
                           environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert forwarded.status_code == 404
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 200


def test_metrics_allow_is_validated() -> None:
    with pytest.raises(ConfigError, match="METRICS_ALLOW"):
        load_settings(openai_api_key="x", metrics_allow="127.0.0.1,example.com", _env_file=None)
    settings = load_settings(openai_api_key="x", metrics_allow="10.0.0.0/8, ::1", _env_file=None)
    assert settings.metrics_allow == ["10.0.0.0/8", "::1"]
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        load_settings(openai_api_key="x", log_format="xml", _env_file=None)


# Readiness.

def test_readyz_is_503_from_the_start_of_a_quick_drain(settings: Settings) -> None:
    """Ctrl-C's drain (no grace) as chain_interrupt begins it; SIGTERM's is the same but for its grace."""
    app = create_app(settings)
    client = app.test_client()
    assert (client.get("/readyz").status_code, client.get("/readyz").json) == (200, {"status": "ready"})
    services_of(app).shutdown.begin(grace=0)
    response = client.get("/readyz")
    assert (response.status_code, response.json) == (503, {"status": "not_ready", "reasons": ["draining"]})
    assert client.get("/healthz").status_code == 200
    assert scrape(app)[("relay_ready", frozenset())] == 0


def test_readiness_follows_redis() -> None:
    shutdown = SimpleNamespace(began=False)
    answers = iter([True, False, True])
    readiness = Readiness(shutdown, lambda: next(answers), lambda seconds: None)  # type: ignore[arg-type]
    assert readiness.reasons() == []
    readiness.check()  # one step of its watch task
    assert readiness.reasons() == ["redis_unreachable"] and not readiness.ready()
    shutdown.began = True
    assert readiness.reasons() == ["draining", "redis_unreachable"]
    assert Readiness(SimpleNamespace(began=False), None, time.sleep).ready()  # type: ignore[arg-type]


# Counts the live tests do not reach cheaply.

def test_a_refused_connection_is_counted(settings: Settings) -> None:
    settings.max_connections_per_client = 1
    app = create_app(settings)
    socketio = app.extensions["socketio"]
    first = socketio.test_client(app)
    second = socketio.test_client(app)
    try:
        assert first.is_connected() and not second.is_connected()
        assert scrape(app)[("relay_refusals_total", labels(transport="socketio", code="too_many_connections"))] == 1
    finally:
        first.disconnect()


@pytest.mark.parametrize("fault, code", [("500", "upstream_error"), ("429", "rate_limited"),
                                         ("stall_headers", "upstream_timeout"), ("unreachable", "upstream_unavailable"),
                                         ("401", None)])
def test_upstream_retries_are_counted_by_the_code_retried(settings: Settings, fault: str, code: str | None) -> None:
    settings.upstream_read_timeout = 0.3
    if fault == "unreachable":
        settings.openai_base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    metrics = Metrics(settings.allowed_models)
    request = ChatRequest("s", "fake-model", [{"role": "user", "content": controls(fault=fault)}])
    with pytest.raises(RelayError) as failed:
        Upstream(settings, metrics).open(request)
    assert failed.value.code.value == (code or "upstream_auth")
    retries = {key: value for key, value in relay_samples(metrics.exposition(None)[0].decode()).items()
               if key[0] == "relay_upstream_retries_total"}
    assert retries == ({("relay_upstream_retries_total", labels(code=code)): 1.0} if code else {})  # 1: the setting


def test_labels_stay_bounded_whatever_a_caller_passes() -> None:
    metrics = Metrics(["m"])
    metrics.stream_started("carrier-pigeon", "model-from-a-request")
    metrics.stream_ended(StreamEnd("http", "gpt-secret", "a prompt as a cause", 1.0, 2, 5,
                                   {"prompt_tokens": "7", "completion_tokens": True}, None, None))
    samples = relay_samples(metrics.exposition(None)[0].decode())
    check_bounded(samples, ["m"])
    assert samples[("relay_streams_ended_total", labels(transport="http", model="other", cause="other"))] == 1
    assert not any(name.endswith("tokens_total") for name, _ in samples)  # not numbers: not counted


def test_only_the_first_chunk_is_timed_and_only_once_handed_on() -> None:
    observed: list[float] = []
    events = first_chunk_timed([Chunk("a", 0), Chunk("b", 1), Done("stop", 2, None)], time.monotonic(),
                               observed.append)
    assert next(events) == Chunk("a", 0) and observed == []  # handed to the transport, not yet sent
    assert next(events) == Chunk("b", 1) and len(observed) == 1  # asked for the next: the first is out
    assert list(events) == [Done("stop", 2, None)] and len(observed) == 1
    failed = Failed(ErrorCode.UPSTREAM_ERROR, "x", 0)
    assert list(first_chunk_timed([failed], 0.0, observed.append)) == [failed] and len(observed) == 1


# The JSON log formatter.

def test_an_event_is_the_old_text_line_or_a_json_object(caplog: pytest.LogCaptureFixture) -> None:
    fields = {"stream_id": "s1", "model": "m", "chunks": 3, "finish_reason": "stop", "cause": "completed",
              "upstream_finish": "stop", "duration_ms": 12}
    with caplog.at_level(logging.INFO):
        log_event(logging.getLogger("chat_relay.streams.producer"), "stream_end", fields)
    [record] = caplog.records
    assert record.getMessage() == ("stream_end stream_id=s1 model=m chunks=3 finish_reason=stop cause=completed "
                                   "upstream_finish=stop duration_ms=12")  # the text format, as it always was
    line = json.loads(JsonFormatter().format(record))
    assert line == {"time": line["time"], "level": "INFO", "logger": "chat_relay.streams.producer",
                    "message": "stream_end", "event": "stream_end", **fields}


def test_json_lines_survive_odd_text_and_carry_tracebacks_only_when_logged() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "host %r \udce9 é", ("\udcff",), None)
    line = JsonFormatter().format(record)
    assert line.isascii() and "\n" not in line and json.loads(line)["message"] == "host '\\udcff' \udce9 é"
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("x", logging.DEBUG, __file__, 1, "failed", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(JsonFormatter().format(failed))["exc_info"]


def test_gunicorn_access_records_keep_only_their_fields() -> None:
    atoms = {"h": "10.0.0.7", "m": "GET", "U": "/message/stream/s1", "q": "resume_token=tok-in-query",
             "r": "GET /message/stream/s1?resume_token=tok-in-query HTTP/1.1", "s": "200", "B": 512, "D": 1500,
             "{authorization}i": "Bearer tok-in-header", "{cookie}i": "session=abc"}
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(r)s", (SafeAtoms(atoms),), None)
    line = _AccessFormatter().format(record)
    assert "tok-in" not in line and "session" not in line
    assert json.loads(line) == {"time": json.loads(line)["time"], "level": "INFO", "logger": "gunicorn.access",
                                "message": "access", "event": "access", "remote_addr": "10.0.0.7", "method": "GET",
                                "path": "/message/stream/s1", "status": 200, "bytes": 512, "duration_ms": 1.5}


def test_the_grafana_dashboard_charts_only_metrics_the_server_has() -> None:
    """deploy/grafana-dashboard.json, kept in step with the metrics: every series it queries exists."""
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    names = {re.sub(r"_(total|bucket|count|sum)$", "", name)
             for expr in exprs for name in re.findall(r"\b(?:relay|process)_[a-z_]+", expr)}
    families = {family.name for family in Metrics(["m"]).registry.collect()}
    assert names and names <= families, names - families
    assert {name for name in families if name.startswith("relay_")} <= names  # and it charts every one


class _Pieces:
    """An upstream stream held in memory: `count` pieces, then a finish and usage."""

    def __init__(self, count: int) -> None:
        self.count, self.finish_reason, self.usage, self.complete = count, None, None, False

    def __iter__(self) -> Iterator[str]:
        for index in range(self.count):
            yield f"w{index} "
        self.finish_reason, self.usage, self.complete = "stop", {"prompt_tokens": 3, "completion_tokens": 9}, True

    def close(self) -> None:
        pass


def metrics_calls(pieces: int) -> int:
    """Python calls into the metrics' code (ours and prometheus_client's) while one stream of `pieces` pieces is
    produced and delivered piece by piece, as a slow reader gets it."""
    metrics = Metrics(["fake-model"])
    upstream = SimpleNamespace(open=lambda request: _Pieces(pieces))
    relay = Producer(ChatRequest("s", "fake-model", []), upstream, StreamBuffer("s", threading.Event),  # type: ignore[arg-type]
                  transport="socketio", metrics=metrics)
    events = [Chunk(f"w{index} ", index) for index in range(pieces)] + [Done("stop", pieces, None)]
    calls = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        name = frame.f_code.co_filename
        if event == "call" and ("prometheus_client" in name or "observability" in name or "first_chunk" in name):
            calls += 1

    sys.setprofile(profile)
    try:
        metrics.stream_started("socketio", "fake-model")
        relay.run()
        for _ in first_chunk_timed(events, relay.created, lambda s: metrics.first_chunk_delivered("socketio", s)):
            pass
    finally:
        sys.setprofile(None)
    return calls


def test_the_metrics_run_per_stream_never_per_chunk() -> None:
    """The same metrics code runs for a stream of 3 pieces and one of 3,000: none of it per piece or per chunk."""
    assert metrics_calls(3) == metrics_calls(3000) > 0


def test_the_protocol_lists_every_metric() -> None:
    """docs/protocol.md's table under `GET /metrics` names every relay_* metric the server has, and no other."""
    protocol = (ROOT / "docs" / "protocol.md").read_text()
    table = protocol.split("## `GET /metrics`", 1)[1].split("\n## ", 1)[0]
    listed = {re.sub(r"_total$", "", name) for name in re.findall(r"^\| `(relay_[a-z_]+)`", table, re.MULTILINE)}
    listed |= {re.sub(r"_total$", "", name) for name in re.findall(r"^\| `relay_[a-z_]+`, `(relay_[a-z_]+)`", table,
                                                                   re.MULTILINE)}
    families = {family.name for family in Metrics(["m"]).registry.collect() if family.name.startswith("relay_")}
    assert listed == families
