"""Coalescing keeps every guarantee, on both transports and in both modes (docs/protocol.md, "The cursor").

- A burst (the upstream writes many pieces at once) reaches the client as fewer chunks, with the exact text.
- In lockstep (the upstream sends a piece only once the client has the one before), every piece is its
  own chunk and leaves at once: nothing is held back waiting for more. A relay that held text back would
  never see the next piece, and the test would time out.
"""

from __future__ import annotations

import pytest

from tests.clients import DONE, SioProbe, ndjson_events, post_stream
from tests.conftest import LiveServer
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import check_cursor

NDJSON = "application/x-ndjson"
PIECES = [f"p{i} " for i in range(300)]


def test_a_burst_goes_out_as_fewer_chunks_over_socketio(sio_client: SioProbe) -> None:
    for round_no in range(3):
        stream_id = f"burst{round_no}"
        sio_client.start({"prompt": controls(text=PIECES, burst=True), "stream_id": stream_id})
        name, done = sio_client.wait_terminal(stream_id)
        chunks = sio_client.chunks(stream_id)
        assert name == DONE and done["finish_reason"] == "stop"
        check_cursor(chunks, PIECES, done)
        assert "".join(text for _, text in chunks) == "".join(PIECES)
        assert len(chunks) < len(PIECES), "a burst should be merged into fewer events"


def test_a_burst_goes_out_as_fewer_chunks_over_http(live_server: LiveServer) -> None:
    for _ in range(3):
        with post_stream(live_server.url, {"prompt": controls(text=PIECES, burst=True)}, accept=NDJSON) as response:
            *chunks, done = ndjson_events(response)
        assert done["type"] == "done" and done["finish_reason"] == "stop"
        check_cursor([(c["seq"], c["text"]) for c in chunks], PIECES, done)
        assert len(chunks) < len(PIECES), "a burst should be merged into fewer lines"


def test_in_lockstep_every_piece_is_its_own_chunk_over_socketio(
    sio_client: SioProbe, fake_upstream: FakeUpstream, gate: str
) -> None:
    pieces = PIECES[:20]
    sio_client.start({"prompt": controls(text=pieces, lockstep=gate), "stream_id": "step"})
    for seq in range(len(pieces)):
        sio_client.wait_chunks("step", seq + 1)
        fake_upstream.open_gate(f"{gate}:{seq + 1}")  # only now may the fake send the next piece
    name, done = sio_client.wait_terminal("step")
    assert name == DONE and done["chunks"] == len(pieces)
    assert sio_client.chunks("step") == list(enumerate(pieces))


def test_in_lockstep_every_piece_is_its_own_chunk_over_http(
    live_server: LiveServer, fake_upstream: FakeUpstream, gate: str
) -> None:
    pieces = PIECES[:20]
    lines = []
    with post_stream(live_server.url, {"prompt": controls(text=pieces, lockstep=gate)}, accept=NDJSON) as response:
        for line in ndjson_events(response):
            lines.append(line)
            if line["type"] == "chunk":
                fake_upstream.open_gate(f"{gate}:{line['seq'] + 1}")
    *chunks, done = lines
    assert [(c["seq"], c["text"]) for c in chunks] == list(enumerate(pieces))
    assert done["type"] == "done" and done["chunks"] == len(pieces)


@pytest.mark.parametrize("transport", ["socketio", "http"])
def test_stop_after_a_burst_still_ends_with_one_terminal(live_server: LiveServer, sio_client: SioProbe,
                                                         fake_upstream: FakeUpstream, gate: str,
                                                         transport: str) -> None:
    """A stop while merged text is waiting: the client still gets one terminal event, and the upstream closes."""
    aborted = fake_upstream.aborted
    prompt = controls(chunks=40, gate=gate, hold_after=30, heartbeat=0.3)
    if transport == "socketio":
        sio_client.start({"prompt": prompt, "stream_id": "held"})
        sio_client.wait_chunks("held", 30)
        sio_client.stop("held")
        name, done = sio_client.wait_terminal("held")
        sio_client.settle()
        assert name == DONE and done["finish_reason"] == "cancelled" and len(sio_client.terminals("held")) == 1
        check_cursor(sio_client.chunks("held"), [f"w{i} " for i in range(40)], done)
    else:
        response = post_stream(live_server.url, {"prompt": prompt}, accept=NDJSON)
        events = ndjson_events(response)
        seen = next(events)
        while seen["seq"] < 29:
            seen = next(events)
        response.close()
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=5)
    fake_upstream.open_gate(gate)
