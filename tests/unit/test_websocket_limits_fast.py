"""The pure parts of chat_relay/transports/websocket_limits.py (and eventlet's driver's unmasking) and the raw client
the hostile-frame tests write with."""

from __future__ import annotations

import os

import pytest
import websocket

from chat_relay.async_drivers.eventlet import unmask
from chat_relay.transports.websocket_limits import unreadable
from tests.raw_websocket import TEXT, frame


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 17, 126, 70_000])
@pytest.mark.parametrize("offset", [0, 1, 2, 3, 6])
def test_unmask_is_eventlets_own(length: int, offset: int) -> None:
    from eventlet.websocket import RFC6455WebSocket

    data, mask = os.urandom(length + 2), tuple(os.urandom(4))
    assert unmask(data, mask, length=length, offset=offset) == RFC6455WebSocket._apply_mask(
        data, mask, length=length, offset=offset)
    assert unmask(data, mask) == RFC6455WebSocket._apply_mask(data, mask)


@pytest.mark.parametrize("data", ["hello", "", "bad", "bA", "\x00"])
def test_what_engineio_cannot_read(data: str) -> None:
    from engineio.packet import Packet

    assert unreadable(data)
    with pytest.raises(ValueError):
        Packet(encoded_packet=data)


@pytest.mark.parametrize("data", ["2", "3", "40", '42["x",{}]', "4hello", "bAAAA", b"\x00\x01", None])
def test_what_engineio_reads(data: str | bytes | None) -> None:
    assert unreadable(data) is None


def test_raw_frames_are_what_websocket_client_sends() -> None:
    sent = websocket.ABNF.create_frame("hi", websocket.ABNF.OPCODE_TEXT)
    sent.get_mask_key = lambda n: b"\0\0\0\0"
    assert sent.format() == frame(TEXT, b"hi")
    long = websocket.ABNF.create_frame("x" * 70_000, websocket.ABNF.OPCODE_TEXT)
    long.get_mask_key = lambda n: b"\0\0\0\0"
    assert long.format() == frame(TEXT, b"x" * 70_000)
