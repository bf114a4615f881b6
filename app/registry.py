"""The streams running now, by owner, so a stop or a disconnect finds and ends exactly that client's streams."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ErrorCode, RelayError
from .relay import Relay, StreamCancelled


@dataclass
class ActiveStream:
    relay: Relay
    task: object | None = None  # the background task that runs it, once started

    def cancel(self, async_mode: str) -> None:
        """End the stream as cancelled now, even if its task is blocked waiting for the upstream."""
        relay = self.relay
        if relay.cancelled or relay.finished:
            return
        relay.cancel()
        if relay.started and self.task is not None:
            _interrupt(self.task, async_mode)


class StreamRegistry:
    """Streams keyed by (owner, stream_id): an owner is a Socket.IO sid or one HTTP request."""

    def __init__(self) -> None:
        self._by_owner: dict[str, dict[str, ActiveStream]] = {}

    def add(self, owner: str, relay: Relay) -> ActiveStream:
        streams = self._by_owner.setdefault(owner, {})
        if relay.stream_id in streams:
            raise RelayError(ErrorCode.INVALID_REQUEST, f"stream_id {relay.stream_id!r} is already running.")
        streams[relay.stream_id] = ActiveStream(relay)
        return streams[relay.stream_id]

    def get(self, owner: str, stream_id: str) -> ActiveStream | None:
        return self._by_owner.get(owner, {}).get(stream_id)

    def owned_by(self, owner: str) -> list[ActiveStream]:
        return list(self._by_owner.get(owner, {}).values())

    def remove(self, owner: str, stream_id: str) -> None:
        streams = self._by_owner.get(owner)
        if streams is not None:
            streams.pop(stream_id, None)
            if not streams:
                del self._by_owner[owner]

    def __len__(self) -> int:
        return sum(len(streams) for streams in self._by_owner.values())


def _interrupt(task: object, async_mode: str) -> None:
    """Raise StreamCancelled in a green task where it waits; its `finally` then closes the upstream.

    Closing the upstream socket from here is not enough: under eventlet the reader never wakes, and
    a request still waiting for response headers has no stream to close yet. OS threads (the
    threading mode, used by fast tests) cannot be interrupted; they see the flag after the next chunk.
    """
    if async_mode == "gevent":
        task.kill(StreamCancelled, block=False)  # type: ignore[attr-defined]  # a gevent Greenlet
    elif async_mode == "eventlet":
        task.g.kill(StreamCancelled)  # type: ignore[attr-defined]  # engineio wraps the GreenThread
