"""The HTTP body formats and their negotiation, on relay events built by hand."""

from __future__ import annotations

import json

from werkzeug.datastructures import MIMEAccept

from chat_relay.errors import ErrorCode
from chat_relay.streams.events import Chunk, Done, Failed
from chat_relay.transports.http_body_formats import FORMATS, ndjson, negotiate, plain_text, server_sent_events

EVENTS = [Chunk("a\nb", 0), Chunk("é", 1), Done("stop", 2, None)]
FAILED = [Chunk("a", 0), Failed(ErrorCode.UPSTREAM_TIMEOUT, "too slow", 1)]


def body(encode, events) -> str:
    return b"".join(encode("s1", events)).decode()


def test_plain_text() -> None:
    assert body(plain_text, EVENTS) == "a<br />b\né\n"
    assert body(plain_text, FAILED) == "a\n[error upstream_timeout] too slow\n"


def test_ndjson() -> None:
    lines = [json.loads(line) for line in body(ndjson, EVENTS).splitlines()]
    assert lines == [
        {"type": "chunk", "text": "a\nb", "seq": 0},
        {"type": "chunk", "text": "é", "seq": 1},
        {"type": "done", "stream_id": "s1", "finish_reason": "stop", "chunks": 2, "usage": None},
    ]
    assert json.loads(body(ndjson, FAILED).splitlines()[-1]) == {
        "type": "error", "stream_id": "s1", "code": "upstream_timeout", "message": "too slow"}


def test_sse() -> None:
    assert body(server_sent_events, FAILED) == (
        'event: chunk\nid: 0\ndata: {"text":"a","seq":0}\n\n'
        'event: error\ndata: {"stream_id":"s1","code":"upstream_timeout","message":"too slow"}\n\n'
    )


def test_negotiation() -> None:
    assert negotiate(MIMEAccept([])) is FORMATS["text/plain"]
    assert negotiate(MIMEAccept([("*/*", 1)])) is FORMATS["text/plain"]
    assert negotiate(MIMEAccept([("application/x-ndjson", 1)])) is FORMATS["application/x-ndjson"]
    assert negotiate(MIMEAccept([("text/event-stream", 1), ("*/*", 0.1)])) is FORMATS["text/event-stream"]
    assert negotiate(MIMEAccept([("image/png", 1)])) is FORMATS["text/plain"]
