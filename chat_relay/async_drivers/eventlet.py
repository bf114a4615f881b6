"""The eventlet driver: green threads killed with the exception at once, sockets polled without registering."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

GREEN = True
_TICK = 0.05  # eventlet polls a socket it may not register: at worst this long before readiness is seen


def interrupt(task: Any, exc: type[BaseException], still_wanted: Callable[[], bool]) -> None:
    """eventlet throws at once. engineio wraps its GreenThread in `.g`; an HTTP request's task is bare."""
    import eventlet.greenthread

    eventlet.greenthread.kill(getattr(task, "g", task), exc)


def wait_readable(sock: socket.socket, sleep: Callable[[float], None]) -> bool:
    """eventlet allows one reader per socket, and its server reads the next request from this one as soon as the
    response ends: poll without registering, through the unpatched select."""
    import eventlet.patcher

    sleep(_TICK)
    original_select = eventlet.patcher.original("select").select
    ready, _, _ = original_select([sock.fileno()], [], [], 0)
    return bool(ready)


def join_queue(queue: Any, timeout: float) -> bool:
    import eventlet

    with eventlet.Timeout(timeout, False):
        queue.join()
    return not queue.unfinished_tasks


def time_limit(seconds: float, exc: type[BaseException]) -> Any:
    """eventlet.Timeout raises `exc` in this task where it waits, after `seconds`."""
    import eventlet

    return eventlet.Timeout(seconds, exc)
