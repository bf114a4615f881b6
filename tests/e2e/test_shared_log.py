"""Stream logs shared through a real redis-server (chat_relay/streams/shared_buffer.py): mirrored, read from any cursor,
ended exactly once, and a dead producer reported, never hidden. Threads stand in for the green tasks."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from chat_relay.errors import ErrorCode, RelayError
from chat_relay.streams.events import Chunk, Done, Failed
from chat_relay.streams.redis_store import encode_terminal, lease_key, log_key
from chat_relay.streams.shared_buffer import SharedBuffers
from chat_relay.streams.stream_buffer import StreamBuffer
from tests.conftest import free_port
from tests.redis_server import RedisServer, require_redis

LEASE_MS = 600  # short, so that a dead producer is seen within a second or two


@pytest.fixture
def shared(redis_server: RedisServer) -> SharedBuffers:
    return SharedBuffers(redis_server.url, ttl=30, sleep=time.sleep, lease_ms=LEASE_MS)


def produced(shared: SharedBuffers, pieces: list[str],
             terminal: Done | Failed | None = None) -> tuple[str, StreamBuffer]:
    """A stream whose producer appended `pieces` (and `terminal`), mirrored to Redis by a mirror thread."""
    key = uuid.uuid4().hex
    stream_log = StreamBuffer("s", threading.Event)
    mirror = threading.Thread(target=shared.mirror, args=(stream_log, key, lambda: True), daemon=True)
    mirror.start()
    wait_until(lambda: shared.redis.exists(log_key(key)))  # the mirror's first write: the log's start
    for piece in pieces:
        stream_log.append(piece)
    if terminal is not None:
        stream_log.end(terminal)
        mirror.join(10)
        assert not mirror.is_alive()
    return key, stream_log


def wait_until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)  # another thread (or Redis) is doing the work: poll its outcome


def end_race(shared: SharedBuffers, key: str) -> list[int]:
    """The producer's terminal and a reader's `interrupted`, released together from a barrier."""
    barrier = threading.Barrier(2)
    results: list[int] = []

    def producer_end() -> None:
        barrier.wait()
        results.append(shared.store.append(key, "end", "1-1", encode_terminal(Done("stop", 1, None)), 1))

    def reader_interrupt() -> None:
        barrier.wait()
        results.append(shared.store.write(keys=[log_key(key), lease_key(key)], args=[
            "interrupt", "", encode_terminal(Failed(ErrorCode.INTERRUPTED, "gone", 1)), 30_000, LEASE_MS, 1000, 0]))

    threads = [threading.Thread(target=producer_end), threading.Thread(target=reader_interrupt)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def read_all(events: Iterator) -> tuple[list[Chunk], object]:
    chunks, terminal = [], None
    for event in events:
        if isinstance(event, Chunk):
            chunks.append(event)
        else:
            terminal = event
    return chunks, terminal


def test_a_finished_stream_replays_from_any_cursor(shared: SharedBuffers) -> None:
    pieces = [f"p{i} " for i in range(50)]
    key, _ = produced(shared, pieces, Done("stop", 50, None))
    for after in (-1, 0, 17, 48, 49):
        chunks, terminal = read_all(shared.follow(key, after))
        assert "".join(c.text for c in chunks) == "".join(pieces[after + 1:])
        assert all(c.seq > after for c in chunks) and (not chunks or chunks[-1].seq == 49)
        assert terminal == Done("stop", 50, None)


def test_a_live_stream_is_followed_without_gap_or_repeat(shared: SharedBuffers) -> None:
    key, stream_log = produced(shared, ["a ", "b "])
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(shared.follow(key, 0)), daemon=True)
    reader.start()
    for piece in ["c ", "d ", "e "]:
        stream_log.append(piece)
    stream_log.end(Done("length", 5, {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}))
    reader.join(10)
    chunks = [e for e in got if isinstance(e, Chunk)]
    assert "".join(c.text for c in chunks) == "b c d e "
    assert [c.seq for c in chunks] == sorted({c.seq for c in chunks}) and chunks[-1].seq == 4
    assert got[-1] == Done("length", 5, {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6})


def test_a_dead_producer_ends_with_interrupted_after_its_text(shared: SharedBuffers) -> None:
    """The producer's lease lapses (its instance was killed): the reader writes the one terminal itself."""
    key = uuid.uuid4().hex
    stream_log = StreamBuffer("s", threading.Event)
    stream_log.append("kept ")
    stream_log.append("text ")
    assert shared.store.append(key, "p", "2-0", b'["kept ","text "]', 0) == 1  # what its mirror wrote before the kill
    chunks, terminal = read_all(shared.follow(key, -1))
    assert "".join(c.text for c in chunks) == "kept text "
    assert isinstance(terminal, Failed) and terminal.code is ErrorCode.INTERRUPTED and terminal.chunks == 2
    # A second reader sees the same end, not a second one.
    assert read_all(shared.follow(key, 1)) == ([], terminal)


def test_the_mirror_tells_when_the_log_is_in_redis(shared: SharedBuffers) -> None:
    """What the resume token waits for (StreamManager.wait_logged): told once the log exists, so a resume on
    any instance finds it; told as well when Redis is away, so that no client waits on it."""
    key, stream_log = uuid.uuid4().hex, StreamBuffer("s", threading.Event)
    seen: list[bool] = []
    told = threading.Event()

    def on_logged() -> None:
        seen.append(bool(shared.redis.exists(log_key(key))))
        told.set()

    threading.Thread(target=shared.mirror, args=(stream_log, key, lambda: True, on_logged), daemon=True).start()
    assert told.wait(10) and seen[0] is True
    stream_log.end(Done("stop", 0, None))

    away = SharedBuffers(f"redis://127.0.0.1:{free_port()}/0", ttl=30, sleep=time.sleep, lease_ms=LEASE_MS)
    gone = threading.Event()
    stream_log = StreamBuffer("s", threading.Event)
    threading.Thread(target=away.mirror, args=(stream_log, key, lambda: False, gone.set), daemon=True).start()
    assert gone.wait(10)


def test_a_producer_dead_before_its_first_piece_ends_with_interrupted(shared: SharedBuffers) -> None:
    """Killed after its mirror wrote the log's start and before any piece: the reader writes `interrupted` (its
    entry must come after the start's id, 0-1), on every cursor, and only once."""
    key = uuid.uuid4().hex
    assert shared.store.append(key, "start", "0-1", b"", 0) == 1  # all its mirror wrote before the kill
    chunks, terminal = read_all(shared.follow(key, -1))
    assert chunks == []
    assert isinstance(terminal, Failed) and terminal.code is ErrorCode.INTERRUPTED and terminal.chunks == 0
    assert read_all(shared.follow(key, -1)) == ([], terminal)


def test_a_reader_ahead_of_what_was_mirrored_gets_interrupted(shared: SharedBuffers) -> None:
    """Pieces reach clients before the mirror copies them: a client that had 5 pieces resumes elsewhere from its
    cursor after the producer died having mirrored 2. Its `interrupted` must reach it though the entry lands before
    its cursor in the log, with its own count of pieces, and a reader from an earlier cursor sees the same end."""
    key = uuid.uuid4().hex
    assert shared.store.append(key, "p", "2-0", b'["kept ","text "]', 0) == 1  # all the mirror wrote
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(shared.follow(key, 4)), daemon=True)
    reader.start()
    reader.join(15)
    assert not reader.is_alive(), "no terminal: the reader waits past the log's end"
    assert len(got) == 1 and isinstance(got[0], Failed) and got[0].code is ErrorCode.INTERRUPTED, got
    assert got[0].chunks == 5  # what that client had, not what Redis kept
    chunks, terminal = read_all(shared.follow(key, -1))
    assert "".join(c.text for c in chunks) == "kept text " and isinstance(terminal, Failed)
    assert terminal.code is ErrorCode.INTERRUPTED


def test_exactly_one_terminal_whoever_writes_first(shared: SharedBuffers) -> None:
    for _ in range(5):
        key = uuid.uuid4().hex
        assert shared.store.append(key, "p", "1-0", b'["x"]', 0) == 1
        shared.redis.delete(lease_key(key))
        results = end_race(shared, key)
        entries = shared.redis.xrange(log_key(key))
        assert sum(1 for _, fields in entries if b"end" in fields) == 1
        assert sorted(results) == [0, 1]


def test_a_zombie_write_is_refused_by_redis(shared: SharedBuffers) -> None:
    key = uuid.uuid4().hex
    assert shared.store.append(key, "p", "3-0", b'["a","b","c"]', 0) == 1
    assert shared.store.append(key, "p", "2-0", b'["stale"]', 0) == 0  # out of order
    assert shared.store.append(key, "p", "3-0", b'["c"]', 0) == 0  # a duplicate
    assert shared.store.append(key, "p", "5-0", b'["x","y"]', 4) == -1  # a gap: piece 3 is missing
    assert [fields for _, fields in shared.redis.xrange(log_key(key))] == [{b"p": b'["a","b","c"]'}]
    assert shared.store.append(key, "p", "5-0", b'["d","e"]', 3) == 1  # the next in line


def test_an_unknown_or_expired_stream(shared: SharedBuffers) -> None:
    with pytest.raises(RelayError) as caught:
        list(shared.follow(uuid.uuid4().hex, -1))
    assert caught.value.code is ErrorCode.STREAM_EXPIRED


def test_redis_away_then_back(tmp_path) -> None:
    """While Redis is down: resuming elsewhere gets resume_unavailable, the local log is untouched, and the
    mirror catches up once Redis is back, with nothing lost or repeated."""
    require_redis()
    server = RedisServer(free_port(), tmp_path / "redis.log").start()
    try:
        shared = SharedBuffers(server.url, ttl=30, sleep=time.sleep, lease_ms=5_000)
        key, stream_log = produced(shared, ["before "])
        wait_until(lambda: len(shared.redis.xrange(log_key(key))) == 2)  # the start, and "before"
        reading = shared.reader(key, 0)  # a delivery on another instance, from just after "before"
        server.stop()
        stream_log.append("during ")
        with pytest.raises(RelayError) as caught:
            shared.reader(key, -1)
        assert caught.value.code is ErrorCode.RESUME_UNAVAILABLE and caught.value.retry_after
        ended = list(reading)  # what its delivery sends: not a cut connection, but its one terminal event
        assert len(ended) == 1 and isinstance(ended[0], Failed) and ended[0].code is ErrorCode.RESUME_UNAVAILABLE
        assert ended[0].chunks == 1 and ended[0].retry_after
        assert stream_log.after(-1) == Chunk("before during ", 1)  # local readers never needed Redis
        server.start()  # empty: this server keeps nothing on disk
        stream_log.append("after ")
        stream_log.end(Done("stop", 3, None))
        wait_until(lambda: shared.redis.exists(log_key(key)))  # the mirror retries every second
        chunks, terminal = read_all(shared.follow(key, -1))
        assert "".join(c.text for c in chunks) == "before during after " and terminal == Done("stop", 3, None)
    finally:
        server.stop()


def test_the_log_expires_ttl_after_its_last_write(redis_server: RedisServer) -> None:
    shared = SharedBuffers(redis_server.url, ttl=1, sleep=time.sleep, lease_ms=LEASE_MS)
    key, _ = produced(shared, ["x"], Done("stop", 1, None))
    assert 0 < shared.redis.pttl(log_key(key)) <= 1000
    assert not shared.redis.exists(lease_key(key))  # the producer's end releases its lease
    with pytest.raises(redis.ResponseError):
        shared.redis.xadd(log_key(key), {"p": "[]"}, id="1-0")  # and the ids stay Redis's to police


def test_writes_that_queue_meanwhile_share_one_round_trip(shared: SharedBuffers, redis_server: RedisServer) -> None:
    """While one mirror write is out (held by Redis: CLIENT PAUSE), the writes of ten other streams queue, then all
    go in the next round trip together, each with its own reply: one round trip per batch, not per write."""
    batcher, admin = shared.store.batched, redis.Redis.from_url(redis_server.url)
    results: list[int] = []

    def start(key: str) -> None:
        results.append(shared.store.append(key, "start", "0-1", b"", 0))

    admin.client_pause(2000, all=False)  # write commands wait in Redis until unpaused
    first = threading.Thread(target=start, args=(uuid.uuid4().hex,))
    first.start()
    wait_until(lambda: batcher.round_trips == 1 and batcher.queued == 0)  # the first write is out, held
    others = [threading.Thread(target=start, args=(uuid.uuid4().hex,)) for _ in range(10)]
    for thread in others:
        thread.start()
    wait_until(lambda: batcher.queued == 10)
    admin.client_unpause()
    for thread in [first, *others]:
        thread.join(10)
    assert results == [1] * 11
    assert batcher.round_trips == 2
