"""An HTTP delivery always ends with one terminal event, even when reading its stream fails with a bug."""

from __future__ import annotations

from collections.abc import Iterator

from chat_relay.errors import ErrorCode
from chat_relay.streams.events import Chunk, Done, Failed, RelayEvent
from chat_relay.transports.http_routes import _ending_with_a_terminal


def failing(events: list[RelayEvent]) -> Iterator[RelayEvent]:
    yield from events
    raise RuntimeError("a bug")


def test_a_bug_mid_stream_ends_it_with_internal_after_what_was_sent() -> None:
    got = list(_ending_with_a_terminal(failing([Chunk("a ", 0), Chunk("b ", 1)]), "s"))
    assert got[:2] == [Chunk("a ", 0), Chunk("b ", 1)]
    assert len(got) == 3 and isinstance(got[2], Failed)
    assert got[2].code is ErrorCode.INTERNAL and got[2].chunks == 2 and "a bug" not in got[2].message


def test_a_bug_after_the_terminal_adds_no_second_one() -> None:
    got = list(_ending_with_a_terminal(failing([Chunk("a ", 0), Done("stop", 1, None)]), "s"))
    assert got == [Chunk("a ", 0), Done("stop", 1, None)]
