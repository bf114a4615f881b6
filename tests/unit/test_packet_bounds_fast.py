"""A binary event's attachments are bounded in count and in bytes together
(chat_relay/transports/tolerant_packets.py)."""

from __future__ import annotations

import pytest

from chat_relay.config import MAX_ATTACHMENTS
from chat_relay.transports.tolerant_packets import PacketTooLarge, tolerant_packet

Packet = tolerant_packet("chatgpt_description", max_bytes=1000)
PLACEHOLDER = '{"_placeholder":true,"num":%d}'


def binary_event(count: int) -> str:
    return f'5{count}-["chatgpt_description",{",".join(PLACEHOLDER % i for i in range(count))}]'


def test_as_many_attachments_as_allowed_are_taken() -> None:
    packet = Packet(encoded_packet=binary_event(MAX_ATTACHMENTS))
    complete = [packet.add_attachment(b"x" * 10) for _ in range(MAX_ATTACHMENTS)]
    assert complete == [False] * (MAX_ATTACHMENTS - 1) + [True]
    assert packet.data == ["chatgpt_description", *([b"x" * 10] * MAX_ATTACHMENTS)]


@pytest.mark.parametrize("announced", ["17", "9999999"])
def test_more_attachments_announced_than_allowed(announced: str) -> None:
    with pytest.raises(PacketTooLarge):
        Packet(encoded_packet=f'5{announced}-["chatgpt_description",{PLACEHOLDER % 0}]')


def test_attachments_over_the_bytes_bound_together() -> None:
    packet = Packet(encoded_packet=binary_event(2))
    assert packet.add_attachment(b"x" * 600) is False
    with pytest.raises(PacketTooLarge):
        packet.add_attachment(b"x" * 401)


def test_attachments_up_to_the_bytes_bound() -> None:
    packet = Packet(encoded_packet=binary_event(2))
    assert packet.add_attachment(b"x" * 600) is False
    assert packet.add_attachment(b"x" * 400) is True
