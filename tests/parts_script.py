"""A scripted reply with every kind of part, and what clients see of it on each transport, for the tests of
typed parts (tests/live/test_parts.py, tests/e2e/test_parts_shared.py): one step of the fake upstream's script
is one piece, written out beside it."""

from __future__ import annotations

import json
from typing import Any

import requests

from chat_relay.streams.parts import Piece, merged
from tests.clients import DONE, SioProbe, stream_lines
from tests.conftest import LiveServer
from tests.fake_upstream import FakeUpstream, controls, script_reply

NDJSON, SSE = "application/x-ndjson", "text/event-stream"
TRANSPORTS = ["socketio", "ndjson", "sse"]

# One step, one piece: the expected pieces are written out beside the script the fake streams.
STEPS: list[tuple[tuple, Piece]] = [
    (("reasoning_content", "The user"), {"type": "reasoning", "text": "The user"}),
    (("reasoning_content", " wants"), {"type": "reasoning", "text": " wants"}),
    (("reasoning", " the weather."), {"type": "reasoning", "text": " the weather."}),
    (("tool", 0, "call_w", "get_weather", ""),
     {"type": "tool_call", "index": 0, "id": "call_w", "name": "get_weather", "arguments": ""}),
    (("tool", 0, None, None, '{"city":'), {"type": "tool_call", "index": 0, "arguments": '{"city":'}),
    (("tool", 1, "call_t", "get_time", '{"tz":'),
     {"type": "tool_call", "index": 1, "id": "call_t", "name": "get_time", "arguments": '{"tz":'}),
    (("tool", 0, None, None, ' "Oslo"}'), {"type": "tool_call", "index": 0, "arguments": ' "Oslo"}'}),
    (("tool", 1, None, None, ' "CET"}'), {"type": "tool_call", "index": 1, "arguments": ' "CET"}'}),
    (("refusal", "I won't"), {"type": "refusal", "text": "I won't"}),
    (("refusal", " guess."), {"type": "refusal", "text": " guess."}),
    (("text", "It is "), "It is "),
    (("text", "sunny\n"), "sunny\n"),
    (("text", "in Oslo."), "in Oslo."),
]
PIECES = [piece for _, piece in STEPS]
DELTAS = script_reply(*(step for step, _ in STEPS))
CALLS = [{"id": "call_w", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
         {"id": "call_t", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}}]
DETAILS = {"completion_tokens_details": {"reasoning_tokens": 3}, "prompt_tokens_details": {"cached_tokens": 2}}
# Cursors in the middle of each kind: reasoning, a tool call's arguments, the refusal, the text.
MID_KIND = [0, 4, 8, 10]


def scripted(**extra: Any) -> str:
    return controls(deltas=DELTAS, finish_reason="tool_calls", usage_details=DETAILS, **extra)


# What a client sees, the same shape for every transport: [(seq, text, parts or None)], then the terminal.

Seen = list[tuple[int, str, list | None]]


def sio_chunks(probe: SioProbe, stream_id: str) -> Seen:
    with probe._cond:
        return [(meta["seq"], text, meta.get("parts")) for name, (text, meta) in probe._of("chatgpt_description_chunk")
                if meta["stream_id"] == stream_id]


def read_ndjson(response: requests.Response) -> tuple[Seen, dict]:
    chunks: Seen = []
    for line in stream_lines(response):
        if not line:
            continue
        event = json.loads(line)
        if event["type"] != "chunk":
            return chunks, event
        assert set(event) <= {"type", "text", "seq", "parts"}
        chunks.append((event["seq"], event["text"], event.get("parts")))
    raise AssertionError("no terminal line")


def read_sse(response: requests.Response) -> tuple[Seen, dict]:
    chunks: Seen = []
    fields: dict[str, str] = {}
    for line in stream_lines(response):
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        data = json.loads(fields["data"])
        if fields["event"] != "chunk":
            return chunks, {"type": fields["event"], **data}
        assert int(fields["id"]) == data["seq"] and set(data) <= {"text", "seq", "parts"}
        chunks.append((data["seq"], data["text"], data.get("parts")))
        fields = {}
    raise AssertionError("no terminal event")


def check_chunks(chunks: Seen, pieces: list[Piece], after: int = -1) -> None:
    """Each chunk is exactly the pieces after the previous one's seq through its own, merged by kind, and `parts`
    is absent exactly when they are all text; the last chunk holds the last piece."""
    assert chunks, "no chunk arrived"
    previous = after
    for seq, text, parts in chunks:
        assert seq > previous, [c[0] for c in chunks]
        want_text, want_parts = merged(pieces[previous + 1:seq + 1])
        assert text == want_text, seq
        assert parts == (None if all(p["type"] == "text" for p in want_parts) else want_parts), seq
        previous = seq
    assert previous == len(pieces) - 1


def check_exact(chunks: Seen, done: dict, after: int = -1) -> None:
    """The script's pieces exactly, from `after` on; the terminal is done, with the calls whole and the usage
    details."""
    check_chunks(chunks, PIECES, after)
    assert done["type"] == "done" and done["finish_reason"] == "tool_calls" and done["chunks"] == len(PIECES)
    assert done["tool_calls"] == CALLS
    assert done["usage"]["reasoning_tokens"] == 3 and done["usage"]["cached_tokens"] == 2


def held_stream(server: LiveServer, gate: str, stream_id: str) -> tuple[SioProbe, str]:
    """A scripted stream that stops before its last piece until `gate` opens; its first reader has seen all but
    that piece."""
    probe = SioProbe(server.url)
    ack = probe.client.call("chatgpt_description", {"prompt": scripted(gate=gate, hold_after=len(PIECES) - 1,
                                                                        heartbeat=0.3), "stream_id": stream_id})
    assert ack["stream_id"] == stream_id
    probe.wait_chunks(stream_id, len(PIECES) - 1)
    return probe, ack["resume_token"]


def resume_everywhere(fake: FakeUpstream, gate: str, stream_id: str, token: str,
                      servers: list[LiveServer]) -> None:
    """From each mid-kind cursor, on each server and each transport, the rest of the stream arrives exactly."""
    probes: list[tuple[SioProbe, int]] = []
    responses: list[tuple[requests.Response, int, str]] = []
    try:
        for server in servers:
            for cursor in MID_KIND:
                probe = SioProbe(server.url)
                probes.append((probe, cursor))
                assert probe.resume(stream_id, cursor, token) == {"stream_id": stream_id}
                for accept in (NDJSON, SSE):
                    response = requests.get(f"{server.url}/message/stream/{stream_id}?after_seq={cursor}",
                                            headers={"Accept": accept, "X-Resume-Token": token}, stream=True,
                                            timeout=20)
                    assert response.status_code == 200
                    responses.append((response, cursor, accept))
        fake.open_gate(gate)
        for probe, cursor in probes:
            name, done = probe.wait_terminal(stream_id)
            probe.settle()
            assert name == DONE and len(probe.terminals(stream_id)) == 1
            check_exact(sio_chunks(probe, stream_id), {"type": "done", **done}, after=cursor)
        for response, cursor, accept in responses:
            chunks, done = (read_ndjson if accept == NDJSON else read_sse)(response)
            check_exact(chunks, done, after=cursor)
    finally:
        for probe, _ in probes:
            probe.close()
        for response, _, _ in responses:
            response.close()
