"""What a websocket client can make the server hold, and for how long: in both modes, before auth and after.

- Bytes. engine.io checks `max_http_buffer_size` only on a whole message, once it has been read: a client
  that sends continuation frames and never finishes its message would be buffered without end. Here the
  bound holds per frame and across a message's frames. Under gevent, simple-websocket is given its own
  `max_message_size`; under eventlet, each message counts its fragments (eventlet bounds only one frame),
  and hixie-76 websockets, which have no bound at all, are refused. Over the bound the connection is closed
  (close code 1009). A binary event's attachments are bounded in chat_relay/transports/tolerant_packets.py.
- Sockets. Under gevent, simple-websocket's `close()` sends the close frame but neither stops nor wakes its
  reader, which waits in `recv()` with no timeout: a client that never reads, never answers a ping and never
  closes (or ignores the close frame at shutdown) would hold its socket, and its worker connection, for
  ever. Here nothing more is read once the websocket is closed, and a client that has not closed its side
  within CLOSE_GRACE seconds has its socket shut down. eventlet's socket has engine.io's read timeout.
- Fairness. Neither gevent's nor eventlet's `recv` switches to another green thread while bytes are waiting:
  one client sending without pause held the worker, and (gevent) queued whole messages faster than engine.io
  took them. Here reads yield. eventlet's unmasking, one Python object per byte, is replaced by one in C.
- Frames engine.io cannot read. A text frame that is no engine.io packet (`hello`) raised out of engine.io's
  handler: a traceback per frame, and an HTTP 500 written into the websocket. Here it ends the connection.

Each connection ended here, or for a message over the bound, logs one line. Installed into engine.io around
its websocket class for the async mode, as chat_relay/transports/websocket_frames.py is.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

CLOSE_GRACE = 2.0  # seconds a client has to answer the server's close frame before its socket is shut down


def unreadable(data: str | bytes | None) -> str | None:
    """Why engine.io could not decode `data` as a packet (engineio.packet.Packet.decode), or None if it can."""
    if data is None or not isinstance(data, str):
        return None  # the end of the connection, or a binary frame: a MESSAGE packet
    if not data:
        return "an empty text frame"
    if data[0] == "b":  # base64 binary, which engine.io 4 clients never send over a websocket
        from engineio.packet import Packet

        try:
            Packet(encoded_packet=data)
        except ValueError:
            return "a text frame that is not an engine.io packet"
        return None
    if not data[0].isdigit():
        return "a text frame that is not an engine.io packet"
    return None


class CheckedWebSocket:
    """The websocket engine.io's handler reads from: one that ends (returns None) at a frame it cannot read,
    and shuts its socket down if the client does not answer the server's close frame."""

    def __init__(self, ws: Any, shut_down_later: Callable[[Any], None] | None, sleep: Callable[[float], None],
                 too_big: Callable[[], bool]) -> None:
        self._ws = ws
        self._too_big = too_big  # the websocket ended because a message passed the bound
        self._sleep = sleep
        self._shut_down_later = shut_down_later
        self._peer = _peer(ws)
        self._closed = False

    def wait(self) -> Any:
        # Let the rest run between two messages (eventlet's recv, like gevent's, does not switch when bytes are
        # waiting): the writer, which closes this connection when it is over a bound, and the other clients.
        self._sleep(0)
        if self._closed:  # eventlet's close() leaves the socket readable (its makefile holds it open)
            return None
        data = self._ws.wait()
        why = "a message over the size bound" if data is None and self._too_big() else unreadable(data)
        if why is not None:
            # One line, then the connection ends: a client sending garbage gets no second one.
            log.info("websocket from %s closed: %s", self._peer, why)
            return None  # engine.io's handler ends, and its writer closes the websocket
        return data

    def close(self) -> None:
        if self._closed:  # eventlet's close() of a closed socket logs an error
            return
        self._closed = True
        self._ws.close()
        if self._shut_down_later is not None:
            self._shut_down_later(self._ws)

    def __getattr__(self, name: str) -> Any:  # send, and the socket engine.io gives a timeout to
        return getattr(self._ws, name)


def _peer(ws: Any) -> str:
    environ = getattr(ws, "environ", None) or getattr(getattr(ws, "ws", None), "environ", None) or {}
    return str(environ.get("REMOTE_ADDR") or "unknown")


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


def _gevent_shut_down_later(wsgi_ws: Any) -> None:
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
    if engine.io's writer never gets to: it is stuck in a send to a client that reads nothing (gevent)."""
    if eio_socket is None:
        return
    close = eio_socket.close

    def close_and_shut_down(*args: Any, **kwargs: Any) -> Any:
        try:
            return close(*args, **kwargs)
        finally:
            _gevent_shut_down_later(wsgi_ws)

    eio_socket.close = close_and_shut_down


def unmask(data: bytes, mask: tuple[int, ...], length: int | None = None, offset: int = 0) -> bytes:
    """eventlet's `_apply_mask`, in C: eventlet's own builds one bytes object per byte of the frame, so a
    1 MB frame took a second of CPU and some 60 MB of memory while it was read."""
    length = len(data) if length is None else length
    key = bytes(mask[(offset + i) % 4] for i in range(4))
    stream = (key * (length // 4 + 1))[:length]
    return (int.from_bytes(data[:length], "big") ^ int.from_bytes(stream, "big")).to_bytes(length, "big")


def install(eio_server: Any, max_message_bytes: int) -> None:
    """Wrap engine.io's websocket class (gevent or eventlet) so that messages are bounded to
    `max_message_bytes` across their frames, unreadable frames end the connection, and a closed websocket's
    socket is closed. Other modes are left as they are."""
    base = eio_server._async.get("websocket")
    mode = eio_server.async_mode
    if mode not in ("gevent", "eventlet") or base is None:
        return

    if mode == "gevent":
        class GeventLimitedWebSocket(base):  # type: ignore[misc, valid-type]
            def __init__(self, handler: Callable[[Any], Any], server: Any) -> None:
                def checked(ws: Any) -> Any:
                    def too_big() -> bool:  # simple-websocket keeps the length of the message it refused
                        return bool(ws.ws.incoming_message_len > max_message_bytes)

                    _shut_down_when_closed(getattr(handler, "__self__", None), ws)
                    return handler(CheckedWebSocket(ws, _gevent_shut_down_later, server.sleep, too_big))

                super().__init__(checked, server)
                # simple-websocket counts a message's bytes across its frames and closes with 1009 over this
                self.server_args["max_message_size"] = max_message_bytes

            def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
                if "gunicorn.socket" in environ:
                    self.fair_reads = FairReads(environ["gunicorn.socket"])
                    environ = {**environ, "gunicorn.socket": self.fair_reads}
                return super().__call__(environ, start_response)

        limited: type = GeventLimitedWebSocket
    else:
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

        def bounded(ws: Any) -> CheckedWebSocket:
            ws.Message = BoundedMessage  # eventlet makes each message with `self.Message(...)`
            ws._apply_mask = unmask
            codes: list[int] = []  # eventlet closes with 1009 when a frame or a message is over the bound
            close = ws.close

            def close_noting_code(close_data: tuple[int, str] | None = None) -> None:
                if close_data is not None:
                    codes.append(close_data[0])
                close(close_data)

            ws.close = close_noting_code
            return CheckedWebSocket(ws, None, eio_server.sleep, lambda: 1009 in codes)

        class EventletLimitedWebSocket(base):  # type: ignore[misc, valid-type]
            def __init__(self, handler: Callable[[Any], Any], server: Any) -> None:
                super().__init__(lambda ws: handler(bounded(ws)), server)
                self.max_frame_length = max_message_bytes
                # hixie-75/76 websockets (no Sec-WebSocket-Version) have no size bound at all; no browser sends them
                self.support_legacy_versions = False

        limited = EventletLimitedWebSocket

    # engine.io's table of async primitives may be the driver module's own dict: copy it, never change it.
    eio_server._async = {**eio_server._async, "websocket": limited}
