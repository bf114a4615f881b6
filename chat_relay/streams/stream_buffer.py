"""One stream's buffer: the producer appends pieces and then one terminal entry; readers follow it by cursor.

The producer never waits for a reader. A reader keeps a cursor (the seq of the last piece it delivered)
and, each time it wakes, takes everything after it that is waiting, as one chunk. At low load that is one
piece, sent at once; when a reader is late (a busy CPU, a busy client socket), it is all the pieces that
arrived meanwhile, in one event. Nothing is held back on a timer.

Pieces are typed (parts.py): text as a plain str, other kinds as dicts, all numbered by one seq. Until a
stream has a piece that is not text, its chunks are built exactly as a text-only stream's always were.

This is the in-memory log. Its waits use the async mode's own events (engine.io's `create_event`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from .backlog import Backlog, text_bytes
from .events import Chunk, RelayEvent, Terminal
from .parts import Piece, chunk_bytes, chunk_of, piece_bytes, text_of


class Waitable(Protocol):
    """What engine.io's create_event() returns in every async mode."""

    def set(self) -> None: ...
    def clear(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...


class StreamBuffer:
    """The pieces of one stream, numbered by seq from 0, then its terminal event."""

    __slots__ = ("_new_event", "_pieces", "_typed", "_waiters", "backlog", "opened", "size", "stream_id", "terminal")

    def __init__(self, stream_id: str, new_event: Callable[[], Waitable], backlog: Backlog | None = None) -> None:
        self.stream_id = stream_id
        self._pieces: list[Piece] = []
        self._typed = False  # a piece that is not text was appended: chunks may need `parts`
        # UTF-8 bytes appended, which back-pressure compares with its readers' (chat_relay/streams/backlog.py)
        self.size = 0
        self.backlog = backlog  # None: readers are not waited for (a copy of a log, the fast tests)
        self.terminal: Terminal | None = None
        self.opened = False  # the upstream answered: from here on an HTTP response is 200 whatever follows
        self._waiters: set[Waitable] = set()
        self._new_event = new_event

    # The producer's side.

    def mark_opened(self) -> None:
        self.opened = True
        self._wake()

    def append(self, piece: Piece) -> None:
        self._pieces.append(piece)
        if type(piece) is str:
            self.size += text_bytes(piece)
        else:
            self._typed = True
            self.size += piece_bytes(piece)
        if self._waiters:
            self._wake()

    def end(self, terminal: Terminal) -> None:
        """The one terminal entry; a second is ignored, so whoever ends the stream first wins."""
        if self.terminal is None:
            self.terminal = terminal
            self._wake()

    # The readers' side.

    @property
    def last_seq(self) -> int:
        return len(self._pieces) - 1

    def after(self, cursor: int) -> Chunk | None:
        """Everything after `cursor`, as one chunk whose seq is the last piece's; None if nothing is waiting."""
        pieces = self._pieces
        last = len(pieces) - 1
        if last <= cursor:
            return None
        # Up to `last` only: with OS threads (the threading mode) the producer may append between the two looks.
        if self._typed:
            return chunk_of(pieces[cursor + 1:last + 1], last)
        return Chunk(pieces[last] if last == cursor + 1 else "".join(pieces[cursor + 1:last + 1]), last)  # type: ignore[arg-type]

    def new_event(self) -> Waitable:
        """An event for one reader's waits (each reader has its own: a shared one could be cleared under it)."""
        return self._new_event()

    def text_bytes(self) -> int:
        """The UTF-8 size of all the text appended; read once, at the stream's end, for its metrics."""
        return len(text_of(self._pieces).encode("utf-8", "surrogatepass"))

    def pieces_before(self, end: int) -> list[Piece]:
        return self._pieces[:end]

    def pieces_after(self, cursor: int) -> list[Piece]:
        """The pieces after `cursor`, one by one (for a copy of the log, which keeps the numbering)."""
        return self._pieces[cursor + 1:]

    def wait(self, ready: Callable[[], bool], event: Waitable, timeout: float | None = None) -> bool:
        """Block until `ready()` (checked again after every change), or `timeout`; returns ready()."""
        while not ready():
            event.clear()
            self._waiters.add(event)
            try:
                if not ready() and not event.wait(timeout):
                    return ready()
            finally:
                self._waiters.discard(event)
        return True

    def follow(self, cursor: int = -1, settle: Callable[[], bool] | None = None) -> Follower:
        """A reader from `cursor` on: see Follower."""
        return Follower(self, cursor, settle)

    def beyond(self, cursor: int) -> Callable[[], bool]:
        """Whether a reader at `cursor` has anything to take: a later piece, or the end."""
        return lambda: self.last_seq > cursor or self.terminal is not None

    def _wake(self) -> None:
        for event in tuple(self._waiters):  # a copy: a woken reader (an OS thread in tests) may leave meanwhile
            event.set()


class Follower:
    """One delivery's reading of a log: the chunks after its cursor, each holding all that was waiting, then the
    terminal event. `close()`, from another task, ends it at once (its client left): the stream goes on.

    `settle`, called after each wake and before the pieces are taken, lets a reader wait for its own transport
    to be ready (a busy websocket writer), so that what arrives meanwhile joins this chunk. It returns whether the
    transport has taken everything given to it; it may return False after a while of waiting (then it is called
    again). With a backlog (chat_relay/streams/backlog.py), a chunk counts as handed on once `settle` says so, or,
    without
    `settle`, once the transport asks for the next event (a WSGI server does after writing the last).
    """

    def __init__(self, stream_log: StreamBuffer, cursor: int = -1, settle: Callable[[], bool] | None = None) -> None:
        self.buffer = stream_log
        self.cursor = cursor
        self.closed = False
        self._settle = settle
        self._event = stream_log.new_event()
        # Bytes of the stream before the cursor: what a resumed reader has had already.
        self.position = sum(map(piece_bytes, stream_log.pieces_before(cursor + 1))) if cursor >= 0 else 0

    def close(self) -> None:
        self.closed = True
        self._event.set()

    def _ready(self) -> bool:
        return self.closed or self.buffer.last_seq > self.cursor or self.buffer.terminal is not None

    def __iter__(self) -> Iterator[RelayEvent]:
        stream_log, settle, backlog = self.buffer, self._settle, self.buffer.backlog
        if backlog is not None:
            backlog.join(self, self.position)
        try:
            while True:
                stream_log.wait(self._ready, self._event)
                if self.closed:
                    return
                if settle is not None:
                    settle()
                chunk = stream_log.after(self.cursor)
                if chunk is not None:
                    self.cursor = chunk.seq
                    yield chunk
                    if backlog is not None:
                        self._handed_on(chunk, backlog)
                elif stream_log.terminal is not None:
                    yield stream_log.terminal
                    return
        finally:
            if backlog is not None:
                backlog.leave(self)

    def _handed_on(self, chunk: Chunk, backlog: Backlog) -> None:
        """Wait until the transport has taken `chunk` (a reader that reads nothing waits here, and so does the
        producer, behind it), then count it as handed on."""
        settle = self._settle
        if settle is not None:
            while not settle() and not self.closed:
                pass
        self.position += text_bytes(chunk.text) if chunk.parts is None else chunk_bytes(chunk)
        backlog.handed(self, self.position)

