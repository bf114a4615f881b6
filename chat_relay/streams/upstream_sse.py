"""Read an OpenAI chat-completion stream from its raw bytes: server-sent events in, typed pieces out (parts.py).

The openai client would build a typed `ChatCompletionChunk` for every event; at full load that was
about 45% of the relay's CPU (construct_type alone 28%, SSE decoding 11%). The relay needs a few
fields, so it reads them straight from the JSON with orjson (tests/test_parts_fast.py checks that it reads
them as the typed chunk has them).

Within one delta the pieces go out in this order: reasoning (`reasoning_content`, or else `reasoning`: servers
name it either way, some both), text (`content`; with REASONING_TAGS, a leading `<think>` block is reasoning:
think_tags.py), refusal, then tool-call fragments in the array's order. Empty strings are no pieces.

The openai client still sends the request, with its auth, base URL, retries and error mapping
(chat_relay/streams/upstream.py).

What the client did on the way, this does too: `data: [DONE]` ends the stream, an event whose JSON is
an object with an `error` raises, and malformed JSON is an error. Events without data (comments,
keep-alives) are skipped. Lines may end in `\\n`, `\\r\\n` or `\\r`, as the SSE specification allows.
"""

from __future__ import annotations

import orjson

from ..errors import ErrorCode, RelayError
from .context_overflow import context_overflow_error, is_context_overflow
from .parts import REASONING, REFUSAL, TOOL_CALL, Part, Piece
from .think_tags import ThinkTags

MALFORMED = "The model sent a malformed response."


class ChunkParser:
    """Feed it the body as it arrives; each call returns the pieces of the events it completed.

    The finish reason, the token usage and the tool calls whole are kept as they pass (`finish_reason`,
    `usage`, `tool_calls`), and `done` turns true at `data: [DONE]`, after which nothing more is read.
    """

    __slots__ = ("_base", "_calls", "_tags", "_tail", "done", "finish_reason", "usage")

    def __init__(self, reasoning_tags: bool = False, index_base: int = 0) -> None:
        self._tail = b""  # an event not yet complete
        self.done = False
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self._tags = ThinkTags() if reasoning_tags else None
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments so far]
        # Added to each call's index in its pieces: a stream's later request (server-side tools, chat_relay/tools/)
        # numbers its calls after the earlier ones', so that an index names one call in the whole stream.
        self._base = index_base

    @property
    def tool_calls(self) -> list[dict[str, object]] | None:
        """The calls the model made, each whole, in index order; None when it made none."""
        if not self._calls:
            return None
        return [{"id": self._calls[index][0], "type": "function",
                 "function": {"name": self._calls[index][1], "arguments": self._calls[index][2]}}
                for index in sorted(self._calls)]

    @property
    def index_end(self) -> int:
        """The index after the last call's in this reply's pieces: where the stream's next reply numbers from."""
        return self._base + max(self._calls) + 1 if self._calls else self._base

    def feed(self, data: bytes) -> list[Piece]:
        if self.done:
            return []
        buffer = self._tail + data if self._tail else data
        if b"\r" in buffer:
            # A final \r may be the first half of a \r\n that the next read completes: keep it as it is.
            keep = buffer.endswith(b"\r")
            body = buffer[:-1] if keep else buffer
            buffer = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + (b"\r" if keep else b"")
        *events, self._tail = buffer.split(b"\n\n")
        pieces: list[Piece] = []
        for event in events:
            payload = _data(event)
            if payload is None:
                continue
            if payload.startswith(b"[DONE]"):
                self.done = True
                self._tail = b""
                if self._tags is not None:
                    pieces += self._tags.flush()
                break
            self._chunk(payload, pieces)
        return pieces

    def end(self) -> list[Piece]:
        """The body has ended: a final lone \r was a line end after all. An event cut off without its
        blank line is dropped, as the SSE specification says."""
        if self._tail.endswith(b"\r") and not self.done:
            tail, self._tail = self._tail, b""
            return self.feed(tail[:-1] + b"\n")
        return []

    def _chunk(self, payload: bytes, pieces: list[Piece]) -> None:
        """One event's JSON: its pieces added to `pieces`, after noting its finish reason and usage."""
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
            return
        choice = choices[0] if isinstance(choices, list) else None
        if not isinstance(choice, dict):
            raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
        finish = choice.get("finish_reason")
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            delta = {}
        text = delta.get("content")
        if not isinstance(finish, str | None) or not isinstance(text, str | None):
            raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
        if len(delta) == 1 and text:  # the content alone, as most deltas are: text as cheap as before parts
            if self._tags is None:
                pieces.append(text)
            else:
                pieces += self._tags.feed(text)
        elif delta:
            self._kinds(delta, text, pieces)
        if finish:
            self.finish_reason = finish
            if self._tags is not None:
                pieces += self._tags.flush()

    def _kinds(self, delta: dict[str, object], text: str | None, pieces: list[Piece]) -> None:
        """A delta with more than text, in the order of docs/protocol.md: reasoning, text, refusal, tool calls."""
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        refusal = delta.get("refusal")
        if not isinstance(reasoning, str | None) or not isinstance(refusal, str | None):
            raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
        if reasoning:
            pieces.append({"type": REASONING, "text": reasoning})
        if text:
            if self._tags is None:
                pieces.append(text)
            else:
                pieces += self._tags.feed(text)
        if refusal:
            pieces.append({"type": REFUSAL, "text": refusal})
        calls = delta.get("tool_calls")
        if calls:
            self._tool_calls(calls, pieces)

    def _tool_calls(self, calls: object, pieces: list[Piece]) -> None:
        """A delta's tool-call fragments: a piece for each that brings something new (an id or name first seen,
        or arguments), and the calls whole kept for the done event."""
        if not isinstance(calls, list):
            raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
        for position, call in enumerate(calls):
            if not isinstance(call, dict):
                raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
            function = call.get("function")
            # Some OpenAI-compatible servers (Gemini's, for one) leave `index` out: the call's place in the array.
            index = call.get("index")
            if index is None:
                index = position
            if function is None:
                function = {}
            if type(index) is not int or not isinstance(function, dict):
                raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
            call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments")
            if not isinstance(call_id, str | None) or not isinstance(name, str | None) \
                    or not isinstance(arguments, str | None):
                raise RelayError(ErrorCode.UPSTREAM_ERROR, MALFORMED)
            known = self._calls.get(index)
            if known is None:
                known = self._calls[index] = ["", "", ""]
            piece: Part = {"type": TOOL_CALL, "index": index + self._base}
            if call_id and not known[0]:  # some servers repeat the id and name in every fragment: once is news
                known[0] = piece["id"] = call_id
            if name and not known[1]:
                known[1] = piece["name"] = name
            if arguments:
                known[2] += arguments
            if arguments or len(piece) > 2:
                piece["arguments"] = arguments or ""
                pieces.append(piece)


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
    # The details the upstream reports (non-null), flattened: reasoning_tokens and cached_tokens.
    for details, key in (("completion_tokens_details", "reasoning_tokens"), ("prompt_tokens_details", "cached_tokens")):
        found = usage.get(details)
        value = found.get(key) if isinstance(found, dict) else None
        if type(value) is int:
            counts[key] = value
    return counts  # type: ignore[return-value]


def stream_error(error: object) -> RelayError:
    """An error the upstream sent inside the stream, as our code; never with the upstream's own words."""
    if is_context_overflow(error):  # the local model reports it this way, its status being already sent
        return context_overflow_error()
    return RelayError(ErrorCode.UPSTREAM_ERROR, "The model's server failed to answer.")
