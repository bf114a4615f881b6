"""Starting, resuming, stopping and letting go of streams: the one place both transports call for a stream's life.

- start: register the producer and the requester's delivery, start the producer (and, with REDIS_URL, its
  mirror into the shared log), and issue the resume token. It does not yield, so the admission decided just
  before it holds (app/access/limits.py).
- resume: a delivery from a cursor, from this instance's memory when the stream is (or was, within
  RESUME_TTL) produced here, else from the shared log.
- release: a delivery ended (its client left). When a stream produced here has no reader left, it keeps
  running for RESUME_GRACE seconds; if nobody resumes it by then, it is cancelled as `client_gone`.
- stop: cancel a stream, here, or on the instance producing it (through the shared store).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ErrorCode, RelayError
from ..observability.metrics import Metrics
from .backlog import Backlog
from .log import Follower, StreamLog
from .registry import ActiveStream, Closable, StreamRegistry
from .relay import Relay
from .schemas import ChatRequest
from .shared_log import EXPIRED, SharedLogs
from .tokens import NO_SUCH_STREAM, ResumeTokens
from .upstream import Upstream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Started:
    relay: Relay
    key: str
    token: str
    reader: Follower


class StreamManager:
    def __init__(self, *, upstream: Upstream, registry: StreamRegistry, tokens: ResumeTokens,
                 shared: SharedLogs | None, new_event: Callable[[], Any], spawn: Callable[..., Any],
                 sleep: Callable[[float], None], async_mode: str, grace: float, ttl: float,
                 metrics: Metrics | None = None, buffered: int | None = None, stall_after: float = 30.0) -> None:
        """`buffered` (MAX_BUFFERED_BYTES) and `stall_after` (STALLED_READER_TIMEOUT): back-pressure for slow
        readers (app/streams/backlog.py); without `buffered`, producers never wait for readers."""
        self._upstream, self._registry, self._tokens, self.shared = upstream, registry, tokens, shared
        self._metrics = metrics
        self._new_event, self._spawn, self._sleep = new_event, spawn, sleep
        self._async_mode, self._grace, self._ttl = async_mode, grace, ttl
        self._buffered, self._stall_after = buffered, stall_after
        self._ended: OrderedDict[str, tuple[float, StreamLog]] = OrderedDict()  # key -> (kept until, log)

    def start(self, request: ChatRequest, owner: str, client: str,
              settle: Callable[[], bool] | None = None, reserved: bool = False, transport: str = "") -> Started:
        """Register and start a new stream, delivered to `owner` over `transport`; never yields. `reserved`:
        admission reserved its slot (app/access/limits.py), which it now takes."""
        try:
            key = uuid.uuid4().hex
            backlog = None if self._buffered is None else Backlog(self._buffered, self._stall_after, self._new_event)
            stream_log = StreamLog(request.stream_id, self._new_event, backlog)
            shared = self.shared
            read_elsewhere = None if shared is None else (lambda: shared.has_remote_reader(key))
            relay = Relay(request, self._upstream, stream_log, pause=lambda: self._sleep(0), transport=transport,
                          metrics=self._metrics, read_elsewhere=read_elsewhere)
        except BaseException:
            if reserved:
                self._registry.release(client)
            raise
        entry = self._registry.add(ActiveStream(relay, key, client), reserved=reserved)
        if self._metrics is not None:
            self._metrics.stream_started(transport, request.model)
        reader = stream_log.follow(settle=settle)
        self._registry.deliver(owner, request.stream_id, key, reader)
        entry.task = self._spawn(self._produce, entry)
        if self.shared is not None:
            self._spawn(self.shared.mirror, stream_log, key, lambda: not relay.finished)
        return Started(relay, key, self._tokens.issue(key, request.stream_id, client), reader)

    def _produce(self, entry: ActiveStream) -> None:
        try:
            entry.relay.run()
        finally:
            self._registry.remove(entry.key)
            self._keep(entry.key, entry.relay.log)

    # Reading.

    def key_for(self, token: object, stream_id: object, client: str) -> str:
        return self._tokens.check(token, stream_id, client)

    def resume(self, key: str, after: int, owner: str, stream_id: str,
               settle: Callable[[], bool] | None = None) -> Closable:
        """A delivery of stream `key` to `owner`, from just after piece `after`."""
        self._registry.check_free(owner, stream_id)
        stream_log = self._local_log(key)
        reader: Closable
        if stream_log is not None:
            reader = stream_log.follow(after, settle)
        elif self.shared is not None:
            reader = self.shared.reader(key, after)
        else:
            raise RelayError(ErrorCode.STREAM_EXPIRED, EXPIRED)
        self._registry.deliver(owner, stream_id, key, reader)
        return reader

    def _local_log(self, key: str) -> StreamLog | None:
        entry = self._registry.get(key)
        if entry is not None:
            return entry.relay.log
        self._forget_expired()
        kept = self._ended.get(key)
        return kept[1] if kept is not None else None

    def _keep(self, key: str, stream_log: StreamLog) -> None:
        """An ended stream stays readable here for RESUME_TTL (and in the shared log, which expires alike)."""
        self._ended[key] = (time.monotonic() + self._ttl, stream_log)
        self._forget_expired()

    def _forget_expired(self) -> None:
        now = time.monotonic()
        while self._ended:
            key, (until, _) = next(iter(self._ended.items()))
            if until > now:
                break
            del self._ended[key]

    # Letting go, and stopping.

    def release(self, owner: str, stream_id: str) -> None:
        """A delivery has ended: a stream left without readers gets its grace period."""
        entry = self._registry.undeliver(owner, stream_id)
        if entry is None or entry.relay.finished:
            return
        if self._grace <= 0:
            entry.cancel(self._async_mode, "client_gone")
        else:
            self._spawn(self._expire_unread, entry)

    def _expire_unread(self, entry: ActiveStream) -> None:
        while True:
            self._sleep(self._grace)
            if entry.relay.finished or entry.readers > 0:
                return
            if self.shared is None or not self.shared.has_remote_reader(entry.key):
                log.info("stream %s: nobody resumed it within RESUME_GRACE; cancelling", entry.relay.stream_id)
                entry.cancel(self._async_mode, "client_gone")
                return

    def disconnect(self, owner: str) -> None:
        """`owner`'s connection is gone: end its deliveries (their tasks then release them)."""
        for delivery in self._registry.deliveries_of(owner):
            delivery.reader.close()

    def stop_here(self, key: str) -> None:
        """A stop request from another instance, for a stream this one may be producing."""
        entry = self._registry.get(key)
        if entry is not None:
            entry.cancel(self._async_mode, "stopped")

    def stop(self, key: str) -> bool:
        """Cancel stream `key` wherever it is produced; False if it is not running anywhere we can reach."""
        entry = self._registry.get(key)
        if entry is not None:
            entry.cancel(self._async_mode, "stopped")
            return True
        return self.shared is not None and self.shared.request_stop(key)

    def key_of(self, owner: str, stream_id: object, token: object, client: str) -> str:
        """The key of the stream a stop names: one this owner reads, or any, with its resume token."""
        delivery = self._registry.delivery(owner, stream_id) if isinstance(stream_id, str) else None
        if delivery is not None:
            return delivery.key
        if token is None:
            raise RelayError(ErrorCode.INVALID_REQUEST, "No stream of yours with that stream_id is running.")
        try:
            return self.key_for(token, stream_id, client)
        except RelayError:
            raise RelayError(ErrorCode.INVALID_REQUEST, NO_SUCH_STREAM) from None
