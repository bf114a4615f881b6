"""What a stream delivers, whatever the transport: text chunks, then exactly one Done or Failed.

A chunk carries the text of one or more upstream pieces, merged when more than one was waiting; its
`seq` is the index of the last piece it holds, so `seq` names an exact position in the stream however
the events were batched (docs/protocol.md, "The cursor").
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ErrorCode, RelayError


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    seq: int  # the index of the last upstream piece in `text`


@dataclass(frozen=True, slots=True)
class Done:
    finish_reason: str
    chunks: int  # upstream pieces relayed: the last chunk's seq + 1
    usage: dict[str, int] | None

    def payload(self, stream_id: str) -> dict[str, object]:
        """The terminal event's body, the same on every transport."""
        return {"stream_id": stream_id, "finish_reason": self.finish_reason, "chunks": self.chunks, "usage": self.usage}


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
