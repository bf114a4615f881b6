"""What this instance is doing: the streams it produces, and the deliveries its clients are reading.

A stream and its delivery are apart: a client that disconnects ends its delivery, not the stream, which
another connection can then resume (docs/protocol.md, "Resuming a stream"). So a stop, a disconnect, a
limit or a shutdown each looks up exactly what it concerns:

- producers by their global key, and by client identity for the limits (chat_relay/access/admission.py);
- deliveries by owner (a Socket.IO sid, or one HTTP request) and the client's stream_id, with the number of
  local readers of each produced stream, which starts its grace period when it drops to none.

A stream counts against its client's limit until its producer has ended and its local readers have had it all: a
client that reads slowly (or not at all) cannot start more streams than the limit by leaving each one unread
(docs/security.md, "Slow readers").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from ..async_drivers import AsyncDriver
from ..errors import ErrorCode, RelayError
from .producer import Producer, StreamCancelled


class Closable(Protocol):
    def close(self) -> None: ...


@dataclass
class ActiveStream:
    """A stream produced on this instance, while its producer runs."""

    relay: Producer
    key: str  # unique across instances: names the stream in resume tokens and in the shared log
    client: str = ""  # the identity limits count against (chat_relay/access/admission.py)
    task: object | None = None  # the producer's green task (Producer.run), which a cancel interrupts
    readers: int = 0  # deliveries on this instance reading it now

    def cancel(self, driver: AsyncDriver, cause: str = "stopped", error: RelayError | None = None) -> None:
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
            driver.interrupt(self.task, StreamCancelled, still_wanted=lambda: not relay.finished)


@dataclass
class Delivery:
    """One owner's reading of one stream: its stream_id on that owner, the stream's key, and its reader."""

    stream_id: str
    key: str
    reader: Closable


class StreamRegistry:
    def __init__(self) -> None:
        self._producing: dict[str, ActiveStream] = {}
        self._draining: dict[str, ActiveStream] = {}  # ended, still being delivered here: still counted
        self._reserved = 0
        self._per_client: Counter[str] = Counter()
        self._deliveries: dict[str, dict[str, Delivery]] = {}

    # Streams produced here.

    def reserve(self, client: str) -> None:
        """Count a stream that admission let in and is about to start (chat_relay/access/admission.py)."""
        self._reserved += 1
        self._per_client[client] += 1

    def give_back(self, client: str) -> None:
        """Give back a reserved slot whose stream did not start."""
        self._reserved -= 1
        self._drop(client)

    def add(self, entry: ActiveStream, reserved: bool = False) -> ActiveStream:
        """Register a stream produced here; `reserved`: its slot was reserved by admission and now becomes it."""
        self._producing[entry.key] = entry
        if reserved:
            self._reserved -= 1
        else:
            self._per_client[entry.client] += 1
        return entry

    def get(self, key: str) -> ActiveStream | None:
        return self._producing.get(key)

    def remove(self, key: str) -> None:
        """Its producer has ended; it stops counting once no local reader is still delivering it."""
        entry = self._producing.pop(key, None)
        if entry is None:
            return
        if entry.readers > 0:
            self._draining[key] = entry
        else:
            self._drop(entry.client)

    def _drop(self, client: str) -> None:
        self._per_client[client] -= 1
        if self._per_client[client] <= 0:
            del self._per_client[client]

    def count(self, client: str) -> int:
        """Streams running for one client identity, across all its connections and requests."""
        return self._per_client[client]

    def all(self) -> list[ActiveStream]:
        return list(self._producing.values())

    def __len__(self) -> int:
        """Streams produced here, and slots reserved for streams about to start."""
        return len(self._producing) + self._reserved

    def busy(self) -> int:
        """Streams produced here and deliveries still sending: a drain is over when both are done, so that every
        cut stream's terminal event has gone out before the clients are disconnected."""
        return len(self._producing) + sum(len(deliveries) for deliveries in self._deliveries.values())

    # Deliveries.

    def check_free(self, owner: str, stream_id: str) -> None:
        """Refuse a stream_id this owner already reads: its events would be mixed with the running one's."""
        if stream_id in self._deliveries.get(owner, {}):
            raise RelayError(ErrorCode.INVALID_REQUEST, f"stream_id {stream_id!r} is already running.")

    def deliver(self, owner: str, stream_id: str, key: str, reader: Closable) -> Delivery:
        self.check_free(owner, stream_id)
        delivery = self._deliveries.setdefault(owner, {})[stream_id] = Delivery(stream_id, key, reader)
        entry = self._producing.get(key) or self._draining.get(key)
        if entry is not None:
            entry.readers += 1
        return delivery

    def delivery(self, owner: str, stream_id: str) -> Delivery | None:
        return self._deliveries.get(owner, {}).get(stream_id)

    def deliveries_of(self, owner: str) -> list[Delivery]:
        return list(self._deliveries.get(owner, {}).values())

    def undeliver(self, owner: str, stream_id: str) -> ActiveStream | None:
        """End a delivery; returns its stream when it is produced here and this was its last local reader."""
        deliveries = self._deliveries.get(owner)
        delivery = deliveries.pop(stream_id, None) if deliveries is not None else None
        if deliveries is not None and not deliveries:
            del self._deliveries[owner]
        if delivery is None:
            return None
        entry = self._producing.get(delivery.key)
        if entry is None:
            ended = self._draining.get(delivery.key)
            if ended is not None:
                ended.readers -= 1
                if ended.readers <= 0:  # the last reader here has had it all: the slot is free
                    del self._draining[delivery.key]
                    self._drop(ended.client)
            return None
        entry.readers -= 1
        return entry if entry.readers <= 0 else None
