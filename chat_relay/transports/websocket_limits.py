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
  within CLOSE_GRACE seconds (chat_relay/async_drivers/gevent.py) has its socket shut down. eventlet's socket
  has engine.io's read timeout.
- Fairness. Neither gevent's nor eventlet's `recv` switches to another green thread while bytes are waiting:
  one client sending without pause held the worker, and (gevent) queued whole messages faster than engine.io
  took them. Here reads yield. eventlet's unmasking, one Python object per byte, is replaced by one in C.
- Frames engine.io cannot read. A text frame that is no engine.io packet (`hello`) raised out of engine.io's
  handler: a traceback per frame, and an HTTP 500 written into the websocket. Here it ends the connection.

Each connection ended here, or for a message over the bound, logs one line. Installed into engine.io around
its websocket class for the async mode, as chat_relay/transports/websocket_frames.py is. What differs by mode
(the bound's mechanism, fair reads, shutting a socket down, the unmasking) is each driver's `bounded_websocket`
in chat_relay/async_drivers/; what is common (CheckedWebSocket) is here, and the driver is asked for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..async_drivers import AsyncDriver, FollowBound

log = logging.getLogger(__name__)


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


def install(eio_server: Any, max_message_bytes: int, driver: AsyncDriver,
            follow: FollowBound = lambda eio_socket, set_bound: None) -> None:
    """Wrap engine.io's websocket class, in `driver`'s way (chat_relay/async_drivers/), so that messages are
    bounded to `max_message_bytes` across their frames (or to what `follow(eio_socket, set_bound)` sets for the
    connection: chat_relay/access/message_bound.py), unreadable frames end the connection, and a closed
    websocket's socket is closed. Modes without green tasks (threading) are left as they are."""
    base = eio_server._async.get("websocket")
    if base is None:
        return

    def checked(ws: Any, shut_down_later: Callable[[Any], None] | None, too_big: Callable[[], bool]) -> Any:
        return CheckedWebSocket(ws, shut_down_later, eio_server.sleep, too_big)

    limited = driver.bounded_websocket(base, max_message_bytes, checked, follow)
    if limited is base:
        return
    # engine.io's table of async primitives may be the driver module's own dict: copy it, never change it.
    eio_server._async = {**eio_server._async, "websocket": limited}
