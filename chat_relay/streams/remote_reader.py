"""Reading a stream's buffer from Redis, on any instance: a resume where the stream is not produced here.

A reader follows the Redis Stream with `XREAD BLOCK` from its cursor's id (never `$`), so there is no gap
between what was written before it came and what comes after; each read takes every entry waiting as one
chunk. While it reads it keeps its presence key alive, so that the producing instance does not cancel a
stream whose only reader is elsewhere (`has_remote_reader`); after a silent block it checks the producer's lease
and, with the producer dead, ends the stream with `interrupted` itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import orjson
import redis

from ..errors import ErrorCode, RelayError
from .events import Chunk, Failed, RelayEvent, Terminal
from .parts import Piece, chunk_of
from .redis_store import (
    BLOCK_MS,
    EXPIRED,
    READER_MS,
    RETRY_S,
    UNAVAILABLE,
    RedisStore,
    decode_terminal,
    log_key,
    reader_key,
)


def remote_reader(store: RedisStore, stream_key: str, after: int) -> RemoteFollower:
    """A delivery's reader of the shared buffer (raises stream_expired or resume_unavailable at once)."""
    try:
        exists = store.blocking.exists(log_key(stream_key))
    except redis.RedisError:
        raise RelayError(ErrorCode.RESUME_UNAVAILABLE, UNAVAILABLE, retry_after=RETRY_S) from None
    if not exists:
        raise RelayError(ErrorCode.STREAM_EXPIRED, EXPIRED)
    return RemoteFollower(store, stream_key, after)


def has_remote_reader(store: RedisStore, stream_key: str) -> bool:
    """Whether a reader on another instance is following the stream (it refreshes its key every block)."""
    try:
        return bool(store.redis.exists(reader_key(stream_key)))
    except redis.RedisError:
        return False


def follow(store: RedisStore, stream_key: str, after: int,
           closed: Callable[[], bool] = lambda: False) -> Iterator[RelayEvent]:
    """The chunks after piece `after`, each holding every entry that was waiting, then the terminal."""
    key = log_key(stream_key)
    last_id = f"{after + 1}-0" if after >= 0 else "0-1"  # past the "start" entry
    try:
        if not store.blocking.exists(key):
            raise RelayError(ErrorCode.STREAM_EXPIRED, EXPIRED)
        while not closed():
            store.redis.set(reader_key(stream_key), "1", px=READER_MS)
            reply: Any = store.blocking.xread({key: last_id}, count=1000, block=BLOCK_MS)
            if not reply:
                if not store.blocking.exists(key):
                    raise RelayError(ErrorCode.STREAM_EXPIRED, EXPIRED)
                # Nothing new for a whole block: is its producer alive? If not, end it here.
                store.end_if_producer_died(stream_key, after + 1)
                behind = _end_behind(store, key, last_id)
                if behind is not None:
                    if isinstance(behind, Failed):  # this client had more pieces than the log kept: its own count
                        behind = replace(behind, chunks=max(behind.chunks, after + 1))
                    yield behind
                    return
                continue
            waiting: list[Piece] = []
            terminal = None
            for entry_id, fields in reply[0][1]:
                last_id = entry_id.decode()
                if b"p" in fields:
                    pieces = orjson.loads(fields[b"p"])
                    end = int(last_id.split("-")[0]) - 1
                    first = end - len(pieces) + 1
                    waiting += pieces[max(0, after + 1 - first):]
                    after = max(after, end)
                elif b"end" in fields:
                    terminal = decode_terminal(fields[b"end"])
                    break  # (the "start" entry carries nothing)
            if waiting:
                yield chunk_of(waiting, after)
            if terminal is not None:
                yield terminal
                return
    except redis.RedisError:
        raise RelayError(ErrorCode.RESUME_UNAVAILABLE, UNAVAILABLE, retry_after=RETRY_S) from None
    finally:
        with contextlib.suppress(redis.RedisError):
            store.redis.delete(reader_key(stream_key))


def _end_behind(store: RedisStore, key: str, last_id: str) -> Terminal | None:
    """The log's terminal when it stands at or before `last_id`, where XREAD after it never looks: the producer died
    before its mirror had copied the pieces this client already had, so the `interrupted` entry went in behind
    the client's cursor."""
    top: Any = store.blocking.xrevrange(key, count=1)
    if not top or b"end" not in top[0][1]:
        return None
    if _entry_id(top[0][0].decode()) > _entry_id(last_id):
        return None  # ahead: XREAD reads it next, after any pieces before it
    return decode_terminal(top[0][1][b"end"])


def _entry_id(entry_id: str) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split("-")
    return int(milliseconds), int(sequence)


class RemoteFollower:
    """A delivery's reading of a stream produced on another instance; `close()` ends it within BLOCK_MS."""

    def __init__(self, store: RedisStore, stream_key: str, after: int) -> None:
        self._store, self._key, self.cursor = store, stream_key, after
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def __iter__(self) -> Iterator[RelayEvent]:
        try:
            for event in follow(self._store, self._key, self.cursor, lambda: self.closed):
                if isinstance(event, Chunk):
                    self.cursor = event.seq
                yield event
        except RelayError as err:  # Redis went away mid-read: the delivery still ends with one terminal event
            yield Failed.from_error(err, self.cursor + 1)
