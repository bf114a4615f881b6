"""The mirror: on the producing instance, a task per stream that copies its buffer into Redis (redis_store.py),
renewing the producer's lease, until the terminal is there. It never blocks the stream itself."""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
import redis

from .redis_store import RETRY_S, RedisStore, encode_terminal
from .stream_buffer import StreamBuffer

log = logging.getLogger(__name__)


def mirror(store: RedisStore, stream_log: StreamBuffer, stream_key: str, still_wanted: Callable[[], bool],
           sleep: Callable[[float], None], on_logged: Callable[[], None] = lambda: None) -> None:
    """Copy the buffer into Redis until its terminal is there.

    `still_wanted()` false means the producer was told the stream is over elsewhere (an interrupted
    terminal won the race): nothing more is written. `on_logged()` is called once the log's start is in Redis,
    or its write failed (Redis away): the stream's resume token is handed out only then, or after REDIS_TIMEOUT
    (manager.StreamManager.wait_logged).
    """
    cursor, wrote_end, warned, started = -1, False, False, False
    event = stream_log.new_event()
    while not wrote_end:
        if started:
            stream_log.wait(stream_log.beyond(cursor), event, timeout=store.lease_ms / 3000)
        try:
            if not started:
                started = bool(store.append(stream_key, "start", "0-1", b"", 0))
                on_logged()
            pieces = stream_log.pieces_after(cursor)
            terminal = stream_log.terminal
            if pieces or terminal is None:  # pieces to add, or the lease to renew
                last = cursor + len(pieces)
                written = store.append(stream_key, "p", f"{last + 1}-0", orjson.dumps(pieces), cursor + 1) \
                    if pieces else store.renew_lease(stream_key)
                if written == -1:  # Redis lost the start of this log: write it all again, from piece 0
                    cursor = -1
                    continue
                if not written:
                    return  # the log already ends: a reader declared this producer dead
                cursor = last
            if terminal is not None and cursor == stream_log.last_seq:
                if store.append(stream_key, "end", f"{cursor + 1}-1", encode_terminal(terminal), cursor + 1) == -1:
                    cursor = -1
                    continue
                wrote_end = True
            if warned:
                log.info("shared store reachable again: stream %s mirrored", stream_log.stream_id)
                warned = False
        except redis.RedisError as err:
            on_logged()
            if not warned:
                log.warning("shared store unreachable (%s): stream %s keeps streaming here; resuming it "
                            "elsewhere waits until the store is back", type(err).__name__, stream_log.stream_id)
                warned = True
            if not still_wanted() and stream_log.terminal is None:
                return
            sleep(RETRY_S)
