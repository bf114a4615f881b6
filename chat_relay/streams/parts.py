"""A stream's typed pieces, and how the pieces waiting for a reader become one chunk's `text` and `parts`.

A piece is one upstream fragment of one kind (docs/protocol.md, "Parts"). A text piece is a plain `str`, as it
was before there were other kinds, so a text-only reply costs nothing more: its chunks are built as before and
carry no `parts`. Every other piece is a dict already in its wire shape: `{"type": "reasoning", "text"}`,
`{"type": "refusal", "text"}`, `{"type": "tool_call", "index", "id"?, "name"?, "arguments"}`, and the relay's own
`{"type": "tool_result", "id", "name", "result"}` and `{"type": "tool_error", "id", "name", "message"}` (server-side
tools, chat_relay/tools/), which are whole and never merged. Both kinds are JSON as they are, so the Redis log
(shared_mirror.py) stores them without a translation.
"""

from __future__ import annotations

from typing import Any

import orjson

from .backlog import text_bytes
from .events import Chunk, PartsChunk

Part = dict[str, Any]
Piece = str | Part  # a str is a text piece

TEXT, REASONING, REFUSAL, TOOL_CALL = "text", "reasoning", "refusal", "tool_call"
TOOL_RESULT, TOOL_ERROR = "tool_result", "tool_error"
_WHOLE = frozenset((TOOL_RESULT, TOOL_ERROR))  # one piece each, never merged with the next


def chunk_of(pieces: list[Piece], seq: int) -> Chunk:
    """One chunk for these consecutive pieces, the last of which is `seq`: `parts` only when one is not text."""
    for piece in pieces:
        if type(piece) is not str:
            text, parts = merged(pieces)
            return PartsChunk(text, seq, parts)
    return Chunk("".join(pieces), seq)  # type: ignore[arg-type]  # all str, checked above


def merged(pieces: list[Piece]) -> tuple[str, list[Part]]:
    """The text and the parts of these pieces: adjacent pieces of one kind (a tool call: of one `index`) merge
    into one part, whose id and name are kept from the piece that had them and whose strings are joined."""
    texts: list[str] = []
    parts: list[Part] = []
    last: Part | None = None
    for piece in pieces:
        if type(piece) is str:
            texts.append(piece)
            if last is not None and last["type"] == TEXT:
                last["text"] += piece
            else:
                last = {"type": TEXT, "text": piece}
                parts.append(last)
            continue
        kind = piece["type"]  # type: ignore[index]
        if last is not None and last["type"] == kind and kind not in _WHOLE and (
                kind != TOOL_CALL or last["index"] == piece["index"]):  # type: ignore[index]
            if kind == TOOL_CALL:
                for key in ("id", "name"):
                    if key in piece and key not in last:
                        last[key] = piece[key]  # type: ignore[index]
                last["arguments"] += piece["arguments"]  # type: ignore[index]
            else:
                last["text"] += piece["text"]  # type: ignore[index]
        else:
            last = dict(piece)  # type: ignore[arg-type]  # a copy: the buffer's pieces are never changed
            parts.append(last)
    return "".join(texts), parts


def text_of(pieces: list[Piece]) -> str:
    """The text pieces alone, joined."""
    return "".join(piece for piece in pieces if type(piece) is str)  # type: ignore[misc]


def piece_bytes(piece: Piece) -> int:
    """A piece's size for back-pressure (backlog.py): the UTF-8 bytes of its strings (text, arguments, id, name;
    a tool result's value as compact JSON)."""
    if isinstance(piece, str):
        return text_bytes(piece)
    total = len(orjson.dumps(piece["result"])) if piece["type"] == TOOL_RESULT else 0
    for key, value in piece.items():
        if key != "type" and key != "result" and isinstance(value, str):
            total += text_bytes(value)
    return total


def chunk_bytes(chunk: Chunk) -> int:
    """A chunk's size in the same measure: the sum of its pieces' (merging keeps every string once)."""
    if chunk.parts is None:
        return text_bytes(chunk.text)
    return sum(map(piece_bytes, chunk.parts))
