"""Back-pressure's arithmetic (chat_relay/streams/backlog.py) and a log's readers reporting to it, with OS threads and
no
server: the producer waits while its slowest reader is more than the limit behind, and only then."""

from __future__ import annotations

import threading

from chat_relay.streams.backlog import Backlog, text_bytes
from chat_relay.streams.events import Chunk, Done
from chat_relay.streams.stream_buffer import StreamBuffer

NEVER = lambda: False  # noqa: E731  # a producer that is never cancelled


def test_sizes_are_utf8_bytes() -> None:
    assert text_bytes("abc") == 3
    assert text_bytes("é€😀") == 2 + 3 + 4


def test_a_reader_within_the_limit_never_makes_the_producer_wait() -> None:
    backlog = Backlog(100, 5.0, threading.Event)
    reader = object()
    backlog.join(reader, 0)
    assert backlog.room() == 100
    backlog.handed(reader, 60)
    assert backlog.wait_for_room(160, NEVER) == 160  # exactly at the limit: no wait


def test_the_producer_waits_for_the_slowest_reader() -> None:
    backlog = Backlog(100, 30.0, threading.Event)
    fast, slow = object(), object()
    backlog.join(fast, 0)
    backlog.join(slow, 0)
    backlog.handed(fast, 500)
    rooms: list[int | None] = []
    producer = threading.Thread(target=lambda: rooms.append(backlog.wait_for_room(150, NEVER)))
    producer.start()
    producer.join(0.2)
    assert producer.is_alive()  # the slow reader, at 0, holds it
    backlog.handed(slow, 60)
    producer.join(5)
    assert rooms == [160]


def test_a_reader_that_takes_nothing_for_the_stall_time_stalls_the_stream() -> None:
    backlog = Backlog(100, 0.2, threading.Event)
    backlog.join(object(), 0)
    assert backlog.wait_for_room(500, NEVER) is None


def test_without_readers_it_waits_past_the_furthest_any_reader_got_and_never_stalls() -> None:
    backlog = Backlog(100, 0.1, threading.Event)
    reader = object()
    backlog.join(reader, 0)
    backlog.handed(reader, 40)
    backlog.leave(reader)
    assert backlog.room() == 140
    cancelled = threading.Event()
    threading.Timer(0.5, cancelled.set).start()  # longer than the stall time: still only a cancel ends the wait
    assert backlog.wait_for_room(500, cancelled.is_set) == 140


def test_readers_on_other_instances_lift_the_wait_of_a_stream_without_readers_here() -> None:
    backlog = Backlog(100, 30.0, threading.Event)
    assert backlog.wait_for_room(500, NEVER, read_elsewhere=lambda: True) == 600


def test_a_follower_reports_what_it_has_handed_on() -> None:
    """Without `settle` (HTTP), a chunk counts as handed on when the transport asks for the next event."""
    log = StreamBuffer("s", threading.Event, Backlog(10, 30.0, threading.Event))
    log.append("héllo")
    log.append(" world")
    reader = log.follow()
    events = iter(reader)
    assert next(events) == Chunk("héllo world", 1)
    assert log.backlog is not None and log.backlog.room() == 10  # taken, not yet written
    log.end(Done("stop", 2, None))
    assert isinstance(next(events), Done)
    assert log.backlog.room() == 12 + 10  # "héllo world" is 12 bytes
    resumed = log.follow(0)  # a resume after piece 0 has had its 6 bytes
    assert resumed.position == 6
