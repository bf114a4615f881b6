"""Socket.IO packets whose JSON cannot be read (malformed, or nested too deep) become a request the handler refuses.

python-socketio would otherwise drop such a packet with a logged traceback and never answer its ack, so
the client would wait forever. Decoded this way, the client gets an `invalid_request` ack instead.
"""

from __future__ import annotations

from socketio.packet import Packet

REQUEST_EVENT = "chatgpt_description"


class Undecodable:
    """Stands in for the payload of a packet that was not valid JSON."""

    def __repr__(self) -> str:
        return "<undecodable JSON>"


class TolerantPacket(Packet):
    """The default packet, except that unreadable JSON decodes to (REQUEST_EVENT, Undecodable())."""

    def decode(self, encoded_packet: str | bytes) -> int:
        try:
            return super().decode(encoded_packet)
        except (ValueError, RecursionError):  # type, namespace and ack id were read before the JSON
            self.data = [REQUEST_EVENT, Undecodable()]
            return 0
