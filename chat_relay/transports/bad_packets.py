"""A Socket.IO packet python-socketio refuses to handle closes its connection, with one log line.

python-socketio raises ValueError for packets that break the protocol (a binary event before the connect,
an unknown packet type, a CONNECT_ERROR from a client) and for binary events over the bounds
(chat_relay/transports/tolerant_packets.py, PacketTooLarge). engine.io would log each with a traceback and keep the
connection open for the next one, so a client could fill the log, before auth too. Here the first one
closes the connection: no well-behaved client sends such a packet.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

from .tolerant_packets import PacketTooLarge

if TYPE_CHECKING:
    from flask_socketio import SocketIO

log = logging.getLogger(__name__)


def _from_socketio(err: ValueError) -> bool:
    """Raised by python-socketio's own parsing, not by a handler (a bug of ours, which keeps its traceback)."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and "/socketio/" in frames[-1].filename.replace("\\", "/")


def close_on_bad_packets(socketio: SocketIO) -> None:
    """Wrap engine.io's message handler (python-socketio's, and what chat_relay/middleware/connection_cap.py adds
    around it)."""
    eio = socketio.server.eio
    on_message = eio.handlers["message"]

    def message(eio_sid: str, data: Any) -> Any:
        try:
            return on_message(eio_sid, data)
        except ValueError as err:
            if not (isinstance(err, PacketTooLarge) or _from_socketio(err)):
                raise
            session = eio.sockets.get(eio_sid)
            peer = (socketio.server.environ.get(eio_sid) or {}).get("REMOTE_ADDR", "unknown")
            log.info("Socket.IO connection from %s closed: bad packet (%s)", peer, err)
            if session is not None:
                session.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
            return None

    eio.on("message", message)
