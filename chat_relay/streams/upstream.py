"""The only place that calls the OpenAI API: open a streamed chat completion, read its text as it comes, close it.

Imports nothing from Flask, so it can be reused and tested on its own.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2
import openai
from openai import DefaultHttpxClient, OpenAI, Timeout

from ..config import Settings
from ..errors import ErrorCode, RelayError
from .context_overflow import context_overflow_error, is_context_overflow
from .parts import Piece
from .request_validation import ChatRequest
from .upstream_sse import ChunkParser

if TYPE_CHECKING:
    from ..observability.metrics import Metrics

# A local server (Ollama, llama.cpp) needs no key, but the client insists on one.
_NO_KEY = "not-needed"
# Connections beyond MAX_STREAMS_TOTAL: streams that have ended may still be closing theirs.
_CLOSING = 16
_KEPT_IDLE = 32  # idle connections kept for the next streams (to OpenAI, each saves a TLS handshake)


class UpstreamStream:
    """An open streamed completion: iterate it for its pieces, then read `finish_reason`, `usage` and `tool_calls`.

    The body is read raw and parsed by chat_relay/streams/upstream_sse.py; `close()` drops the upstream connection at
    once,
    unless the stream was read to its `[DONE]`: then the rest of the body is read first, so the connection
    goes back to the client's pool and the next stream skips a connect (and, to OpenAI, a TLS handshake).
    """

    def __init__(self, response: httpx2.Response, client: OpenAI, reasoning_tags: bool = False,
                 index_base: int = 0) -> None:
        self._response = response
        self._client = client  # its connection pool must outlive the stream (a dropped client closes it)
        # The raw body needs no decoder unless the upstream compressed it (streams seldom are): fewer layers per chunk.
        encoded = response.headers.get("content-encoding", "identity").lower() not in ("", "identity")
        self._body = response.iter_bytes() if encoded else response.iter_raw()
        self._parser = ChunkParser(reasoning_tags, index_base)

    @property
    def finish_reason(self) -> str | None:
        return self._parser.finish_reason

    @property
    def usage(self) -> dict[str, int] | None:
        return self._parser.usage

    @property
    def tool_calls(self) -> list[dict[str, object]] | None:
        return self._parser.tool_calls

    @property
    def index_end(self) -> int:
        """The stream index after this reply's last tool call (upstream_sse.py, ChunkParser.index_end)."""
        return self._parser.index_end

    @property
    def complete(self) -> bool:
        """Read to its `[DONE]`."""
        return self._parser.done

    def __iter__(self) -> Iterator[Piece]:
        parser = self._parser
        try:
            for data in self._body:
                yield from parser.feed(data)
                if parser.done:
                    return
            yield from parser.end()
        except httpx2.TimeoutException:
            raise _relay_error(openai.APITimeoutError(request=self._response.request)) from None
        except (httpx2.RequestError, ssl.SSLError, anyio.EndOfStream):  # what the openai client maps to these too
            raise _relay_error(openai.APIConnectionError(request=self._response.request)) from None

    def close(self) -> None:
        if self._parser.done:
            with contextlib.suppress(Exception):  # whatever the rest is, the reply is complete
                for _ in self._body:  # normally just the body's last, empty chunk, already received
                    pass
        self._response.close()


class _RetriesCounted(DefaultHttpxClient):
    """The openai client's HTTP client, counting its retries (relay_upstream_retries_total) by the code of the
    failure retried.

    The openai client retries a failed request in its own loop, before the first chunk, each attempt one `send`
    in the stream's own task, numbered in its `x-stainless-retry-count` header. Each attempt's failure is kept
    for that task (a thread-local is a green-thread-local once monkey-patched), and the retry that follows it
    is counted with that failure's code. Once per attempt, never per chunk: the body is read later.
    """

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics
        self._failure = threading.local()

    def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        if request.headers.get("x-stainless-retry-count", "0") != "0":
            self._metrics.upstream_retried(getattr(self._failure, "code", ErrorCode.UPSTREAM_ERROR))
        try:
            response = super().send(request, **kwargs)
        except httpx2.TimeoutException:
            self._failure.code = ErrorCode.UPSTREAM_TIMEOUT
            raise
        except Exception:
            self._failure.code = ErrorCode.UPSTREAM_UNAVAILABLE
            raise
        if response.status_code >= 400:
            self._failure.code = _status_error(response.status_code)
        return response


class Upstream:
    """A configured OpenAI client; one per process, so connections are pooled."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else _NO_KEY
        self._reasoning_tags = settings.reasoning_tags
        # A connection for every stream that may run (MAX_STREAMS_TOTAL), so none waits for one; but few kept idle:
        # the pool looks at every idle connection's socket each time a request starts or ends (httpcore), which
        # with hundreds kept turned the end of a busy second into seconds of CPU.
        limits = httpx2.Limits(max_connections=settings.max_streams_total + _CLOSING,
                               max_keepalive_connections=_KEPT_IDLE)
        self._client = OpenAI(
            api_key=key,
            base_url=settings.openai_base_url or None,
            timeout=Timeout(settings.upstream_read_timeout, connect=settings.upstream_connect_timeout),
            max_retries=settings.upstream_max_retries,
            http_client=DefaultHttpxClient(limits=limits) if metrics is None
            else _RetriesCounted(metrics, limits=limits),
        )

    def open(self, request: ChatRequest, index_base: int = 0) -> UpstreamStream:
        """Start the completion; failures before the first chunk are retried by the client, then raised.

        Sent with the client's own request method (its documented way to send a request it has no typed
        method for), which keeps its auth, base URL, retries and errors, and returns the raw response.
        The typed `chat.completions.create` would add about a millisecond per stream, most of it walking
        the message types to transform a body that is already in the wire's shape (validated by request_validation.py).
        `index_base`: the first tool-call index of this reply in its stream (0 but after a server tool's round).
        """
        body: dict[str, object] = {"model": request.model, "messages": request.messages, "stream": True,
                                   "stream_options": {"include_usage": True}}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        body.update(request.options)  # tools, stop, seed...: under the Chat Completions API's own names, as sent
        try:
            response = self._client.post("/chat/completions", cast_to=httpx2.Response, body=body, stream=True)
        except openai.APIError as err:
            raise _relay_error(err) from None
        return UpstreamStream(response, self._client, self._reasoning_tags, index_base)

    def models(self) -> list[str]:
        """The model ids the upstream lists; the launcher calls it once to check the base URL and the key."""
        try:
            return [model.id for model in self._client.models.list()]
        except openai.APIError as err:
            raise _relay_error(err) from None


def _relay_error(err: openai.APIError) -> RelayError:
    """Translate the client's exceptions into our codes; never pass on the upstream's own words."""
    if is_context_overflow(err.body):  # a 400 before the stream, or an error event inside it
        return context_overflow_error()
    if isinstance(err, openai.APITimeoutError):
        return RelayError(ErrorCode.UPSTREAM_TIMEOUT, "The model took too long to respond.")
    if isinstance(err, openai.APIConnectionError):
        return RelayError(
            ErrorCode.UPSTREAM_UNAVAILABLE, "The model's server could not be reached, or the connection dropped."
        )
    if isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return RelayError(ErrorCode.UPSTREAM_AUTH, "The server's credentials for the model were refused.")
    if isinstance(err, openai.RateLimitError):
        message = "The model is rate limited; try again shortly."
        return RelayError(ErrorCode.RATE_LIMITED, message, retry_after=_retry_after(err))
    if isinstance(err, openai.NotFoundError):
        return RelayError(ErrorCode.UPSTREAM_ERROR, "The model is not available on the upstream server.")
    if isinstance(err, (openai.BadRequestError, openai.UnprocessableEntityError)):
        message = "The model rejected the request (is the conversation too long for it?)."
        return RelayError(ErrorCode.INVALID_REQUEST, message)
    return RelayError(ErrorCode.UPSTREAM_ERROR, "The model's server failed to answer.")


def _status_error(status: int) -> ErrorCode:
    """The code `_relay_error` gives a failed response of this status."""
    if status in (401, 403):
        return ErrorCode.UPSTREAM_AUTH
    if status == 429:
        return ErrorCode.RATE_LIMITED
    if status in (400, 422):
        return ErrorCode.INVALID_REQUEST
    return ErrorCode.UPSTREAM_ERROR


def _retry_after(err: openai.RateLimitError) -> float | None:
    try:
        return max(0.0, float(err.response.headers.get("retry-after", "")))
    except ValueError:
        return None


def shown_url(url: str) -> str:
    """A base URL as it may be printed or logged: without the `user:password@` it can carry."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
