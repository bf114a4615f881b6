"""A reader's chunk is exactly pieces cursor+1..seq even when the producer appends while the reader takes them
(docs/protocol.md, "The cursor"). Under gevent and eventlet nothing runs between the reader's two looks at the
log, but with OS threads (the threading mode) the producer can: here it does, at the worst moment, every time."""

from __future__ import annotations

import threading

import pytest

from chat_relay.streams.events import Chunk
from chat_relay.streams.stream_buffer import StreamBuffer


class _AppendsWhileMeasured(list):
    """The log's list of pieces, with a producer that appends one more just after a reader has measured it."""

    def __init__(self, pieces: list[str], late: list[str]) -> None:
        super().__init__(pieces)
        self.late = late

    def __len__(self) -> int:
        size = super().__len__()
        if self.late:
            self.append(self.late.pop(0))  # the producer's thread runs here
        return size


@pytest.mark.parametrize("typed", [False, True], ids=["text-only", "typed"])
def test_a_chunk_holds_only_the_pieces_up_to_its_seq_when_the_producer_appends_meanwhile(typed: bool) -> None:
    log = StreamBuffer("s", threading.Event)
    for text in ("a", "b", "c"):
        log.append(text)
    log._typed = typed  # as after a reasoning or tool-call piece: the path that builds parts (parts.chunk_of)
    log._pieces = _AppendsWhileMeasured(["a", "b", "c"], ["d"])
    first = log.after(0)
    assert first == Chunk("bc", 2), "the text of pieces 1..2, not of a piece appended after the seq was taken"
    assert log.after(first.seq) == Chunk("d", 3), "the piece appended meanwhile comes next, once"

