"""Stream buffers shared through Redis (REDIS_URL): a stream can be read, and resumed, on any instance.

SharedBuffers is the one object the stream manager holds; each of its jobs is a module of its own beside it:
redis_store.py (the connections, keys, the write script, leases), shared_mirror.py (the producing instance's
copy), remote_reader.py (reading, and a reader's presence), stop_channel.py (stops between instances).
Readiness pings Redis on its own connection (lifecycle/readiness.py); the resume tokens' shared secret is
streams/resume_tokens.py's.

Each stream's log is a Redis Stream, `relay:log:<key>`:

- A *mirror* task on the producing instance follows the stream's in-memory log (chat_relay/streams/stream_buffer.py) and
  appends everything waiting as one entry (the writes of all the instance's mirrors go out pipelined
  together: chat_relay/streams/redis_batch.py), `p` = the pieces as JSON (typed, as parts.py has them), with the
  explicit id `<last seq + 1>-0`. Redis itself refuses an entry whose id is not above the last one, so a duplicate or
  out-of-order write (a zombie producer) cannot land. The terminal event is the entry `end` with the id
  `<pieces>-1`, written by a script that refuses it when the log already ends: exactly one terminal, whoever
  writes it. Every write re-arms the key's expiry in the same call: RESUME_TTL after the end, and while the
  stream runs, RESUME_TTL plus two leases after the last write, so that a dead producer's log outlives its
  lease.
- The producer holds a lease, `relay:lease:<key>`, renewed by its mirror. A reader that finds the lease gone
  and no terminal writes the terminal itself, the error `interrupted`: the producer died (`kill -9`), and the
  text it kept is all there will be.
- Readers on other instances follow the log with `XREAD BLOCK` from their cursor's id (never `$`), so there
  is no gap between what was written before they came and what comes after. Each read takes every entry
  waiting: one chunk.

Local readers never touch Redis: they follow the in-memory log, so a stream keeps streaming to its own
clients while Redis is away, and its mirror catches up when Redis is back. Only resuming on another instance
needs Redis, and says so (`resume_unavailable`) when it cannot be reached.

redis-py's timeouts are set knowingly: commands time out after a few seconds, but a blocking `XREAD` needs a
socket timeout longer than its block, so blocking reads have their own connection pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from . import shared_mirror, stop_channel
from .events import RelayEvent
from .redis_store import LEASE_MS, RedisStore
from .remote_reader import RemoteFollower, follow, has_remote_reader, remote_reader
from .stream_buffer import StreamBuffer, Waitable


class SharedBuffers:
    """One per app with REDIS_URL: mirrors this instance's buffers into Redis, reads any instance's back, and passes
    stops between instances."""

    def __init__(self, url: str, ttl: float, sleep: Callable[[float], None], lease_ms: int = LEASE_MS,
                 new_event: Callable[[], Waitable] = threading.Event,
                 spawn: Callable[..., Any] = lambda task: threading.Thread(target=task, daemon=True).start()) -> None:
        """`new_event` and `spawn` are the async mode's (the app passes its driver's); threads by default."""
        self.store = RedisStore(url, ttl, lease_ms, new_event, spawn)
        self.redis = self.store.redis
        self._sleep = sleep

    # The producing instance.

    def mirror(self, stream_log: StreamBuffer, stream_key: str, still_wanted: Callable[[], bool],
               on_logged: Callable[[], None] = lambda: None) -> None:
        """The mirror task (shared_mirror.py)."""
        shared_mirror.mirror(self.store, stream_log, stream_key, still_wanted, self._sleep, on_logged)

    def has_remote_reader(self, stream_key: str) -> bool:
        return has_remote_reader(self.store, stream_key)

    def listen(self, on_stop: Callable[[str], None]) -> None:
        """This instance's control task (stop_channel.py)."""
        stop_channel.listen(self.store.url, on_stop, self._sleep)

    # Any instance.

    def request_stop(self, stream_key: str) -> bool:
        return stop_channel.request_stop(self.store, stream_key)

    def reader(self, stream_key: str, after: int) -> RemoteFollower:
        return remote_reader(self.store, stream_key, after)

    def follow(self, stream_key: str, after: int, closed: Callable[[], bool] = lambda: False) -> Iterator[RelayEvent]:
        return follow(self.store, stream_key, after, closed)
