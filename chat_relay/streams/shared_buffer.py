"""Stream buffers shared through Redis (REDIS_URL): a stream can be read, and resumed, on any instance.

Each stream's log is a Redis Stream, `relay:log:<key>`:

- A *mirror* task on the producing instance follows the stream's in-memory log (chat_relay/streams/stream_buffer.py) and
  appends everything waiting as one entry (the writes of all the instance's mirrors go out pipelined
  together: chat_relay/streams/redis_batch.py), `p` = the pieces as JSON, with the explicit id
  `<last seq + 1>-0`. Redis itself refuses an entry whose id is not above the last one, so a duplicate or
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

import contextlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..config import Settings
from ..errors import ErrorCode, RelayError
from .events import Chunk, Done, Failed, RelayEvent, Terminal
from .redis_batch import ScriptBatcher
from .stream_buffer import StreamBuffer, Waitable

log = logging.getLogger(__name__)

LEASE_MS = 5_000  # a producer silent this long is dead
BLOCK_MS = 1_000  # a remote reader's XREAD blocks this long before it looks at the lease again
READER_MS = 3 * BLOCK_MS  # a remote reader is present while this key lives (it is re-set every block)
CONTROL = "relay:control"  # the pub/sub channel of stop requests between instances
SECRET = "relay:secret"  # the resume tokens' signing secret, when SECRET_KEY is not set
MAXLEN = 100_000  # entries kept per stream at most: far above any reply's, a bound in case of a bug
RETRY_S = 1.0  # the mirror's pause before retrying a write while Redis is away

INTERRUPTED = "The server producing this reply stopped before it finished; this is the text it had sent."
EXPIRED = "This reply is no longer kept: it ended more than RESUME_TTL seconds ago."
UNAVAILABLE = "Resuming is unavailable right now: the server cannot reach its shared store. Try again shortly."

# KEYS: the log, the lease. ARGV: mode, entry id, payload, ttl ms, lease ms, maxlen, first seq.
# mode "start": the log's first entry, so that it exists from the stream's start (a reader that comes before the
# first piece waits instead of finding nothing); "p": append pieces (and renew the lease); "end": the producer's
# terminal; "interrupt": a reader's
# terminal, only when the lease is gone. Returns 1 if written, 0 if the log already ends (or the lease lives),
# -1 if the log lost entries before these (Redis restarted without them): the writer must write it all again.
_WRITE = """
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #top > 0 and top[1][2][1] == 'end' then return 0 end
local mode, id = ARGV[1], ARGV[2]
if mode ~= 'interrupt' and ARGV[7] ~= '0' then
  local next = #top > 0 and string.match(top[1][1], '^(%d+)-') or '0'
  if next ~= ARGV[7] then return -1 end
end
local ttl = ARGV[4] + 2 * ARGV[5]  -- while it runs: long enough after a dead producer's lease for its end
if mode == 'start' then
  if #top == 0 then redis.call('XADD', KEYS[1], '0-1', 'start', '') end
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[5])
  return 1
end
if mode == 'interrupt' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  if #top == 0 and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
  id = (#top > 0 and string.match(top[1][1], '^(%d+)-') or '0') .. '-1'
  mode = 'end'
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[6], id, mode, ARGV[3])
redis.call('PEXPIRE', KEYS[1], mode == 'end' and ARGV[4] or ttl)  -- ended: RESUME_TTL from now
if mode == 'end' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], '1', 'PX', ARGV[5]) end
return 1
"""


def log_key(stream_key: str) -> str:
    return f"relay:log:{stream_key}"


def lease_key(stream_key: str) -> str:
    return f"relay:lease:{stream_key}"


def reader_key(stream_key: str) -> str:
    return f"relay:reader:{stream_key}"


class SharedBuffers:
    """One per app with REDIS_URL: mirrors this instance's logs into Redis, and reads any instance's back."""

    def __init__(self, url: str, ttl: float, sleep: Callable[[float], None], lease_ms: int = LEASE_MS,
                 new_event: Callable[[], Waitable] = threading.Event,
                 spawn: Callable[..., Any] = lambda task: threading.Thread(target=task, daemon=True).start()) -> None:
        """`new_event` and `spawn` are the async mode's (the app passes Socket.IO's); threads by default."""
        options: dict[str, Any] = {"socket_connect_timeout": 2, "health_check_interval": 15}
        self.redis = redis.Redis.from_url(url, socket_timeout=3, **options)
        # XREAD BLOCK waits BLOCK_MS on the server: its socket must wait longer than that.
        self._blocking = redis.Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 3, **options)
        # Readiness (chat_relay/lifecycle/readiness.py) asks whether Redis answers now: one try, a short wait.
        self._probe = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
        self._write = self.redis.register_script(_WRITE)
        self._mirror_writes = ScriptBatcher(self.redis, self._write, new_event, spawn)  # all streams, pipelined
        self._url = url
        self._ttl_ms = int(ttl * 1000)
        self._sleep = sleep
        self._lease_ms = lease_ms

    # The producing instance.

    def mirror(self, stream_log: StreamBuffer, stream_key: str, still_wanted: Callable[[], bool]) -> None:
        """The mirror task: copy the log into Redis until its terminal is there. Never blocks the stream itself.

        `still_wanted()` false means the producer was told the stream is over elsewhere (an interrupted
        terminal won the race): nothing more is written.
        """
        cursor, wrote_end, warned, started = -1, False, False, False
        event = stream_log.new_event()
        while not wrote_end:
            if started:
                stream_log.wait(stream_log.beyond(cursor), event, timeout=self._lease_ms / 3000)
            try:
                if not started:
                    started = bool(self._append(stream_key, "start", "0-1", b"", 0))
                pieces = stream_log.pieces_after(cursor)
                terminal = stream_log.terminal
                if pieces or terminal is None:  # pieces to add, or the lease to renew
                    last = cursor + len(pieces)
                    written = self._append(stream_key, "p", f"{last + 1}-0", orjson.dumps(pieces), cursor + 1) \
                        if pieces else self._renew(stream_key)
                    if written == -1:  # Redis lost the start of this log: write it all again, from piece 0
                        cursor = -1
                        continue
                    if not written:
                        return  # the log already ends: a reader declared this producer dead
                    cursor = last
                if terminal is not None and cursor == stream_log.last_seq:
                    if self._append(stream_key, "end", f"{cursor + 1}-1", encode_terminal(terminal), cursor + 1) == -1:
                        cursor = -1
                        continue
                    wrote_end = True
                if warned:
                    log.info("shared store reachable again: stream %s mirrored", stream_log.stream_id)
                    warned = False
            except redis.RedisError as err:
                if not warned:
                    log.warning("shared store unreachable (%s): stream %s keeps streaming here; resuming it "
                                "elsewhere waits until the store is back", type(err).__name__, stream_log.stream_id)
                    warned = True
                if not still_wanted() and stream_log.terminal is None:
                    return
                self._sleep(RETRY_S)

    def _append(self, stream_key: str, mode: str, entry_id: str, payload: bytes, first: int) -> int:
        """Write one entry after the log's last (whose id must be `first`-0, unless `first` is 0): 1 if written,
        0 if refused (the log has ended, or has this entry already), -1 if entries before it are missing."""
        try:
            return int(self._mirror_writes.call([log_key(stream_key), lease_key(stream_key)],
                                                [mode, entry_id, payload, self._ttl_ms, self._lease_ms, MAXLEN, first]))
        except redis.ResponseError as err:
            if "equal or smaller" in str(err):
                return 0  # an entry with this id is there already: another writer got here first
            raise

    def _renew(self, stream_key: str) -> int:
        return 1 if self.redis.set(lease_key(stream_key), "1", px=self._lease_ms) else 0

    def has_remote_reader(self, stream_key: str) -> bool:
        """Whether a reader on another instance is following the stream (it refreshes its key every block)."""
        try:
            return bool(self.redis.exists(reader_key(stream_key)))
        except redis.RedisError:
            return False

    def request_stop(self, stream_key: str) -> bool:
        """Ask the instance producing `stream_key` to stop it; False if no instance is producing it."""
        try:
            if not self.redis.exists(lease_key(stream_key)):
                return False
            self.redis.publish(CONTROL, f"stop {stream_key}")
            return True
        except redis.RedisError:
            raise RelayError(ErrorCode.RESUME_UNAVAILABLE, UNAVAILABLE, retry_after=RETRY_S) from None

    def listen(self, on_stop: Callable[[str], None]) -> None:
        """This instance's control task: stop requests for its streams, from clients on other instances.
        Pub/sub waits without a socket timeout (redis-py's default of a few seconds would cut it); when Redis
        goes away it reconnects, every RETRY_S."""
        listener = redis.Redis.from_url(self._url, socket_timeout=None, socket_connect_timeout=2,
                                        health_check_interval=15)
        while True:
            try:
                pubsub = listener.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CONTROL)
                for message in pubsub.listen():
                    verb, _, stream_key = message["data"].decode().partition(" ")
                    if verb == "stop":
                        on_stop(stream_key)
            except redis.RedisError:
                self._sleep(RETRY_S)

    # Any instance.

    def reader(self, stream_key: str, after: int) -> RemoteFollower:
        """A delivery's reader of the shared log (raises stream_expired or resume_unavailable at once)."""
        try:
            exists = self._blocking.exists(log_key(stream_key))
        except redis.RedisError:
            raise RelayError(ErrorCode.RESUME_UNAVAILABLE, UNAVAILABLE, retry_after=RETRY_S) from None
        if not exists:
            raise RelayError(ErrorCode.STREAM_EXPIRED, EXPIRED)
        return RemoteFollower(self, stream_key, after)

    def follow(self, stream_key: str, after: int, closed: Callable[[], bool] = lambda: False) -> Iterator[RelayEvent]:
        """The chunks after piece `after`, each holding every entry that was waiting, then the terminal."""
        key = log_key(stream_key)
        last_id = f"{after + 1}-0" if after >= 0 else "0-1"  # past the "start" entry
        try:
            if not self._blocking.exists(key):
                raise RelayError(ErrorCode.STREAM_EXPIRED, EXPIRED)
            while not closed():
                self.redis.set(reader_key(stream_key), "1", px=READER_MS)
                reply: Any = self._blocking.xread({key: last_id}, count=1000, block=BLOCK_MS)
                if not reply:
                    if not self._blocking.exists(key):
                        raise RelayError(ErrorCode.STREAM_EXPIRED, EXPIRED)
                    # Nothing new for a whole block: is its producer alive? If not, end it here.
                    self._write(keys=[key, lease_key(stream_key)],
                                args=["interrupt", "", encode_terminal(interrupted(after + 1)), self._ttl_ms,
                                      self._lease_ms, MAXLEN, 0])
                    continue
                texts, terminal = [], None
                for entry_id, fields in reply[0][1]:
                    last_id = entry_id.decode()
                    if b"p" in fields:
                        pieces = orjson.loads(fields[b"p"])
                        end = int(last_id.split("-")[0]) - 1
                        first = end - len(pieces) + 1
                        texts += pieces[max(0, after + 1 - first):]
                        after = max(after, end)
                    elif b"end" in fields:
                        terminal = decode_terminal(fields[b"end"])
                        break  # (the "start" entry carries nothing)
                if texts:
                    yield Chunk("".join(texts), after)
                if terminal is not None:
                    yield terminal
                    return
        except redis.RedisError:
            raise RelayError(ErrorCode.RESUME_UNAVAILABLE, UNAVAILABLE, retry_after=RETRY_S) from None
        finally:
            with contextlib.suppress(redis.RedisError):
                self.redis.delete(reader_key(stream_key))

    def ping(self) -> bool:
        """Whether Redis answers now, within a second, without retries."""
        try:
            return bool(self._probe.ping())
        except redis.RedisError:
            return False


class RemoteFollower:
    """A delivery's reading of a stream produced on another instance; `close()` ends it within BLOCK_MS."""

    def __init__(self, shared: SharedBuffers, stream_key: str, after: int) -> None:
        self._shared, self._key, self.cursor = shared, stream_key, after
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def __iter__(self) -> Iterator[RelayEvent]:
        for event in self._shared.follow(self._key, self.cursor, lambda: self.closed):
            if isinstance(event, Chunk):
                self.cursor = event.seq
            yield event


def interrupted(chunks: int) -> Failed:
    return Failed(ErrorCode.INTERRUPTED, INTERRUPTED, chunks)


def encode_terminal(terminal: Terminal) -> bytes:
    if isinstance(terminal, Done):
        return orjson.dumps({"done": [terminal.finish_reason, terminal.chunks, terminal.usage]})
    return orjson.dumps({"error": [terminal.code.value, terminal.message, terminal.chunks, terminal.retry_after]})


def decode_terminal(data: bytes) -> Terminal:
    entry = orjson.loads(data)
    if "done" in entry:
        finish, chunks, usage = entry["done"]
        return Done(finish, chunks, usage)
    code, message, chunks, retry_after = entry["error"]
    return Failed(ErrorCode(code), message, chunks, retry_after)


def resume_secret(settings: Settings, shared: SharedBuffers | None) -> bytes:
    """What resume tokens are signed with: SECRET_KEY; else, with REDIS_URL, one secret every instance reads
    from Redis (the first to start makes it); else one for this process (one instance needs no more)."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    if shared is not None:
        try:
            shared.redis.set(SECRET, secrets.token_bytes(32), nx=True)
            value = shared.redis.get(SECRET)
            if isinstance(value, bytes):
                return value
        except redis.RedisError:
            log.warning("the shared store is unreachable at start: resume tokens from this instance will be "
                        "valid on this instance only. Set SECRET_KEY (the same on every instance) to avoid this.")
    return secrets.token_bytes(32)

