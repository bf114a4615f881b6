"""The async modes' differences, in one place: one driver module per mode (gevent.py, eventlet.py, threading.py),
each with the same few functions, chosen once per app from its SocketIO server (`driver_for`), as python-engineio's
own async_drivers/ are. Nothing else in the package asks which mode it runs in.

`threading` (the fast tests' mode) has OS threads, which cannot be interrupted: callers see their cancel flag at
the next chunk instead, and no socket is watched.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any, get_args

from ..config import AsyncMode

if TYPE_CHECKING:
    from flask_socketio import SocketIO

MODES: tuple[str, ...] = get_args(AsyncMode)  # the SocketIO server modes the relay runs in

# Wraps the websocket engine.io's handler reads from: (the mode's websocket, a function that shuts its socket down
# once it is closed or None, whether it ended for a message over the bound) -> the checked websocket.
CheckedFactory = Callable[[Any, Callable[[Any], None] | None, Callable[[], bool]], Any]
FollowBound = Callable[[Any, Callable[[int], None]], None]  # (engine.io socket, set its websocket's bound)


class TimeLimitExceeded(Exception):
    """Raised inside the task by `AsyncDriver.time_limit` when its block runs past the limit."""


@dataclass(frozen=True)
class AsyncDriver:
    """One app's async primitives: its SocketIO server's own (spawn, sleep, new_event), and the mode's driver."""

    name: str
    spawn: Callable[..., Any]  # start a background task (engine.io's start_background_task)
    sleep: Callable[[float], None]  # a cooperative sleep
    new_event: Callable[[], Any]  # an event of the mode's kind
    mode: ModuleType  # async_drivers/<name>.py

    @property
    def green(self) -> bool:
        """Whether tasks are green threads, which a cancel can interrupt and which can wait on a socket."""
        return bool(self.mode.GREEN)

    def interrupt(self, task: object, exc: type[BaseException], still_wanted: Callable[[], bool]) -> None:
        """Raise `exc` inside `task` where it waits (for the upstream's headers, or its next bytes).

        `still_wanted` is asked again just before the throw, when the delivery is deferred (gevent): by then
        the task may have ended its work on its own, or moved on to other work (an HTTP keep-alive connection's
        next request), and must not be hit.
        """
        self.mode.interrupt(task, exc, still_wanted)

    def wait_readable(self, sock: socket.socket) -> bool:
        """Wait up to about a second for `sock` to have bytes (or an end-of-file) to read, without reading them."""
        return bool(self.mode.wait_readable(sock, self.sleep))

    def time_limit(self, seconds: float) -> AbstractContextManager[None]:
        """Interrupt the block with TimeLimitExceeded after `seconds`, wherever it waits (a socket's recv). OS
        threads (the fast tests) cannot be interrupted: there the block runs to its end."""
        return self.mode.time_limit(seconds, TimeLimitExceeded)  # type: ignore[no-any-return]

    def join_queue(self, queue: Any, timeout: float) -> bool:
        """Wait until a consumer has taken everything put in `queue` (engine.io's per-client packet queue), or
        `timeout` seconds; returns whether it has."""
        return bool(self.mode.join_queue(queue, timeout))

    def bounded_websocket(self, base: type, first_bound: int, checked: CheckedFactory,
                          follow: FollowBound = lambda eio_socket, set_bound: None) -> type:
        """engine.io's websocket class `base` made to bound messages to `first_bound` bytes across their frames
        and to let go of a closed websocket's socket, in this mode's way; its handler is given
        `checked(ws, shut_down_later, too_big)` (chat_relay/transports/websocket_limits.py), and
        `follow(eio_socket, set_bound)` is called with each websocket's engine.io socket and a function that sets
        that websocket's bound (raised once its connect is admitted: chat_relay/access/message_bound.py).
        `base` itself where nothing needs bounding (threading)."""
        return self.mode.bounded_websocket(base, first_bound, checked, follow)  # type: ignore[no-any-return]


def client_socket(environ: Mapping[str, Any]) -> socket.socket | None:
    """A request's connection, from the WSGI server under either mode: gunicorn's workers put it in the environ,
    eventlet's server in its input. None from a server that gives neither (the fast tests' werkzeug)."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        sock = getattr(environ.get("eventlet.input"), "_sock", None)
    return sock


def driver_for(socketio: SocketIO) -> AsyncDriver:
    """The driver of the mode `socketio` serves in (one of MODES): chosen here, once per app."""
    return AsyncDriver(socketio.async_mode, socketio.start_background_task, socketio.sleep,
                       socketio.server.eio.create_event, mode_driver(socketio.async_mode))


def mode_driver(name: str) -> ModuleType:
    """The driver module of one mode, imported only when that mode runs (gevent and eventlet need not be installed)."""
    if name not in MODES:
        raise ValueError(f"no async driver for {name!r}: one of {', '.join(MODES)}")
    return import_module(f".{name}", __name__)
