"""Everything that differs between gevent and eventlet, in one place: the current task, interrupting it,
and waiting for a socket to become readable. The rest of the app calls these and never imports either library.

`threading` (the fast tests' mode) has OS threads, which cannot be interrupted: callers see their cancel
flag at the next chunk instead.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import Any

_TICK = 0.05  # eventlet polls a socket it may not register: at worst this long before readiness is seen


def current_task(async_mode: str) -> object | None:
    """The green thread running now, so that a cancel can later interrupt it where it waits."""
    if async_mode == "gevent":
        import gevent

        return gevent.getcurrent()
    if async_mode == "eventlet":
        import eventlet.greenthread

        return eventlet.greenthread.getcurrent()
    return None


def interrupt(task: object, exc: type[BaseException], async_mode: str, still_wanted: Callable[[], bool]) -> None:
    """Raise `exc` inside `task` where it waits (for the upstream's headers, or its next bytes).

    `still_wanted` is asked again just before the throw, when the delivery is deferred (gevent): by then
    the task may have ended its work on its own, or moved on to other work (an HTTP keep-alive connection's
    next request), and must not be hit.
    """
    if async_mode == "gevent":
        from gevent import get_hub

        def deliver() -> None:
            if still_wanted() and not task.dead:  # type: ignore[attr-defined]
                task.throw(exc)  # type: ignore[attr-defined]  # a greenlet

        get_hub().loop.run_callback(deliver)
    elif async_mode == "eventlet":
        import eventlet.greenthread

        # eventlet throws at once. engineio wraps its GreenThread in `.g`; an HTTP request's task is bare.
        eventlet.greenthread.kill(getattr(task, "g", task), exc)


def wait_readable(sock: socket.socket, async_mode: str, sleep: Callable[[float], None]) -> bool:
    """Wait up to about a second for `sock` to have bytes (or an end-of-file) to read, without reading them."""
    if async_mode == "gevent":
        ready, _, _ = select.select([sock], [], [], 1.0)  # gevent's cooperative select: wakes at once
        return bool(ready)
    # eventlet allows one reader per socket, and its server reads the next request from this one as soon
    # as the response ends: poll without registering, through the unpatched select.
    import eventlet.patcher

    sleep(_TICK)
    original_select = eventlet.patcher.original("select").select
    ready, _, _ = original_select([sock.fileno()], [], [], 0)
    return bool(ready)


def join_queue(queue: Any, timeout: float, async_mode: str) -> bool:
    """Wait until a consumer has taken everything put in `queue` (engine.io's per-client packet queue), or
    `timeout` seconds; returns whether it has. OS threads (the fast tests) do not wait: their queue.join has no
    timeout, so they count it as taken."""
    if async_mode == "gevent":
        queue.join(timeout=timeout)
    elif async_mode == "eventlet":
        import eventlet

        with eventlet.Timeout(timeout, False):
            queue.join()
    else:
        return True
    return not queue.unfinished_tasks
