"""The HTTP stream's three body formats, chosen by the Accept header; each turns relay events into bytes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from werkzeug.datastructures import MIMEAccept

from ..streams.events import Chunk, Done, RelayEvent


def _json(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def plain_text(stream_id: str, events: Iterable[RelayEvent]) -> Iterator[bytes]:
    """The HTTP post's format: one chunk per line, newlines inside a chunk written as `<br />`; text only, so a
    chunk without text (reasoning, a tool call) writes nothing."""
    for event in events:
        if isinstance(event, Chunk):
            if event.text or event.parts is None:
                yield (event.text.replace("\n", "<br />") + "\n").encode()
        elif not isinstance(event, Done):  # a failure after streaming began: say so on the last line
            yield f"[error {event.code.value}] {event.message}\n".encode()


def ndjson(stream_id: str, events: Iterable[RelayEvent]) -> Iterator[bytes]:
    """One JSON object per line: chunks exact, newlines and all, then one done or error line."""
    for event in events:
        if isinstance(event, Chunk):
            line = {"type": "chunk", "text": event.text, "seq": event.seq}
            if event.parts is not None:  # absent for text only
                line["parts"] = event.parts
        else:
            line = {"type": "done" if isinstance(event, Done) else "error", **event.payload(stream_id)}
        yield (_json(line) + "\n").encode()


def server_sent_events(stream_id: str, events: Iterable[RelayEvent]) -> Iterator[bytes]:
    """SSE events `chunk` (with `id:` its seq), then one `done` or `error`; data is JSON, so it never spans lines."""
    for event in events:
        if isinstance(event, Chunk):  # the id is the cursor: EventSource sends it back as Last-Event-ID
            data: dict[str, object] = {"text": event.text, "seq": event.seq}
            if event.parts is not None:  # absent for text only
                data["parts"] = event.parts
            yield f"event: chunk\nid: {event.seq}\ndata: {_json(data)}\n\n".encode()
        else:
            name, data = ("done" if isinstance(event, Done) else "error"), event.payload(stream_id)
            yield f"event: {name}\ndata: {_json(data)}\n\n".encode()


@dataclass(frozen=True)
class BodyFormat:
    content_type: str
    encode: Callable[[str, Iterable[RelayEvent]], Iterator[bytes]]


FORMATS = {  # the first is the default, for `*/*` and for no Accept header at all
    "text/plain": BodyFormat("text/plain; charset=utf-8", plain_text),
    "application/x-ndjson": BodyFormat("application/x-ndjson; charset=utf-8", ndjson),
    "text/event-stream": BodyFormat("text/event-stream; charset=utf-8", server_sent_events),
}


def negotiate(accept: MIMEAccept) -> BodyFormat:
    """Pick the body format the client prefers; plain text when it does not say."""
    best = accept.best_match(list(FORMATS), default="text/plain")
    return FORMATS[best]
