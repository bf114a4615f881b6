"""The client's time to first chunk (relay_client_first_chunk_seconds), taken without touching the chunks after it.

A delivery loop hands each event to its transport (an emit, a write) and then asks for the next: when it asks
for the second, the first has been handed on. So only the first event passes through code of ours; the rest
come straight from the reader, through `itertools.chain`, and relaying a chunk runs no metrics code.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator

from ..streams.events import Chunk, RelayEvent


def first_chunk_timed(events: Iterable[RelayEvent], since: float,
                      observe: Callable[[float], None]) -> Iterator[RelayEvent]:
    """`events` as they are; `observe(seconds from since)` once the first, if it is a chunk, has been handed on."""
    rest = iter(events)
    return itertools.chain(_first(rest, since, observe), rest)


def _first(events: Iterator[RelayEvent], since: float, observe: Callable[[float], None]) -> Iterator[RelayEvent]:
    for event in events:
        yield event
        if isinstance(event, Chunk):  # not an error that came first: no chunk was delivered
            observe(time.monotonic() - since)
        return
