"""The threading driver (the fast tests' mode): OS threads cannot be interrupted, and no socket is watched."""

from __future__ import annotations

import socket
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

GREEN = False


def interrupt(task: Any, exc: type[BaseException], still_wanted: Callable[[], bool]) -> None:
    """Nothing to do: the task sees its cancel flag at the next chunk."""


def wait_readable(sock: socket.socket, sleep: Callable[[float], None]) -> bool:
    return False


def join_queue(queue: Any, timeout: float) -> bool:
    """Do not wait: an OS thread's queue.join has no timeout, so it counts as taken."""
    return True


def time_limit(seconds: float, exc: type[BaseException]) -> Any:
    """No limit: an OS thread cannot be interrupted."""
    return nullcontext()


def bounded_websocket(base: type, first_bound: int, checked: Callable[..., Any],
                      follow: Callable[..., None]) -> type:
    """Left as it is: the relay bounds websockets in the green modes it is served in."""
    return base
