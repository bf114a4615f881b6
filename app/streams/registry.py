"""The streams running now, by owner, so a stop or a disconnect finds and ends exactly that client's streams."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..errors import ErrorCode, RelayError
from ..green import interrupt
from .relay import Relay, StreamCancelled


@dataclass
class ActiveStream:
    relay: Relay
    task: object | None = None  # the producer's green task (Relay.run), which a cancel interrupts
    client: str = ""  # the identity limits count against (app/access/limits.py)

    def cancel(self, async_mode: str, cause: str = "stopped", error: RelayError | None = None) -> None:
        """End the stream now, even if its task is blocked waiting for the upstream.

        `cause` goes to the stream_end log line; with `error` the stream ends with that error event
        instead of `done` with finish_reason cancelled.
        """
        relay = self.relay
        if relay.cancelled or relay.finished:
            return
        relay.cancel(cause, error)
        # The producer task runs only relay code, so wherever it waits (the upstream's headers or bytes, its
        # pause between pieces) the exception lands in the relay, which then closes the upstream.
        if relay.started and self.task is not None:
            interrupt(self.task, StreamCancelled, async_mode, still_wanted=lambda: not relay.finished)


class StreamRegistry:
    """Streams keyed by (owner, stream_id): an owner is a Socket.IO sid or one HTTP request."""

    def __init__(self) -> None:
        self._by_owner: dict[str, dict[str, ActiveStream]] = {}
        self._per_client: Counter[str] = Counter()

    def check_free(self, owner: str, stream_id: str) -> None:
        """Refuse a stream_id this owner already runs: its events would be mixed with the running one's."""
        if stream_id in self._by_owner.get(owner, {}):
            raise RelayError(ErrorCode.INVALID_REQUEST, f"stream_id {stream_id!r} is already running.")

    def add(self, owner: str, relay: Relay, client: str = "") -> ActiveStream:
        self.check_free(owner, relay.stream_id)
        streams = self._by_owner.setdefault(owner, {})
        streams[relay.stream_id] = ActiveStream(relay, client=client)
        self._per_client[client] += 1
        return streams[relay.stream_id]

    def count(self, client: str) -> int:
        """Streams running for one client identity, across all its connections and requests."""
        return self._per_client[client]

    def all(self) -> list[ActiveStream]:
        return [entry for streams in self._by_owner.values() for entry in streams.values()]

    def get(self, owner: str, stream_id: str) -> ActiveStream | None:
        return self._by_owner.get(owner, {}).get(stream_id)

    def owned_by(self, owner: str) -> list[ActiveStream]:
        return list(self._by_owner.get(owner, {}).values())

    def remove(self, owner: str, stream_id: str) -> None:
        streams = self._by_owner.get(owner)
        if streams is not None:
            entry = streams.pop(stream_id, None)
            if entry is not None:
                self._per_client[entry.client] -= 1
                if self._per_client[entry.client] <= 0:
                    del self._per_client[entry.client]
            if not streams:
                del self._by_owner[owner]

    def __len__(self) -> int:
        return sum(len(streams) for streams in self._by_owner.values())
