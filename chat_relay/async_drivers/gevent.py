"""The gevent driver: greenlets, interrupted through the hub, sockets waited on with gevent's select."""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import Any

GREEN = True


def interrupt(task: Any, exc: type[BaseException], still_wanted: Callable[[], bool]) -> None:
    """Throw `exc` into the greenlet from the hub's next callback, if it is still wanted then."""
    from gevent import get_hub

    def deliver() -> None:
        if still_wanted() and not task.dead:
            task.throw(exc)

    get_hub().loop.run_callback(deliver)


def wait_readable(sock: socket.socket, sleep: Callable[[float], None]) -> bool:
    """gevent's cooperative select: wakes at once."""
    ready, _, _ = select.select([sock], [], [], 1.0)
    return bool(ready)


def join_queue(queue: Any, timeout: float) -> bool:
    queue.join(timeout=timeout)
    return not queue.unfinished_tasks


def time_limit(seconds: float, exc: type[BaseException]) -> Any:
    """gevent.Timeout raises `exc` in this task where it waits, after `seconds`."""
    import gevent

    return gevent.Timeout(seconds, exc)
