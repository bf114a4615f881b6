"""What a stream delivers, whatever the transport: chunks, then exactly one Done or Failed.

A chunk carries one or more upstream pieces (text, reasoning, tool-call fragments, refusal: parts.py),
merged when more than one was waiting; its `seq` is the index of the last piece it holds, so `seq` names an
exact position in the stream however the events were batched (docs/protocol.md, "The cursor").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ErrorCode, RelayError


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk of text pieces only: all most replies ever send, so it stays two fields (each costs its build)."""

    text: str  # its text pieces joined ("" when it has none)
    seq: int  # the index of the last upstream piece it holds

    @property
    def parts(self) -> list[dict[str, Any]] | None:
        """None: the text says it all (PartsChunk has them)."""
        return None


@dataclass(frozen=True, slots=True)
class PartsChunk(Chunk):
    """A chunk that holds a piece that is not text: every piece, merged by kind (chat_relay/streams/parts.py)."""

    parts: list[dict[str, Any]]  # type: ignore[assignment]  # a field where Chunk has a property


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: str
    chunks: int  # upstream pieces relayed: the last chunk's seq + 1
    usage: dict[str, int] | None
    tool_calls: list[dict[str, Any]] | None = None  # each call whole, in index order, when the model called tools

    def payload(self, stream_id: str) -> dict[str, object]:
        """The terminal event's body, the same on every transport."""
        body: dict[str, object] = {"stream_id": stream_id, "finish_reason": self.finish_reason,
                                   "chunks": self.chunks, "usage": self.usage}
        if self.tool_calls:
            body["tool_calls"] = self.tool_calls
        return body


@dataclass(frozen=True, slots=True)
class Failed:
    code: ErrorCode
    message: str
    chunks: int
    retry_after: float | None = None  # the upstream's Retry-After, for rate_limited

    @classmethod
    def from_error(cls, err: RelayError, chunks: int) -> Failed:
        return cls(err.code, err.message, chunks, err.retry_after)

    def payload(self, stream_id: str) -> dict[str, object]:
        """The error event's body, the same on every transport."""
        return {"stream_id": stream_id, **RelayError(self.code, self.message, retry_after=self.retry_after).to_dict()}


Terminal = Done | Failed
RelayEvent = Chunk | Done | Failed
