"""The eventlet driver: green threads killed with the exception at once, sockets polled without registering, and
eventlet's websocket bounded across fragments, unmasked in C (`bounded_websocket`)."""

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


# The websocket: engine.io's is eventlet's own, which bounds one frame but not a message's fragments together.

def unmask(data: bytes, mask: tuple[int, ...], length: int | None = None, offset: int = 0) -> bytes:
    """eventlet's `_apply_mask`, in C: eventlet's own builds one bytes object per byte of the frame, so a
    1 MB frame took a second of CPU and some 60 MB of memory while it was read."""
    length = len(data) if length is None else length
    key = bytes(mask[(offset + i) % 4] for i in range(4))
    stream = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(data[:length], "big") ^ int.from_bytes(stream, "big")).to_bytes(length, "big")


def bounded_websocket(base: type, first_bound: int, checked: Callable[..., Any],
                      follow: Callable[[Any, Callable[[int], None]], None]) -> type:
    """engine.io's websocket class `base`, with each message's fragments counted together against its bound,
    `first_bound` until `follow` sets another (eventlet gives each message the websocket's `max_frame_length`
    as it starts), 1009 over it; unmasking in C, and hixie-76 websockets (no bound at all) refused. Its
    handler is given `checked(ws, None, too_big)`: eventlet's socket has engine.io's read timeout, so nothing
    needs shutting down later."""
    from eventlet.websocket import RFC6455WebSocket

    class BoundedMessage(RFC6455WebSocket.Message):  # type: ignore[name-defined, misc]
        """eventlet's incoming message, refused once its frames together pass max_frame_length."""

        size = 0

        def push(self, data: bytes, final: bool = False) -> None:
            from eventlet.websocket import FailedConnectionError

            self.size += len(data)
            if self.size > self.max_frame_length:
                raise FailedConnectionError(1009, "Message is too big")
            super().push(data, final)

    def bounded(ws: Any, eio_socket: Any) -> Any:
        ws.Message = BoundedMessage  # eventlet makes each message with `self.Message(...)`

        def set_bound(max_message_bytes: int) -> None:
            ws.max_frame_length = max_message_bytes

        follow(eio_socket, set_bound)
        ws._apply_mask = unmask
        codes: list[int] = []  # eventlet closes with 1009 when a frame or a message is over the bound
        close = ws.close

        def close_noting_code(close_data: tuple[int, str] | None = None) -> None:
            if close_data is not None:
                codes.append(close_data[0])
            close(close_data)

        ws.close = close_noting_code
        return checked(ws, None, lambda: 1009 in codes)

    class EventletLimitedWebSocket(base):  # type: ignore[misc, valid-type]
        def __init__(self, handler: Callable[[Any], Any], server: Any) -> None:
            super().__init__(lambda ws: handler(bounded(ws, getattr(handler, "__self__", None))), server)
            self.max_frame_length = first_bound
            # hixie-75/76 websockets (no Sec-WebSocket-Version) have no size bound at all; no browser sends them
            self.support_legacy_versions = False

    return EventletLimitedWebSocket
