"""A client sees a stream's events in the order the server sent them, however long it takes over each one.

The probe the other tests use must record events in the order they came over the websocket
(relay_client/in_order.py): the cursor checks (docs/protocol.md, "The cursor") compare each chunk with the
one before, so a probe that let a later chunk overtake an earlier one would blame the server for it.
"""

from __future__ import annotations

from tests.clients import DONE, SioProbe
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import check_cursor

PIECES = [f"q{i} " for i in range(120)]


def test_events_are_recorded_in_the_order_they_came(sio_client: SioProbe, fake_upstream: FakeUpstream,
                                                     gate: str) -> None:
    """While the probe cannot record (this test holds its lock), the whole stream arrives; once it can, it
    records the chunks and the terminal as they came, not as a pool of waiting threads happens to wake."""
    completed = fake_upstream.completed
    prompt = controls(text=PIECES, delay=0.001, gate=gate, hold_after=0)  # nothing until the gate opens
    sio_client.start({"prompt": prompt, "stream_id": "held"})
    with sio_client._cond:  # the recorder is busy: every event that arrives now must wait its turn
        fake_upstream.open_gate(gate)
        assert fake_upstream.wait_for(lambda f: f.completed > completed, timeout=20)
    name, done = sio_client.wait_terminal("held")
    sio_client.settle()
    assert name == DONE and done["finish_reason"] == "stop"
    assert [n for n, _ in sio_client.events][-1] == DONE, "the terminal event came last"
    check_cursor(sio_client.chunks("held"), PIECES, done)
