"""Socket.IO event packets that cannot be a call of an event become a request the handler refuses.

An event's data must be a list whose first item is the event name. python-socketio trusts that: JSON it
cannot read is dropped with a logged traceback, and readable JSON of another shape (`{}`, `[]`, `[5]`,
`"x"`, `[{...}]`) fails inside it or names no handler, so the client never gets its ack and waits
forever. Decoded this way, such a packet reaches the request handler, which answers `invalid_request`.

A binary event (`45N-[...]` and then N binary messages) is held until its N attachments have come: N and
their bytes together are bounded (MAX_ATTACHMENTS, and engine.io's message bound), or a client could make the
server hold any number of megabytes, before auth too. Over either bound the packet raises PacketTooLarge,
and chat_relay/transports/bad_packets.py closes the connection.
"""

from __future__ import annotations

from typing import Any

from socketio.base_server import BaseServer
from socketio.packet import BINARY_EVENT, EVENT, Packet

from ..config import MAX_ATTACHMENTS, MAX_REQUEST_BYTES
from ..errors import ErrorCode, RelayError
from . import wire_json

REQUEST_EVENT = "chatgpt_description"


class Unreadable:
    """Stands in for the payload of an event packet that was not a call of an event; says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def error(self) -> RelayError:
        return RelayError(ErrorCode.INVALID_REQUEST, self.reason)

    def __repr__(self) -> str:  # never the client's data: it could hold a prompt, and this may be logged
        return "<unreadable Socket.IO event>"


NOT_JSON = "The Socket.IO packet is not valid JSON."
NOT_AN_EVENT = "The Socket.IO packet is not an event call: send a list of the event name and its argument."
RESERVED = "That event name is reserved for Socket.IO itself."


class PacketTooLarge(ValueError):
    """A binary packet announced more attachments than allowed, or its attachments passed the byte bound."""


class TolerantPacket(Packet):
    """The default packet, except that an event packet that is not a call decodes to (request_event, Unreadable)."""

    packet_type: int | str  # set by Packet, which is not annotated
    data: object
    request_event = REQUEST_EVENT
    json: Any = wire_json  # orjson for every packet written; its own, so other servers' packets are untouched
    # Our events never carry bytes: skip python-socketio's scan of every outgoing payload for them. Incoming
    # binary events are still decoded as such (decode() reads their type from the packet itself).
    uses_binary_events = False
    max_attachments = MAX_ATTACHMENTS
    max_bytes = MAX_REQUEST_BYTES  # all of one packet's attachments together; tolerant_packet sets the server's
    attached_bytes = 0

    def decode(self, encoded_packet: str | bytes) -> int:
        try:
            attachments = super().decode(encoded_packet)
            if attachments > self.max_attachments:
                raise PacketTooLarge(f"{attachments} attachments announced, more than {self.max_attachments}")
        except PacketTooLarge:
            raise
        except (ValueError, RecursionError, TypeError):  # type, namespace and ack id were read before the JSON
            if self.packet_type == BINARY_EVENT:
                self.packet_type = EVENT  # its attachments cannot be placed: answer now
            self._refuse(NOT_JSON)
            return 0
        if self.packet_type == BINARY_EVENT and not attachments:
            self.packet_type = EVENT  # nothing to wait for: python-socketio would take the next message as one
        if self.packet_type == EVENT:
            self._check_call()
        return attachments

    def add_attachment(self, attachment: bytes) -> bool:
        self.attached_bytes += len(attachment)
        if self.attached_bytes > self.max_bytes:
            raise PacketTooLarge(f"attachments of more than {self.max_bytes} bytes")
        try:
            complete: bool = super().add_attachment(attachment)
        except (KeyError, IndexError, TypeError):  # a placeholder naming no attachment
            self._refuse(NOT_AN_EVENT)
            return True
        if complete and self.packet_type == BINARY_EVENT:
            self._check_call()  # only now: the event name itself could have been an attachment
        return complete

    def _check_call(self) -> None:
        data = self.data
        if not (isinstance(data, list) and data and isinstance(data[0], str)):
            self._refuse(NOT_AN_EVENT)
        elif data[0] in BaseServer.reserved_events:  # `connect` or `disconnect` sent as an event would run its handler
            self._refuse(RESERVED)

    def _refuse(self, reason: str) -> None:
        self.data = [self.request_event, Unreadable(reason)]


def tolerant_packet(request_event: str, max_bytes: int = MAX_REQUEST_BYTES) -> type[TolerantPacket]:
    """The packet class for one server whose relay takes requests as `request_event` (chat_relay/extension.py): a class
    of its own, since python-socketio sets `json` on the class it is given. `max_bytes`: engine.io's message
    bound, which a packet's attachments share."""
    return type("TolerantPacket", (TolerantPacket,),
                {"request_event": request_event, "json": wire_json, "max_bytes": max_bytes})
