"""Redis for stream buffers (REDIS_URL): its connections, the key names, the one script that writes every entry,
and how a terminal entry is encoded. The parts that use it are beside it: shared_mirror.py (the producing
instance's copy), remote_reader.py (any instance's reading), stop_channel.py (stops between instances).
The design, keys and guarantees are in shared_buffer.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import orjson
import redis

from ..errors import ErrorCode
from .events import Done, Failed, Terminal
from .redis_batch import ScriptBatcher
from .stream_buffer import Waitable

LEASE_MS = 5_000  # a producer silent this long is dead
BLOCK_MS = 1_000  # a remote reader's XREAD blocks this long before it looks at the lease again
READER_MS = 3 * BLOCK_MS  # a remote reader is present while this key lives (it is re-set every block)
MAXLEN = 100_000  # entries kept per stream at most: far above any reply's, a bound in case of a bug
RETRY_S = 1.0  # the pause before retrying while Redis is away

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
  -- just after the last entry: piece n's "n-0" is followed by "n-1", the start's "0-1" by "0-2"
  if #top > 0 then
    local seq, sub = string.match(top[1][1], '^(%d+)-(%d+)$')
    id = seq .. '-' .. (tonumber(sub) + 1)
  else
    id = '0-1'
  end
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


class RedisStore:
    """One per app: the command connection, the blocking-read connection, and the batched entry writes."""

    def __init__(self, url: str, ttl: float, lease_ms: int = LEASE_MS,
                 new_event: Callable[[], Waitable] = threading.Event,
                 spawn: Callable[..., Any] = lambda task: threading.Thread(target=task, daemon=True).start()) -> None:
        options: dict[str, Any] = {"socket_connect_timeout": 2, "health_check_interval": 15}
        self.url = url
        self.redis = redis.Redis.from_url(url, socket_timeout=3, **options)
        # XREAD BLOCK waits BLOCK_MS on the server: its socket must wait longer than that.
        self.blocking = redis.Redis.from_url(url, socket_timeout=BLOCK_MS / 1000 + 3, **options)
        self.write = self.redis.register_script(_WRITE)
        self.batched = ScriptBatcher(self.redis, self.write, new_event, spawn)  # all streams' writes, pipelined
        self.ttl_ms = int(ttl * 1000)
        self.lease_ms = lease_ms

    def append(self, stream_key: str, mode: str, entry_id: str, payload: bytes, first: int) -> int:
        """Write one entry after the log's last (whose id must be `first`-0, unless `first` is 0): 1 if written,
        0 if refused (the log has ended, or has this entry already), -1 if entries before it are missing."""
        try:
            return int(self.batched.call([log_key(stream_key), lease_key(stream_key)],
                                         [mode, entry_id, payload, self.ttl_ms, self.lease_ms, MAXLEN, first]))
        except redis.ResponseError as err:
            if "equal or smaller" in str(err):
                return 0  # an entry with this id is there already: another writer got here first
            raise

    def renew_lease(self, stream_key: str) -> int:
        """The producer is alive: its lease runs LEASE_MS more."""
        return 1 if self.redis.set(lease_key(stream_key), "1", px=self.lease_ms) else 0

    def lease_alive(self, stream_key: str) -> bool:
        """Whether an instance is producing the stream now."""
        return bool(self.redis.exists(lease_key(stream_key)))

    def end_if_producer_died(self, stream_key: str, chunks: int) -> None:
        """A reader's check: with the lease gone and no terminal, write the terminal `interrupted` itself."""
        self.write(keys=[log_key(stream_key), lease_key(stream_key)],
                   args=["interrupt", "", encode_terminal(interrupted(chunks)), self.ttl_ms, self.lease_ms, MAXLEN, 0])


def interrupted(chunks: int) -> Failed:
    return Failed(ErrorCode.INTERRUPTED, INTERRUPTED, chunks)


def encode_terminal(terminal: Terminal) -> bytes:
    if isinstance(terminal, Done):
        return orjson.dumps({"done": [terminal.finish_reason, terminal.chunks, terminal.usage, terminal.tool_calls]})
    return orjson.dumps({"error": [terminal.code.value, terminal.message, terminal.chunks, terminal.retry_after]})


def decode_terminal(data: bytes) -> Terminal:
    entry = orjson.loads(data)
    if "done" in entry:
        finish, chunks, usage, *calls = entry["done"]  # an instance from before tool calls wrote three fields
        return Done(finish, chunks, usage, calls[0] if calls else None)
    code, message, chunks, retry_after = entry["error"]
    return Failed(ErrorCode(code), message, chunks, retry_after)
