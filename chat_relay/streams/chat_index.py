"""Which stream a chat's latest reply is: chat id -> (stream_id, resume token), per caller, for RESUME_TTL.

The AI SDK resumes and stops by chat id (`GET <api>/<chat id>/stream`), where the relay's own protocol names a
stream and shows its resume token. This index is the bridge: the chat endpoint records each new reply's stream
under the caller's identity (its access token's, else its address: chat_relay/access/auth.py) and the chat id,
so a caller finds only its own chats, and a guessed chat id of someone else's finds nothing. What it holds is the
resume token, which is checked again on use (chat_relay/streams/resume_tokens.py).

In this process's memory, at most MAX_ENTRIES of them, and with REDIS_URL in Redis too (`relay:chat:<hash>`,
expiring with RESUME_TTL), so that a reload that lands on another instance finds the chat. A chat whose reply
started more than RESUME_TTL ago is no longer found.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from typing import NamedTuple

import orjson
import redis

log = logging.getLogger(__name__)

MAX_ENTRIES = 100_000  # a bound on memory: about 30 MB at most; the oldest chats are forgotten first


class ChatReply(NamedTuple):
    """A chat's latest reply: its stream, the resume token that reads it, and its UI message id if not the
    stream's own."""

    stream_id: str
    token: str
    message_id: str = ""


class ChatIndex:
    def __init__(self, ttl: float, store: redis.Redis | None = None) -> None:
        self._ttl = ttl
        self._store = store
        # name -> (until, stream_id, token, message_id)
        self._entries: OrderedDict[str, tuple[float, str, str, str]] = OrderedDict()

    def record(self, client: str, chat_id: str, stream_id: str, token: str, message_id: str = "") -> None:
        """The chat's latest reply is this stream (a new reply replaces the last one); `message_id`: the UI
        message it writes, when not the stream's own (a reply that continues the client's last message)."""
        name = _name(client, chat_id)
        self._entries.pop(name, None)
        self._entries[name] = (time.monotonic() + self._ttl, stream_id, token, message_id)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
        if self._store is not None:
            try:
                self._store.set(name, orjson.dumps([stream_id, token, message_id]), px=int(self._ttl * 1000))
            except redis.RedisError:
                log.warning("the shared store is unreachable: chat %s can be resumed on this instance only", chat_id)

    def find(self, client: str, chat_id: str) -> ChatReply | None:
        """The chat's latest reply, or None."""
        name = _name(client, chat_id)
        entry = self._entries.get(name)
        if entry is not None:
            if entry[0] > time.monotonic():
                return ChatReply(*entry[1:])
            del self._entries[name]
        if self._store is None:
            return None
        try:
            value = self._store.get(name)
        except redis.RedisError:
            return None
        if not isinstance(value, bytes):
            return None
        stream_id, token, *message_id = orjson.loads(value)  # an entry from before message ids has none
        return ChatReply(str(stream_id), str(token), str(message_id[0]) if message_id else "")


def _name(client: str, chat_id: str) -> str:
    """The entry's key: a hash, so neither the identity nor the chat id shows in Redis."""
    digest = hashlib.sha256(f"{client}\x00{chat_id}".encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"relay:chat:{digest}"
