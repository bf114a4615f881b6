"""The gevent driver: greenlets, interrupted through the hub, sockets waited on with gevent's select, and
simple-websocket bounded, read fairly and shut down when closed (`bounded_websocket`)."""

from __future__ import annotations

import contextlib
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


# The websocket: engine.io's is simple-websocket's, read from a socket that gunicorn's worker hands over.

CLOSE_GRACE = 2.0  # seconds a client has to answer the server's close frame before its socket is shut down


class FairReads:
    """simple-websocket's socket under gevent: reads that let other green threads run, and that stop at close.

    - gevent's `recv` returns at once when bytes are waiting, without a switch: a client that sends without
      pause kept simple-websocket's reader running, queueing whole messages that engine.io's reader never got
      to take (60 MB from one client), while every other client waited. Each read yields first.
    - simple-websocket's `close()` does not stop its reader: the reader's next message sets `connected` back,
      and a client that keeps sending is read for as long as it sends. Once `closing`, at most
      AFTER_CLOSE more bytes are read (the client's own close frame, and what it sent before it), then a
      read is an end of file.
    """

    AFTER_CLOSE = 65_536

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.closing = False
        self._after_close = 0

    def recv(self, size: int, *flags: int) -> bytes:
        import gevent

        gevent.sleep(0)
        if self.closing:
            if self._after_close >= self.AFTER_CLOSE:
                return b""
            size = min(size, self.AFTER_CLOSE - self._after_close)
        data = bytes(self._sock.recv(size, *flags))
        if self.closing:
            self._after_close += len(data)
        return data

    def __getattr__(self, name: str) -> Any:  # send, shutdown, close...: the socket's own
        return getattr(self._sock, name)


def _shut_down_later(wsgi_ws: Any) -> None:
    """simple-websocket has sent its close frame: read nothing more, give a silent client CLOSE_GRACE seconds
    to close, then shut the socket down, which wakes simple-websocket's reader (its recv returns) and so ends
    the request and frees its connection."""
    import gevent

    server = getattr(wsgi_ws, "ws", None)  # simple_websocket.Server, once the handshake is done
    if server is None:
        return
    reads = getattr(wsgi_ws, "fair_reads", None)  # under gunicorn; gevent's own server (`python -m app`) has none
    if reads is not None:
        reads.closing = True

    def shut_down() -> None:
        server.thread.join(timeout=CLOSE_GRACE)  # it ends at once if the client answers or sends anything
        if not server.thread.dead:
            with contextlib.suppress(OSError):  # closed meanwhile
                server.sock.shutdown(socket.SHUT_RDWR)

    gevent.spawn(shut_down)


def _shut_down_when_closed(eio_socket: Any, wsgi_ws: Any) -> None:
    """When engine.io closes the session (a missed ping, a disconnect), close the websocket's socket too, even
    if engine.io's writer never gets to: it is stuck in a send to a client that reads nothing."""
    if eio_socket is None:
        return
    close = eio_socket.close

    def close_and_shut_down(*args: Any, **kwargs: Any) -> Any:
        try:
            return close(*args, **kwargs)
        finally:
            _shut_down_later(wsgi_ws)

    eio_socket.close = close_and_shut_down


def bounded_websocket(base: type, first_bound: int, checked: Callable[..., Any],
                      follow: Callable[[Any, Callable[[int], None]], None]) -> type:
    """engine.io's websocket class `base`, with simple-websocket's own `max_message_size` (it counts a message's
    bytes across its frames and closes with 1009 over it; it reads the attribute at each frame, so `follow` can
    raise it in place), fair reads, and a closed websocket's socket shut down after CLOSE_GRACE. Its handler is
    given `checked(ws, shut_down_later, too_big)`."""

    class GeventLimitedWebSocket(base):  # type: ignore[misc, valid-type]
        def __init__(self, handler: Callable[[Any], Any], server: Any) -> None:
            def checked_handler(ws: Any) -> Any:
                def too_big() -> bool:  # simple-websocket keeps the length of the message it refused
                    return bool(ws.ws.incoming_message_len > ws.ws.max_message_size)

                def set_bound(max_message_bytes: int) -> None:
                    ws.ws.max_message_size = max_message_bytes

                eio_socket = getattr(handler, "__self__", None)
                follow(eio_socket, set_bound)
                _shut_down_when_closed(eio_socket, ws)
                return handler(checked(ws, _shut_down_later, too_big))

            super().__init__(checked_handler, server)
            self.server_args["max_message_size"] = first_bound

        def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if "gunicorn.socket" in environ:
                self.fair_reads = FairReads(environ["gunicorn.socket"])
                environ = {**environ, "gunicorn.socket": self.fair_reads}
            return super().__call__(environ, start_response)

    return GeventLimitedWebSocket
