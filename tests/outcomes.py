"""Run one request to its end over either transport and describe what the client saw, the same way for both."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import requests

from tests.clients import CHUNK, DONE, ERROR, SioProbe, ndjson_events

TRANSPORTS = ["socketio", "http"]


@dataclass
class Outcome:
    """What one client saw of one request: text, terminal events, and everything visible, for leak checks."""

    text: str
    terminals: list[dict]  # each with "type": "done" or "error"
    status: int | None = None  # HTTP status; None over Socket.IO
    headers: Mapping[str, str] = field(default_factory=dict)
    visible: str = ""
    parts: list[dict] = field(default_factory=list)  # every chunk's (a text-only chunk's text as a text part), joined

    @property
    def terminal(self) -> dict:
        assert len(self.terminals) == 1, f"expected exactly one terminal event, got {self.terminals}"
        return self.terminals[0]


def check_cursor(chunks: list[tuple[int, str]], pieces: list[str] | None = None,
                 terminal: Mapping[str, object] | None = None, with_parts: Collection[int] = ()) -> None:
    """The protocol's cursor (docs/protocol.md): seq strictly increasing, every text non-empty (but a chunk's whose
    seq is in `with_parts`: one that carries `parts` may have no text), and each chunk exactly the pieces after the
    previous chunk's seq up to its own; `done.chunks` is the last seq + 1.

    `pieces` are the upstream's texts in order (empty ones are never numbered); with them, each chunk is
    checked piece by piece, which holds however the server batched them.
    """
    numbered = [piece for piece in pieces if piece] if pieces is not None else None
    previous = -1
    for seq, text in chunks:
        assert isinstance(seq, int) and seq > previous, f"seq must strictly increase: {[s for s, _ in chunks]}"
        assert isinstance(text, str) and (text or seq in with_parts), "a chunk's text is never empty without parts"
        if numbered is not None:
            assert text == "".join(numbered[previous + 1:seq + 1]), f"chunk {seq} is not pieces {previous + 1}..{seq}"
        previous = seq
    if terminal is not None and terminal.get("type", "done") == "done" and "chunks" in terminal:
        assert terminal["chunks"] == previous + 1, f"done.chunks {terminal['chunks']} is not the last seq + 1"


def run_socketio(probe: SioProbe, payload: dict, timeout: float = 20) -> Outcome:
    """Start a stream, wait for its terminal event, then a round trip so any stray second terminal shows."""
    stream_id = payload["stream_id"]
    ack = probe.start(payload)
    if "error" in ack:
        probe.wait(lambda p: any(n == ERROR for n, _ in p.events), timeout)
        probe.settle()
        return Outcome("", [{"type": "error", **ack["error"]}], visible=repr(ack) + repr(probe.events))
    probe.wait_terminal(stream_id, timeout)
    probe.settle()
    chunks = probe.chunks(stream_id)
    terminals = [{"type": "done" if name == DONE else "error", **p} for name, p in probe.terminals(stream_id)]
    chunk_events = [payload for name, payload in probe.events if name == CHUNK and payload[1]["stream_id"] == stream_id]
    check_cursor(chunks, terminal=terminals[0] if len(terminals) == 1 else None,
                 with_parts={meta["seq"] for _, meta in chunk_events if "parts" in meta})
    parts = joined_parts([(text, meta.get("parts")) for text, meta in chunk_events])
    return Outcome("".join(t for _, t in chunks), terminals, visible=repr(ack) + repr(probe.events), parts=parts)


def run_http(base_url: str, payload: dict, headers: dict[str, str] | None = None, timeout: float = 20) -> Outcome:
    """POST and read NDJSON to the end; an error before streaming is a status and a JSON body."""
    with requests.post(f"{base_url}/message/stream", json=payload, stream=True, timeout=timeout,
                       headers={"Accept": "application/x-ndjson", **(headers or {})}) as response:
        status, head = response.status_code, response.headers  # case-insensitive
        if status != 200:
            body = response.text
            return Outcome("", [{"type": "error", **json.loads(body)["error"]}], status, head, repr(dict(head)) + body)
        events = list(ndjson_events(response))
    chunks = [e for e in events if e["type"] == "chunk"]
    terminals = [e for e in events if e["type"] != "chunk"]
    check_cursor([(c["seq"], c["text"]) for c in chunks], terminal=terminals[0] if len(terminals) == 1 else None,
                 with_parts={c["seq"] for c in chunks if "parts" in c})
    assert events[-1] in terminals, "the terminal line must be the last one"
    return Outcome("".join(c["text"] for c in chunks), terminals, status, head, repr(dict(head)) + repr(events),
                   joined_parts([(c["text"], c.get("parts")) for c in chunks]))


def joined_parts(chunks: list[tuple[str, list[dict] | None]]) -> list[dict]:
    """The chunks' parts as a reader joins them, however they were batched: adjacent text, and the fragments of one
    call (one index), joined; a tool's result or error whole."""
    out: list[dict] = []
    for text, parts in chunks:
        for part in parts if parts is not None else [{"type": "text", "text": text}]:
            last = out[-1] if out else None
            if last and last["type"] == part["type"] == "text":
                last["text"] += part["text"]
            elif last and last["type"] == part["type"] == "tool_call" and last["index"] == part["index"]:
                last.update({key: value for key, value in part.items() if key in ("id", "name") and value})
                last["arguments"] += part["arguments"]
            else:
                out.append(dict(part))
    return out
