"""The relay's Prometheus metrics, made with the official `prometheus_client`, served by `GET /metrics`.

One registry per app (tests build many apps in one process). Counted per stream, never per chunk: a stream's
counts are added once, when it ends (the same place that writes its `stream_end` line, chat_relay/streams/producer.py),
so relaying a chunk runs no metrics code. What is open now (streams, connections, readiness) is read at scrape
time. docs/protocol.md lists every metric; deploy/grafana-dashboard.json charts them.

Every label is bounded: `transport` (socketio, http), `model` (one of ALLOWED_MODELS, else `other`), `cause`
(completed, stopped, client_gone, server_shutdown, or an error code), `code` (an error code), `tool` (a name the
team registered with `@relay.tool`, else `other`: the model may name anything), `outcome` (TOOL_OUTCOMES). Never a
stream id, a client, a prompt, a reply, a tool's arguments or result, a key or a token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    exposition,
)

from ..errors import ErrorCode

Transport = Literal["socketio", "http"]
OTHER = "other"  # a label value outside the known set: bounded whatever a caller passes
CANCEL_CAUSES = ("stopped", "client_gone", "server_shutdown")
CAUSES = frozenset(("completed", *CANCEL_CAUSES, *(code.value for code in ErrorCode)))

# What became of one call of a server-side tool (chat_relay/tools/runner.py says when each happens).
TOOL_OUTCOMES = frozenset(("ok", "error", "failed", "timeout", "too_large", "cancelled", "bad_arguments",
                           "unknown_tool", "not_run"))
TOOL_NEVER_RAN = frozenset(("bad_arguments", "unknown_tool", "not_run"))  # no run time to observe

# Seconds. A model's first token usually takes 0.2 to 3 s; the relay's own share is milliseconds.
FIRST_CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)  # TOOL_TIMEOUT: 10 s
DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)

# Counters get no `_created` series: they double the series and no dashboard here reads them.
prometheus_client.disable_created_metrics()


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """What one stream adds to the metrics when it ends."""

    transport: str
    model: str
    cause: str
    seconds: float  # from the producer's start to its terminal entry
    pieces: int  # the model's pieces relayed (done.chunks)
    text_bytes: int  # UTF-8 bytes of the reply text relayed
    usage: Mapping[str, object] | None  # the upstream's `usage`, if it sent one
    upstream_first_chunk: float | None  # seconds from the upstream request to its first piece; None without one
    upstream_error: ErrorCode | None  # the upstream failed the stream with this code (after any retries)


class Metrics:
    """Every metric, defined once; the app calls the methods below at a stream's start and end, on a refusal,
    and on an upstream retry."""

    def __init__(self, models: Iterable[str]) -> None:
        self.registry = registry = CollectorRegistry()
        self._models = frozenset(models)
        ProcessCollector(registry=registry)  # process_*: CPU, memory, open files
        PlatformCollector(registry=registry)  # python_info
        self._running = Gauge("relay_streams_running", "Streams being produced on this instance now.",
                              registry=registry)
        self._connections = Gauge("relay_socketio_connections",
                                  "Socket.IO connections open now, from the engine.io handshake to the close.",
                                  registry=registry)
        self._ready = Gauge("relay_ready", "1 while GET /readyz answers 200; 0 while draining or Redis is away.",
                            registry=registry)
        self._started = Counter("relay_streams_started", "Streams started.", ["transport", "model"],
                                registry=registry)
        self._ended = Counter("relay_streams_ended",
                              "Streams ended, by cause: completed, stopped, client_gone, server_shutdown, "
                              "or the error code.", ["transport", "model", "cause"], registry=registry)
        self._duration = Histogram("relay_stream_duration_seconds",
                                   "From a stream's start to its terminal event.", ["transport", "model"],
                                   buckets=DURATION_BUCKETS, registry=registry)
        self._upstream_first = Histogram("relay_upstream_first_chunk_seconds",
                                         "From the request to the upstream (retries included) to its first "
                                         "piece of text.", ["model"], buckets=FIRST_CHUNK_BUCKETS,
                                         registry=registry)
        self._client_first = Histogram("relay_client_first_chunk_seconds",
                                       "From a stream's start to its first chunk handed to the requesting "
                                       "client's connection.", ["transport"], buckets=FIRST_CHUNK_BUCKETS,
                                       registry=registry)
        self._pieces = Counter("relay_chunks_relayed", "The model's pieces relayed, of every kind (an event may carry "
                               "several).", ["transport", "model"], registry=registry)
        self._bytes = Counter("relay_bytes_relayed", "UTF-8 bytes of reply text relayed.", ["transport", "model"],
                              registry=registry)
        self._prompt_tokens = Counter("relay_prompt_tokens", "Prompt tokens, from the upstream's usage.", ["model"],
                                      registry=registry)
        self._completion_tokens = Counter("relay_completion_tokens", "Completion tokens, from the upstream's usage.",
                                          ["model"], registry=registry)
        self._refusals = Counter("relay_refusals",
                                 "Stream requests and Socket.IO connections this server refused itself, by code.",
                                 ["transport", "code"], registry=registry)
        self._upstream_errors = Counter("relay_upstream_errors",
                                        "Streams the upstream failed, by the code the client got (after retries).",
                                        ["code"], registry=registry)
        self._upstream_retries = Counter("relay_upstream_retries",
                                         "Upstream requests retried before their first chunk, by the code of the "
                                         "failure retried.", ["code"], registry=registry)
        self._tool_calls = Counter("relay_tool_calls", "Calls of the server's own tools (@relay.tool), by what "
                                   "became of each.", ["tool", "outcome"], registry=registry)
        self._tool_duration = Histogram("relay_tool_duration_seconds",
                                        "From a server-side tool's start to its result, error, timeout or stop.",
                                        ["tool"], buckets=TOOL_BUCKETS, registry=registry)

    def watch(self, running: Callable[[], int], connections: Callable[[], int], ready: Callable[[], bool]) -> None:
        """What is open now, read when scraped: nothing to update while the server works."""
        self._running.set_function(lambda: float(running()))
        self._connections.set_function(lambda: float(connections()))
        self._ready.set_function(lambda: 1.0 if ready() else 0.0)

    # Per stream.

    def stream_started(self, transport: str, model: str) -> None:
        self._started.labels(_transport(transport), self._model(model)).inc()

    def stream_ended(self, end: StreamEnd) -> None:
        transport, model = _transport(end.transport), self._model(end.model)
        self._ended.labels(transport, model, end.cause if end.cause in CAUSES else OTHER).inc()
        self._duration.labels(transport, model).observe(end.seconds)
        if end.pieces:
            self._pieces.labels(transport, model).inc(end.pieces)
            self._bytes.labels(transport, model).inc(end.text_bytes)
        if end.upstream_first_chunk is not None:
            self._upstream_first.labels(model).observe(end.upstream_first_chunk)
        if end.usage:
            for key, counter in (("prompt_tokens", self._prompt_tokens),
                                 ("completion_tokens", self._completion_tokens)):
                tokens = end.usage.get(key)
                if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0:
                    counter.labels(model).inc(tokens)
        if end.upstream_error is not None:
            self._upstream_errors.labels(end.upstream_error.value).inc()

    def first_chunk_delivered(self, transport: str, seconds: float) -> None:
        """Once per stream: its first chunk has been handed to the connection of the client that asked."""
        self._client_first.labels(_transport(transport)).observe(seconds)

    # Per refusal, per retry.

    def refused(self, transport: str, code: ErrorCode) -> None:
        self._refusals.labels(_transport(transport), code.value).inc()

    def upstream_retried(self, code: ErrorCode) -> None:
        self._upstream_retries.labels(code.value).inc()

    # Per call of a server-side tool.

    def tool_called(self, tool: str, outcome: str, seconds: float) -> None:
        """Once per call, whatever became of it. `tool` is a registered name or OTHER: the caller bounds it, as
        only it knows the registry."""
        outcome = outcome if outcome in TOOL_OUTCOMES else OTHER
        self._tool_calls.labels(tool, outcome).inc()
        if outcome not in TOOL_NEVER_RAN:
            self._tool_duration.labels(tool).observe(seconds)

    # The page.

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics in the format the scraper asks for (Prometheus text, or OpenMetrics), and its content type."""
        encoder, content_type = exposition.choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def _model(self, model: str) -> str:
        return model if model in self._models else OTHER


def _transport(transport: str) -> str:
    return transport if transport in ("socketio", "http") else OTHER
