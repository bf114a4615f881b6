"""Read an OpenAI chat-completion stream from its raw bytes: server-sent events in, text pieces out.

The openai client would build a typed `ChatCompletionChunk` for every event; at full load that was
about 45% of the relay's CPU (construct_type alone 28%, SSE decoding 11%). The relay needs three
fields, so it reads them straight from the JSON with orjson. The client still sends the request, with
its auth, base URL, retries and error mapping (chat_relay/streams/upstream.py).

What the client did on the way, this does too: `data: [DONE]` ends the stream, an event whose JSON is
an object with an `error` raises, and malformed JSON is an error. Events without data (comments,
keep-alives) are skipped. Lines may end in `\\n`, `\\r\\n` or `\\r`, as the SSE specification allows.
"""

from __future__ import annotations

import orjson

from ..errors import ErrorCode, RelayError
from .context_overflow import context_overflow_error, is_context_overflow

MALFORMED = "The model sent a malformed response."


class ChunkParser:
    """Feed it the body as it arrives; each call returns the text pieces of the events it completed.

    The finish reason and the token usage are kept as they pass (`finish_reason`, `usage`), and `done`
    turns true at `data: [DONE]`, after which nothing more is read.
    """

    __slots__ = ("_tail", "done", "finish_reason", "usage")

    def __init__(self) -> None:
        self._tail = b""  # an event not yet complete
        self.done = False
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None

    def feed(self, data: bytes) -> list[str]:
        if self.done:
            return []
        buffer = self._tail + data if self._tail else data
        if b"\r" in buffer:
            # A final \r may be the first half of a \r\n that the next read completes: keep it as it is.
            keep = buffer.endswith(b"\r")
            body = buffer[:-1] if keep else buffer
            buffer = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if keep else b"")
        *events, self._tail = buffer.split(b"\n\n")
        pieces: list[str] = []
        for event in events:
            payload = _data(event)
            if payload is None:
                continue
            if payload.startswith(b"[DONE]"):
                self.done = True
                self._tail = b""
                break
            text = self._chunk(payload)
            if text:
                pieces.append(text)
        return pieces

    def end(self) -> list[str]:
        """The body has ended: a final lone \r was a line end after all. An event cut off without its
        blank line is dropped, as the SSE specification says."""
        if self._tail.endswith(b"\r") and not self.done:
            tail, self._tail = self._tail, b""
            return self.feed(tail[:-1] + b"\n")
        return []

    def _chunk(self, payload: bytes) -> str | None:
        """One event's JSON: its text, after noting its finish reason and usage."""
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED) from None
        if not isinstance(chunk, dict):
            raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
        if chunk.get("error"):
            raise stream_error(chunk["error"])
        usage = chunk.get("usage")
        if usage:
            self.usage = _usage(usage)
        choices = chunk.get("choices")
        if not choices:
            return None
        choice = choices[0] if isinstance(choices, list) else None
        if not isinstance(choice, dict):
            raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
        finish = choice.get("finish_reason")
        delta = choice.get("delta") or {}
        text = delta.get("content") if isinstance(delta, dict) else None
        if not isinstance(finish, str | None) or not isinstance(text, str | None):
            raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
        if finish:
            self.finish_reason = finish
        return text


def _data(event: bytes) -> bytes | None:
    """The data of one event (its `data:` lines joined by newlines), or None when it has none."""
    if event.startswith(b"data: ") and b"\n" not in event:  # the usual one-line event, quickly
        return event[6:]
    lines = [line[5:] for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[1:] if line.startswith(b" ") else line for line in lines)


def _usage(usage: object) -> dict[str, int] | None:
    if not isinstance(usage, dict):
        raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
    counts = {key: usage.get(key) for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
    if not all(isinstance(value, int) for value in counts.values()):
        raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
    return counts  # type: ignore[return-value]


def stream_error(error: object) -> RelayError:
    """An error the upstream sent inside the stream, as our code; never with the upstream's own words."""
    if is_context_overflow(error):  # the local model reports it this way, its status being already sent
        return context_overflow_error()
    return RelayError(ErrorCode.UPSTREAM_ERROR, "The model's server failed to answer.")
