"""Notice an HTTP client that hangs up while its stream waits on the upstream, and end its delivery at once.

A WSGI app learns that a client has gone only when it next writes, which with a stalled upstream can be
never; meanwhile the stream would count as read, and its grace period (RESUME_GRACE) would never start, so
its upstream would keep generating tokens that are paid for. So a small green task watches the client's
socket for the end-of-file a hang-up leaves there. (Socket.IO needs none of this: its disconnect handler
and ping timeout cover it.)
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any

from ..async_drivers import AsyncDriver, client_socket


def watch_client(environ: Mapping[str, Any], over: Callable[[], bool], on_hangup: Callable[[], None],
                 driver: AsyncDriver) -> None:
    """Call `on_hangup` as soon as the client closes its connection, until `over()`; no-op without green tasks."""
    sock = client_socket(environ)
    if sock is not None and driver.green:
        driver.spawn(_watch, sock, over, on_hangup, driver)


def _watch(sock: socket.socket, over: Callable[[], bool], on_hangup: Callable[[], None],
           driver: AsyncDriver) -> None:
    while not over():
        try:
            readable = driver.wait_readable(sock)
        except (OSError, ValueError):  # the server closed the socket: the response is over
            return
        if over():
            return
        if readable:
            try:
                data = sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data == b"":
                on_hangup()
            # Bytes instead (a pipelined request) say nothing of a hang-up; the next write will tell.
            return
