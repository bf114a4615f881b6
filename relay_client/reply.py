"""One reply as the caller reads it, whatever the transport: its chunks in order, then how it ended."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

from relay_client.errors import RelayConnectionError, RelayError
from relay_client.parts import (
    Part,
    ReasoningPart,
    RefusalPart,
    TextPart,
    ToolCall,
    ToolCallPart,
    ToolCallsBuilder,
    ToolErrorPart,
    ToolResultPart,
    parts_from,
)


@dataclass(frozen=True)
class Chunk:
    """Some of the reply; `seq` is the cursor: the index of the model's last piece in it. `text` is the text of its
    `parts` ("" when it holds only reasoning or tool calls, say)."""

    text: str
    seq: int
    parts: tuple[Part, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.parts and self.text:  # built from text alone: a text-only chunk, as the wire omits its parts
            object.__setattr__(self, "parts", (TextPart(self.text),))

    @classmethod
    def from_wire(cls, text: str, seq: int, parts: list[Mapping[str, Any]] | None) -> Chunk:
        """A chunk as every transport sends it: `text`, `seq`, and `parts` when it holds more than text."""
        return cls(text, seq, parts_from(text, parts))


@dataclass(frozen=True)
class Done:
    """How a reply ended without an error: `finish_reason` is the model's, or "cancelled" after a stop."""

    stream_id: str
    finish_reason: str
    chunks: int  # the model's pieces in the whole reply: the last seq + 1
    usage: dict[str, int] | None
    tool_calls: tuple[ToolCall, ...] = ()  # each call whole, in index order, when the model called tools

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Done:
        return cls(payload["stream_id"], payload["finish_reason"], payload["chunks"], payload.get("usage"),
                   tuple(payload.get("tool_calls") or ()))


class Source(Protocol):
    """What a transport provides for one stream."""

    stream_id: str
    resume_token: str | None

    def next_event(self, cursor: int) -> Chunk | Done:
        """The next chunk after `cursor`, or the end; raises a RelayError for the stream's error event."""

    def stop(self) -> None:
        """Ask the server to stop the stream; its end still comes through next_event."""

    def close(self) -> None:
        """Stop listening (without stopping the stream)."""


class Reply:
    """A reply being streamed. Iterate it for its text, or `parts()` for everything; `done` says how it ended.

    Use it as a context manager: leaving the block before the reply has ended stops it on the server, so that
    no tokens are spent on text nobody reads.
    """

    def __init__(self, source: Source, cursor: int = -1) -> None:
        self._source = source
        self.cursor = cursor  # the seq of the last chunk received: resume from here
        self.done: Done | None = None
        self.error: Exception | None = None
        self._stopping = False
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        self._tool_calls = ToolCallsBuilder()
        self.tool_results: list[ToolResultPart | ToolErrorPart] = []  # of the tools the server ran, in order

    @property
    def stream_id(self) -> str:
        return self._source.stream_id

    @property
    def resume_token(self) -> str | None:
        return self._source.resume_token

    @property
    def text(self) -> str:
        """The text received so far (all of it, once the reply has ended)."""
        return "".join(self._text)

    @property
    def reasoning(self) -> str:
        """The model's thinking received so far ("" from a model that shows none)."""
        return "".join(self._reasoning)

    @property
    def refusal(self) -> str:
        """The model's refusal received so far, if it refused."""
        return "".join(self._refusal)

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls the model made: done's, once the reply has ended; before that, as far as they came."""
        if self.done is not None and self.done.tool_calls:
            return list(self.done.tool_calls)
        return self._tool_calls.calls()

    @property
    def ended(self) -> bool:
        return self.done is not None or self.error is not None

    def chunks(self) -> Iterator[Chunk]:
        """Each chunk as it arrives, with its cursor. Raises the stream's error as its RelayError."""
        while not self.ended:
            try:
                event = self._source.next_event(self.cursor)
            except Exception as exc:
                self.error = exc
                self._source.close()
                raise
            if isinstance(event, Done):
                self.done = event
                self._source.close()
                return
            if event.seq <= self.cursor:
                self.error = RelayConnectionError(f"the server broke the protocol: chunk seq {event.seq} "
                                                  f"after {self.cursor}")
                self._source.close()
                raise self.error
            self.cursor = event.seq
            self._keep(event.parts)
            yield event

    def _keep(self, parts: tuple[Part, ...]) -> None:
        for part in parts:
            if isinstance(part, TextPart):
                self._text.append(part.text)
            elif isinstance(part, ReasoningPart):
                self._reasoning.append(part.text)
            elif isinstance(part, RefusalPart):
                self._refusal.append(part.text)
            elif isinstance(part, ToolCallPart):
                self._tool_calls.add(part)
            elif isinstance(part, (ToolResultPart, ToolErrorPart)):
                self.tool_results.append(part)

    def parts(self) -> Iterator[Part]:
        """Each part as it arrives, in order: TextPart, ReasoningPart, RefusalPart, ToolCallPart, ToolResultPart,
        ToolErrorPart (match on the class).
        Raises the stream's error as its RelayError."""
        for chunk in self.chunks():
            yield from chunk.parts

    def __iter__(self) -> Iterator[str]:
        """The text, as it arrives (a chunk with no text, only reasoning say, yields nothing)."""
        for chunk in self.chunks():
            if chunk.text:
                yield chunk.text

    def read(self) -> str:
        """Wait for the end and return the whole text (reasoning, refusal and tool_calls are there too)."""
        for _ in self.chunks():
            pass
        return self.text

    def stop(self) -> None:
        """Stop the reply; iterating on ends with `done.finish_reason == "cancelled"` (or the natural end).

        Safe to call on every chunk of a loop: the stop is sent once.
        """
        if not self.ended and not self._stopping:
            self._stopping = True
            self._source.stop()

    def close(self) -> None:
        """Stop the reply if it is still running, and stop listening."""
        if self.ended:
            return
        try:
            self.stop()
        except RelayError:
            pass  # best effort: a stream nobody reads is cancelled by the server after RESUME_GRACE anyway
        finally:
            self.error = RelayConnectionError("the reply was closed before its end")
            self._source.close()

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:  # never the resume token: it lets anyone read and stop this reply
        return f"<Reply {self.stream_id} cursor={self.cursor} done={self.done}>"
