"""Back-pressure for slow readers: how far a stream's slowest reader is behind its producer, and the producer's
wait for it (MAX_BUFFERED_BYTES, STALLED_READER_TIMEOUT; docs/security.md, "Slow readers").

Without it, a client that starts a long reply and reads nothing makes the relay pull the whole reply from the
upstream into memory. Here each reader reports how many bytes of the stream it has handed to its transport (a
websocket writer has taken them, a WSGI server has written them), and the producer, once it holds more than
MAX_BUFFERED_BYTES beyond the slowest reader, stops reading the upstream until that reader catches up: the
upstream's own socket then fills, and TCP carries the pause back to the model server. A reader that makes no
progress for STALLED_READER_TIMEOUT while it is behind ends the stream (`stalled_reader`).

A stream with no reader here (detached, within RESUME_GRACE) is measured from the furthest any reader got, so it
too holds at most MAX_BUFFERED_BYTES that nobody has read; it never stalls (the grace ends it). One whose readers
are on other instances (they follow the shared log in Redis) is not paused.

Counted per chunk by readers and per MAX_BUFFERED_BYTES by the producer: a reader that keeps up costs the
producer one comparison per piece.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

WAIT_SLICE = 1.0  # seconds: how often a waiting producer looks again at cancels and readers elsewhere


def text_bytes(text: str) -> int:
    """UTF-8 size of `text`, without encoding it when it is ASCII (most pieces; `isascii` is a flag lookup)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


class Backlog:
    """One stream's readers' positions, in bytes of its text handed on, and the producer's wait for room."""

    __slots__ = ("_changes", "_event", "_handed", "_waiting", "limit", "mark", "stall_after")

    def __init__(self, limit: int, stall_after: float, new_event: Callable[[], Any]) -> None:
        self.limit = limit  # MAX_BUFFERED_BYTES
        self.stall_after = stall_after  # STALLED_READER_TIMEOUT
        self._handed: dict[object, int] = {}  # reader -> bytes of the stream it has handed to its transport
        self.mark = 0  # the furthest any reader got: what a stream without readers is measured from
        self._changes = 0  # readers that came or went: a new reader restarts the stall clock
        self._event = new_event()
        self._waiting = False  # the producer waits: only then do readers wake it

    # The readers' side (chat_relay/streams/stream_buffer.py, Follower).

    def join(self, reader: object, position: int) -> None:
        self._handed[reader] = position
        self._changes += 1
        self._wake()

    def handed(self, reader: object, position: int) -> None:
        """`reader` has handed the stream's first `position` bytes to its transport."""
        self._handed[reader] = position
        if position > self.mark:
            self.mark = position
        if self._waiting:
            self._event.set()

    def leave(self, reader: object) -> None:
        if self._handed.pop(reader, None) is not None:
            self._changes += 1
            self._wake()

    # The producer's side (chat_relay/streams/producer.py).

    def room(self) -> int:
        """The stream's size up to which the producer may go on without waiting."""
        return self._low() + self.limit

    def wait_for_room(self, size: int, cancelled: Callable[[], bool],
                      read_elsewhere: Callable[[], bool] | None = None) -> int | None:
        """Block while the producer, at `size` bytes, holds more than the limit beyond its slowest reader; return
        the new room, or None when a reader made no progress for `stall_after` seconds (the stream must end)."""
        low, changes, since = self._low(), self._changes, time.monotonic()
        while size > low + self.limit and not cancelled():
            if not self._handed and read_elsewhere is not None and read_elsewhere():
                return size + self.limit  # its readers follow the shared log: they pace nothing here
            wait = WAIT_SLICE
            if self._handed:
                left = since + self.stall_after - time.monotonic()
                if left <= 0:
                    return None
                wait = min(wait, left)
            self._event.clear()
            self._waiting = True
            try:
                self._event.wait(wait)
            finally:
                self._waiting = False
            now_low = self._low()
            if now_low > low or self._changes != changes:  # progress, or another reader: the clock restarts
                low, changes, since = now_low, self._changes, time.monotonic()
        return low + self.limit

    def _low(self) -> int:
        return min(self._handed.values()) if self._handed else self.mark

    def _wake(self) -> None:
        if self._waiting:
            self._event.set()
