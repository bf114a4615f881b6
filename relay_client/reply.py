"""One reply as the caller reads it, whatever the transport: its chunks in order, then how it ended."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from relay_client.errors import RelayConnectionError, RelayError


@dataclass(frozen=True)
class Chunk:
    """Some text of the reply; `seq` is the cursor: the index of the model's last piece in `text`."""

    text: str
    seq: int


@dataclass(frozen=True)
class Done:
    """How a reply ended without an error: `finish_reason` is the model's, or "cancelled" after a stop."""

    stream_id: str
    finish_reason: str
    chunks: int  # the model's pieces in the whole reply: the last seq + 1
    usage: dict[str, int] | None

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Done:
        return cls(payload["stream_id"], payload["finish_reason"], payload["chunks"], payload.get("usage"))


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
    """A reply being streamed. Iterate it for its text; `done` says how it ended.

    Use it as a context manager: leaving the block before the reply has ended stops it on the server, so that
    no tokens are spent on text nobody reads.
    """

    def __init__(self, source: Source, cursor: int = -1) -> None:
        self._source = source
        self.cursor = cursor  # the seq of the last chunk received: resume from here
        self.done: Done | None = None
        self.error: Exception | None = None
        self._stopping = False
        self._parts: list[str] = []

    @property
    def stream_id(self) -> str:
        return self._source.stream_id

    @property
    def resume_token(self) -> str | None:
        return self._source.resume_token

    @property
    def text(self) -> str:
        """The text received so far (all of it, once the reply has ended)."""
        return "".join(self._parts)

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
            if event.seq <= self.cursor or not event.text:
                self.error = RelayConnectionError(f"the server broke the protocol: chunk seq {event.seq} "
                                                  f"after {self.cursor}")
                self._source.close()
                raise self.error
            self.cursor = event.seq
            self._parts.append(event.text)
            yield event

    def __iter__(self) -> Iterator[str]:
        for chunk in self.chunks():
            yield chunk.text

    def read(self) -> str:
        """Wait for the end and return the whole text."""
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
