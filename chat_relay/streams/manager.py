"""Starting, resuming, stopping and letting go of streams: the one place both transports call for a stream's life.

- start: register the producer and the requester's delivery, start the producer (and, with REDIS_URL, its
  mirror into the shared log), and issue the resume token. It does not yield, so the admission decided just
  before it holds (chat_relay/access/admission.py).
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

from ..async_drivers import AsyncDriver
from ..errors import ErrorCode, RelayError
from ..observability.metrics import Metrics
from .backlog import Backlog
from .producer import Producer, StreamEnding
from .redis_store import EXPIRED
from .registry import ActiveStream, Closable, StreamRegistry
from .request_validation import ChatRequest
from .resume_tokens import NO_SUCH_STREAM, ResumeTokens
from .shared_buffer import SharedBuffers
from .stream_buffer import Follower, StreamBuffer, Waitable
from .tool_steps import ServerTools
from .upstream import Upstream

log = logging.getLogger(__name__)


SLOW_STORE_S = 1.0  # after a log's start outlasted REDIS_TIMEOUT, tokens go out without waiting this long


@dataclass(frozen=True)
class Started:
    relay: Producer
    key: str
    token: str
    reader: Follower
    logged: Waitable | None = None  # set once the shared log exists (with REDIS_URL)


class StreamManager:
    def __init__(self, *, upstream: Upstream, registry: StreamRegistry, tokens: ResumeTokens,
                 shared: SharedBuffers | None, driver: AsyncDriver, grace: float, ttl: float,
                 metrics: Metrics | None = None, buffered: int | None = None, stall_after: float = 30.0,
                 tools: ServerTools | None = None, store_timeout: float = 0.25) -> None:
        """`buffered` (MAX_BUFFERED_BYTES) and `stall_after` (STALLED_READER_TIMEOUT): back-pressure for slow
        readers (chat_relay/streams/backlog.py); without `buffered`, producers never wait for readers. `tools`: the
        app's server-side tools (chat_relay/tools/), offered to the model in every request and run by the stream.
        `store_timeout` (REDIS_TIMEOUT): how long `wait_logged` waits for Redis at most."""
        self._upstream, self._registry, self._tokens, self.shared = upstream, registry, tokens, shared
        self._metrics = metrics
        self._driver, self._grace, self._ttl = driver, grace, ttl
        self._buffered, self._stall_after = buffered, stall_after
        self._tools = tools
        self._store_timeout, self._store_slow_until = store_timeout, 0.0
        self._ended: OrderedDict[str, tuple[float, StreamBuffer]] = OrderedDict()  # key -> (kept until, buffer)

    def start(self, request: ChatRequest, owner: str, client: str,
              settle: Callable[[], bool] | None = None, reserved: bool = False, transport: str = "",
              on_end: StreamEnding | None = None) -> Started:
        """Register and start a new stream, delivered to `owner` over `transport`; never yields. `reserved`:
        admission reserved its slot (chat_relay/access/admission.py), which it now takes. `on_end`: told of the
        stream's end, on this instance (the team's hooks)."""
        try:
            steps = None
            if self._tools is not None:  # a client tool named as one of the server's is refused here
                request, steps = self._tools.offered(request), self._tools.steps()
            key = uuid.uuid4().hex
            backlog = None if self._buffered is None else Backlog(self._buffered, self._stall_after,
                                                                  self._driver.new_event)
            stream_log = StreamBuffer(request.stream_id, self._driver.new_event, backlog)
            shared = self.shared
            read_elsewhere = None if shared is None else (lambda: shared.has_remote_reader(key))
            relay = Producer(request, self._upstream, stream_log, pause=lambda: self._driver.sleep(0),
                             transport=transport, metrics=self._metrics, read_elsewhere=read_elsewhere,
                             tools=steps, on_end=on_end)
        except BaseException:
            if reserved:
                self._registry.give_back(client)
            raise
        entry = self._registry.add(ActiveStream(relay, key, client), reserved=reserved)
        if self._metrics is not None:
            self._metrics.stream_started(transport, request.model)
        reader = stream_log.follow(settle=settle)
        self._registry.deliver(owner, request.stream_id, key, reader)
        entry.task = self._driver.spawn(self._produce, entry)
        logged = None
        if self.shared is not None:
            logged = self._driver.new_event()
            self._driver.spawn(self.shared.mirror, stream_log, key, lambda: not relay.finished, logged.set)
        return Started(relay, key, self._tokens.issue(key, request.stream_id, client), reader, logged)

    def wait_logged(self, started: Started) -> None:
        """With REDIS_URL, wait until the stream's log is in Redis (or Redis refused it) before its resume token
        is handed out: a resume on any instance then finds the stream even if this one is killed at once (it
        reads `interrupted`, never `stream_expired`). One round trip, while the upstream is still being asked.
        A hung Redis is waited for REDIS_TIMEOUT at most, then not at all for SLOW_STORE_S, as admission does
        (chat_relay/access/shared_counts.py): streams are served without it."""
        if started.logged is None or time.monotonic() < self._store_slow_until:
            return
        if not started.logged.wait(self._store_timeout):
            self._store_slow_until = time.monotonic() + SLOW_STORE_S

    def _produce(self, entry: ActiveStream) -> None:
        try:
            entry.relay.run()
        finally:
            self._registry.remove(entry.key)
            self._keep(entry.key, entry.relay.buffer)

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

    def _local_log(self, key: str) -> StreamBuffer | None:
        entry = self._registry.get(key)
        if entry is not None:
            return entry.relay.buffer
        self._forget_expired()
        kept = self._ended.get(key)
        return kept[1] if kept is not None else None

    def _keep(self, key: str, stream_log: StreamBuffer) -> None:
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
            entry.cancel(self._driver, "client_gone")
        else:
            self._driver.spawn(self._expire_unread, entry)

    def _expire_unread(self, entry: ActiveStream) -> None:
        while True:
            self._driver.sleep(self._grace)
            if entry.relay.finished or entry.readers > 0:
                return
            if self.shared is None or not self.shared.has_remote_reader(entry.key):
                log.info("stream %s: nobody resumed it within RESUME_GRACE; cancelling", entry.relay.stream_id)
                entry.cancel(self._driver, "client_gone")
                return

    def disconnect(self, owner: str) -> None:
        """`owner`'s connection is gone: end its deliveries (their tasks then release them)."""
        for delivery in self._registry.deliveries_of(owner):
            delivery.reader.close()

    def stop_here(self, key: str) -> None:
        """A stop request from another instance, for a stream this one may be producing."""
        entry = self._registry.get(key)
        if entry is not None:
            entry.cancel(self._driver, "stopped")

    def stop(self, key: str) -> bool:
        """Cancel stream `key` wherever it is produced; False if it is not running anywhere we can reach."""
        entry = self._registry.get(key)
        if entry is not None:
            entry.cancel(self._driver, "stopped")
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
