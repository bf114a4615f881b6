"""Every stream's writes to Redis, sent together: one pipelined round trip carries whatever is waiting.

With one mirror task per stream (chat_relay/streams/shared_buffer.py), each piece of text was one round trip to Redis:
at one piece per event that cost 2.5 times the CPU of the in-memory log (docs/benchmarks.md, "Scale-out"),
most of it waiting for the reply and the switches around it. Here a mirror hands its write to one sender task
and waits for its own result. The sender takes every write queued meanwhile, by any stream, and sends them
as one pipeline (not a transaction: each write is its own script call, checked on its own). As with the
readers' coalescing, nothing waits on a timer: at low load a write leaves at once, alone; under load, the
writes that queued while the last round trip was out go in the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.commands.core import Script

from .stream_buffer import Waitable


@dataclass
class _Write:
    keys: list[str]
    args: list[Any]
    done: Waitable
    result: Any = None
    error: BaseException | None = field(default=None)


class ScriptBatcher:
    """Calls of one Lua script from many tasks, pipelined: `call()` blocks its caller until its own reply."""

    def __init__(self, client: redis.Redis, script: Script, new_event: Callable[[], Waitable],
                 spawn: Callable[..., Any]) -> None:
        self._client, self._script = client, script
        self._new_event, self._spawn = new_event, spawn
        self._queue: list[_Write] = []
        self._lock = threading.Lock()  # the queue and the sender's state; with threads in tests, real threads
        self._sending = False
        self.round_trips = 0  # batches sent, for the test that they carry what queued meanwhile

    @property
    def queued(self) -> int:
        """Writes waiting for the next round trip."""
        return len(self._queue)

    def call(self, keys: list[str], args: list[Any]) -> Any:
        """The script's reply for these keys and args; raises what the call raised (a RedisError)."""
        write = _Write(keys, args, self._new_event())
        with self._lock:
            self._queue.append(write)
            start = not self._sending
            self._sending = True
        if start:
            self._spawn(self._send)
        write.done.wait()
        if write.error is not None:
            raise write.error
        return write.result

    def _send(self) -> None:
        """The sender: one round trip per batch, until nothing is queued."""
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._sending = False
                    return
                self.round_trips += 1
            try:
                pipe = self._client.pipeline(transaction=False)
                for write in batch:
                    self._script(keys=write.keys, args=write.args, client=pipe)
                replies = pipe.execute(raise_on_error=False)
            except Exception as err:  # Redis away: every write of the batch fails alike
                replies = [err] * len(batch)
            for write, reply in zip(batch, replies, strict=True):
                if isinstance(reply, BaseException):
                    write.error = reply
                else:
                    write.result = reply
                write.done.set()
