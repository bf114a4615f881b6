"""A server-side tool's parts (docs/protocol.md, "Server-side tools") on every wire, without a server: the NDJSON
and SSE bodies carry them as they are, text/plain leaves them out, and the buffer hands them on whole, from any
cursor, in memory and through the Redis log's JSON."""

from __future__ import annotations

import json
import threading

import orjson

from chat_relay.streams.events import Done
from chat_relay.streams.parts import Piece
from chat_relay.streams.stream_buffer import StreamBuffer
from chat_relay.transports.http_body_formats import ndjson, plain_text, server_sent_events

CALL = {"type": "tool_call", "index": 0, "id": "c1", "name": "city_population", "arguments": '{"city": "Oslo"}'}
RESULT = {"type": "tool_result", "id": "c1", "name": "city_population", "result": {"city": "Oslo", "n": [1, "é"]}}
SECOND = {"type": "tool_result", "id": "c3", "name": "add", "result": 5}  # two results in a row: never merged
ERROR = {"type": "tool_error", "id": "c2", "name": "add", "message": "Tool 'add' failed."}
PIECES: list[Piece] = [CALL, RESULT, SECOND, ERROR, "Oslo ", "it is."]


def buffer_of(pieces: list[Piece]) -> StreamBuffer:
    buffer = StreamBuffer("s1", threading.Event)
    for piece in pieces:
        buffer.append(piece)
    buffer.end(Done("stop", len(pieces), None))
    return buffer


def events_after(buffer: StreamBuffer, cursor: int) -> list:
    return list(buffer.follow(cursor))


def test_ndjson_and_sse_carry_the_parts_and_text_plain_leaves_them_out() -> None:
    events = events_after(buffer_of(PIECES), -1)  # all waiting: one chunk
    lines = [json.loads(line) for line in b"".join(ndjson("s1", events)).decode().splitlines()]
    assert lines[0] == {"type": "chunk", "text": "Oslo it is.", "seq": 5,
                        "parts": [CALL, RESULT, SECOND, ERROR, {"type": "text", "text": "Oslo it is."}]}
    sse = b"".join(server_sent_events("s1", events)).decode()
    data = json.loads(sse.split("\n\n")[0].split("data: ", 1)[1])
    assert sse.startswith("event: chunk\nid: 5\n") and data["parts"][1] == RESULT
    assert b"".join(plain_text("s1", events_after(buffer_of(PIECES[:4]), -1))) == b""


def test_results_are_whole_from_any_cursor_and_through_the_redis_json() -> None:
    buffer = buffer_of(PIECES)
    for cursor in range(-1, len(PIECES) - 1):
        chunk = events_after(buffer, cursor)[0]
        parts = chunk.parts or [{"type": "text", "text": chunk.text}]
        tools = [part for part in parts if part["type"] in ("tool_result", "tool_error")]
        assert tools == [piece for piece in PIECES[cursor + 1:] if piece in (RESULT, SECOND, ERROR)]
    copied = buffer_of(orjson.loads(orjson.dumps(buffer.pieces_after(-1))))  # as shared_mirror writes, remote reads
    assert events_after(copied, 0)[0] == events_after(buffer, 0)[0]
