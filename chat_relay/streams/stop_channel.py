"""Stops between instances: a client on one instance stops a stream another instance produces, through a Redis
pub/sub channel that every instance's control task listens to."""

from __future__ import annotations

from collections.abc import Callable

import redis

from ..errors import ErrorCode, RelayError
from .redis_store import RETRY_S, UNAVAILABLE, RedisStore

CONTROL = "relay:control"  # the pub/sub channel of stop requests between instances


def request_stop(store: RedisStore, stream_key: str) -> bool:
    """Ask the instance producing `stream_key` to stop it; False if no instance is producing it."""
    try:
        if not store.lease_alive(stream_key):
            return False
        store.redis.publish(CONTROL, f"stop {stream_key}")
        return True
    except redis.RedisError:
        raise RelayError(ErrorCode.RESUME_UNAVAILABLE, UNAVAILABLE, retry_after=RETRY_S) from None


def listen(url: str, on_stop: Callable[[str], None], sleep: Callable[[float], None]) -> None:
    """This instance's control task: stop requests for its streams, from clients on other instances.
    Pub/sub waits without a socket timeout (redis-py's default of a few seconds would cut it); when Redis
    goes away it reconnects, every RETRY_S."""
    listener = redis.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=2, health_check_interval=15)
    while True:
        try:
            pubsub = listener.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(CONTROL)
            for message in pubsub.listen():
                verb, _, stream_key = message["data"].decode().partition(" ")
                if verb == "stop":
                    on_stop(stream_key)
        except redis.RedisError:
            sleep(RETRY_S)
