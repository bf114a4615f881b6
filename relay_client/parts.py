"""The typed parts of a reply (docs/protocol.md, "Parts"): text, reasoning, a tool call's fragment, a refusal, and
what a server-side tool returned or why it failed (docs/protocol.md, "Server-side tools").

A chunk's `parts` are read from the wire once, here, so a program matches on classes, never on dict keys. A chunk
without `parts` holds text only: its one part is its `text`. `ToolCall` is the shape of a whole call in `done`, the
same dict an `assistant` message's `tool_calls` takes back, so a tool round trip passes it on unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypedDict


@dataclass(frozen=True)
class TextPart:
    """Some of the reply's text."""

    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class ReasoningPart:
    """Some of the model's thinking, streamed before (or between) its text."""

    text: str
    type: Literal["reasoning"] = "reasoning"


@dataclass(frozen=True)
class RefusalPart:
    """Some of the model's refusal to answer, in its own words."""

    text: str
    type: Literal["refusal"] = "refusal"


@dataclass(frozen=True)
class ToolCallPart:
    """A fragment of tool call `index`: its `id` and `name` in the part where the upstream first gave them, then
    pieces of its JSON `arguments`, to be joined in order (done.tool_calls has each call whole)."""

    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None
    type: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True)
class ToolResultPart:
    """What a tool the server ran returned for call `id`: `result` is a JSON value (a str, a dict...)."""

    id: str
    name: str
    result: Any
    type: Literal["tool_result"] = "tool_result"

    def content(self) -> str:
        """The `tool` message content the model got for it: the result itself when a string, else compact JSON
        (to answer the calls of a reply that also called the client's tools)."""
        return self.result if isinstance(self.result, str) else json.dumps(self.result, separators=(",", ":"),
                                                                           ensure_ascii=False)


@dataclass(frozen=True)
class ToolErrorPart:
    """Why a tool the server ran for call `id` gave no result, in words meant for the user."""

    id: str
    name: str
    message: str
    type: Literal["tool_error"] = "tool_error"

    def content(self) -> str:
        """The `tool` message content the model got for it: `{"error": message}` as compact JSON."""
        return json.dumps({"error": self.message}, separators=(",", ":"), ensure_ascii=False)


Part = TextPart | ReasoningPart | RefusalPart | ToolCallPart | ToolResultPart | ToolErrorPart


class ToolFunction(TypedDict):
    name: str
    arguments: str  # JSON, as the model wrote it: parse it before use, it may not be valid


class ToolCall(TypedDict):
    """One whole call, as `done.tool_calls` has it and as an `assistant` message carries it back."""

    id: str
    type: Literal["function"]
    function: ToolFunction


def _string(part: Mapping[str, Any], *keys: str) -> str:
    """The part's string under the first key it has (`text`, or the kind's own name, as OpenAI spells it)."""
    for key in keys:
        value = part.get(key)
        if isinstance(value, str):
            return value
    return ""


def part_from(part: Mapping[str, Any]) -> Part | None:
    """One wire part as its class; None for a kind this client does not know (a newer server's), which is skipped."""
    kind = part.get("type")
    if kind == "text":
        return TextPart(_string(part, "text"))
    if kind == "reasoning":
        return ReasoningPart(_string(part, "text", "reasoning"))
    if kind == "refusal":
        return RefusalPart(_string(part, "text", "refusal"))
    if kind == "tool_call":
        return ToolCallPart(int(part["index"]), _string(part, "arguments"), part.get("id"), part.get("name"))
    if kind == "tool_result":
        return ToolResultPart(_string(part, "id"), _string(part, "name"), part.get("result"))
    if kind == "tool_error":
        return ToolErrorPart(_string(part, "id"), _string(part, "name"), _string(part, "message"))
    return None


def parts_from(text: str, parts: Iterable[Mapping[str, Any]] | None) -> tuple[Part, ...]:
    """A chunk's parts: its `parts`, or, when it has none (text only, as every chunk was before parts), its text."""
    if parts is None:
        return (TextPart(text),) if text else ()
    return tuple(found for found in map(part_from, parts) if found is not None)


class ToolCallsBuilder:
    """Joins tool-call fragments into whole calls, in index order: what done.tool_calls will say, while it streams."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, part: ToolCallPart) -> None:
        call = self._calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
        if part.id:
            call["id"] = part.id
        if part.name:
            call["name"] = part.name
        call["arguments"] += part.arguments

    def calls(self) -> list[ToolCall]:
        return [{"id": call["id"], "type": "function",
                 "function": {"name": call["name"], "arguments": call["arguments"]}}
                for _, call in sorted(self._calls.items())]
