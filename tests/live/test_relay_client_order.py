"""relay_client over Socket.IO hands a reply's events on in the order they came, however late its thread runs:
a chunk never overtakes the one before (a protocol error) and `done` never overtakes the last chunk (lost text)."""

from __future__ import annotations

from relay_client import RelayClient
from tests.conftest import LiveServer
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import check_cursor

PIECES = [f"r{i} " for i in range(120)]


def test_a_reply_held_up_on_the_client_arrives_whole_and_in_order(live_server: LiveServer, gate: str,
                                                                   fake_upstream: FakeUpstream) -> None:
    completed = fake_upstream.completed
    prompt = controls(text=PIECES, delay=0.001, gate=gate, hold_after=0)  # nothing until the gate opens
    with RelayClient(live_server.url, transport="socketio", timeout=15) as client, client.stream(prompt) as reply:
        # The client's routing is busy (this test holds its lock) while the whole reply arrives.
        with client._sio._lock:  # type: ignore[union-attr]
            fake_upstream.open_gate(gate)
            assert fake_upstream.wait_for(lambda f: f.completed > completed, timeout=20)
        chunks = [(chunk.seq, chunk.text) for chunk in reply.chunks()]
    assert reply.done is not None and reply.done.finish_reason == "stop"
    check_cursor(chunks, PIECES, {"chunks": reply.done.chunks})
    assert reply.text == "".join(PIECES)
