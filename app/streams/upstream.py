"""The only place that calls the OpenAI API: open a streamed chat completion, read its deltas, close it.

Imports nothing from Flask, so it can be reused and tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit, urlunsplit

import openai
from openai import OpenAI, Stream, Timeout, omit
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from ..config import Settings
from ..errors import ErrorCode, RelayError
from .context_overflow import context_overflow_error, is_context_overflow
from .schemas import ChatRequest

# A local server (Ollama, llama.cpp) needs no key, but the client insists on one.
_NO_KEY = "not-needed"


@dataclass(frozen=True)
class Delta:
    """What one upstream chunk adds: text, and at the end the finish reason and token usage."""

    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, int] | None = None


class UpstreamStream:
    """An open streamed completion; iterate it for deltas, close it to drop the upstream connection."""

    def __init__(self, stream: Stream[ChatCompletionChunk]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[Delta]:
        try:
            for chunk in self._stream:
                delta = _delta(chunk)
                if delta is not None:
                    yield delta
        except openai.APIError as err:
            raise _relay_error(err) from None
        except ValueError:  # malformed JSON or a chunk that does not fit the schema
            raise RelayError(ErrorCode.UPSTREAM_ERROR, "The model sent a malformed response.") from None

    def close(self) -> None:
        self._stream.close()


class Upstream:
    """A configured OpenAI client; one per process, so connections are pooled."""

    def __init__(self, settings: Settings) -> None:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else _NO_KEY
        self._client = OpenAI(
            api_key=key,
            base_url=settings.openai_base_url or None,
            timeout=Timeout(settings.upstream_read_timeout, connect=settings.upstream_connect_timeout),
            max_retries=settings.upstream_max_retries,
        )

    def open(self, request: ChatRequest) -> UpstreamStream:
        """Start the completion; failures before the first chunk are retried by the client, then raised."""
        try:
            stream = self._client.chat.completions.create(
                model=request.model,
                messages=cast(list[ChatCompletionMessageParam], request.messages),  # validated role/content dicts
                stream=True,
                stream_options={"include_usage": True},
                temperature=omit if request.temperature is None else request.temperature,
                max_tokens=omit if request.max_tokens is None else request.max_tokens,
            )
        except openai.APIError as err:
            raise _relay_error(err) from None
        return UpstreamStream(stream)

    def models(self) -> list[str]:
        """The model ids the upstream lists; the launcher calls it once to check the base URL and the key."""
        try:
            return [model.id for model in self._client.models.list()]
        except openai.APIError as err:
            raise _relay_error(err) from None


def _delta(chunk: ChatCompletionChunk) -> Delta | None:
    """Keep what matters of a chunk; None for chunks that carry nothing (role-only, empty content)."""
    usage = None
    if chunk.usage is not None:
        usage = chunk.usage.model_dump(include={"prompt_tokens", "completion_tokens", "total_tokens"})
    choice = chunk.choices[0] if chunk.choices else None
    text = (choice.delta.content or "") if choice else ""
    finish_reason = choice.finish_reason if choice else None
    if not text and finish_reason is None and usage is None:
        return None
    return Delta(text=text, finish_reason=finish_reason, usage=usage)


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


def _retry_after(err: openai.RateLimitError) -> float | None:
    try:
        return max(0.0, float(err.response.headers.get("retry-after", "")))
    except ValueError:
        return None


def shown_url(url: str) -> str:
    """A base URL as it may be printed or logged: without the `user:password@` it can carry."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
