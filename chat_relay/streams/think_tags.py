"""REASONING_TAGS: a model that writes its reasoning inside the content, as `<think>...</think>` at its start
(DeepSeek-R1, Qwen3 and others behind servers that do not split it out), has it relayed as reasoning.

Only a `<think>` at the start of the content counts (leading whitespace allowed): a tag later in the reply is
text. A tag may arrive cut across deltas (`<thi` then `nk>`), so the start of a piece that could still become a
tag is held back until the next piece (or the end) decides; all else goes out at once.
"""

from __future__ import annotations

from .parts import REASONING, Piece

OPEN, CLOSE = "<think>", "</think>"
_START, _THINKING, _TEXT = 0, 1, 2


class ThinkTags:
    """Splits one stream's content pieces into reasoning and text; `feed` each piece in order, `flush` at the end."""

    __slots__ = ("_held", "_state")

    def __init__(self) -> None:
        self._state = _START
        self._held = ""  # content that may yet turn out to be (part of) a tag

    def feed(self, content: str) -> list[Piece]:
        if self._state == _TEXT:
            return [content]
        held = self._held + content
        self._held = ""
        if self._state == _START:
            start = held.lstrip()
            if not start.startswith(OPEN):
                if OPEN.startswith(start):  # only whitespace, or a tag not yet whole
                    self._held = held
                    return []
                self._state = _TEXT
                return [held]
            self._state = _THINKING
            held = start[len(OPEN):]
        end = held.find(CLOSE)
        if end >= 0:
            self._state = _TEXT
            return _pieces(held[:end], held[end + len(CLOSE):])
        keep = _tag_start(held)  # the end may be the start of `</think>`
        self._held = held[len(held) - keep:] if keep else ""
        return _pieces(held[:len(held) - keep], "")

    def flush(self) -> list[Piece]:
        """The stream ended: what was held back is what it seemed to be so far."""
        held, self._held = self._held, ""
        if not held:
            return []
        return _pieces(held, "") if self._state == _THINKING else [held]


def _pieces(reasoning: str, text: str) -> list[Piece]:
    pieces: list[Piece] = []
    if reasoning:
        pieces.append({"type": REASONING, "text": reasoning})
    if text:
        pieces.append(text)
    return pieces


def _tag_start(text: str) -> int:
    """How many characters at the end of `text` begin `</think>` (0 when none do)."""
    for size in range(min(len(CLOSE) - 1, len(text)), 0, -1):
        if CLOSE.startswith(text[-size:]):
            return size
    return 0
