"""What happened: the team's `on_finish` hook, called once per stream after its terminal event, with everything the
stream was: who asked, what was sent, the whole reply, how it ended, its usage and timings.

Off the delivery path: the hook runs in a green task of its own (the app's async driver), after the terminal entry
is in the stream's buffer, so a slow hook delays no stream and a failing one breaks none; a failure is logged as a
bug, without its message or the data in it (chat_relay/observability/bug_reports.py). It runs where the stream
was produced, so with Redis once, on that instance, wherever its client read it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..access.identity import Identity
from ..observability.bug_reports import log_bug
from ..streams.events import Done, Terminal
from ..streams.parts import REASONING, REFUSAL, TOOL_CALL, Part, Piece, merged
from ..streams.request_validation import ChatRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timings:
    started: float  # UNIX time the stream started
    duration: float  # seconds from its start to its terminal event
    first_piece: float | None  # seconds from its start to the upstream's first piece; None if none came


@dataclass(frozen=True)
class FinishRecord:
    """One stream, ended. `parts` is the whole reply, every kind the stream carried (text, reasoning, tool calls,
    the relay's tool results and errors, and any other), merged as a chunk's are (docs/protocol.md, "Parts");
    `text` (every round's), `reasoning`, `refusal` and `tool_calls` (every round's) are read from it for
    convenience."""

    stream_id: str
    identity: Identity
    request: ChatRequest  # what the upstream was sent (after `prepare`)
    transport: str  # socketio or http: the transport its request came by
    parts: list[dict[str, Any]]
    text: str
    finish_reason: str | None  # Done's (stop, length, tool_calls, cancelled...); None when it ended in an error
    error: str | None  # the error code it ended with (upstream_timeout, interrupted...); None for `done`
    cause: str  # why it ended, as its stream_end log line says: completed, stopped, client_gone, ...
    usage: dict[str, int] | None  # the upstream's; None when it reported none (a stop, a failure)
    timings: Timings
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # every round's, each whole, in done's shape

    @property
    def reasoning(self) -> str:
        return "".join(part["text"] for part in self.parts if part["type"] == REASONING)

    @property
    def refusal(self) -> str:
        return "".join(part["text"] for part in self.parts if part["type"] == REFUSAL)


OnFinish = Callable[[FinishRecord], None]


def finish_record(*, request: ChatRequest, identity: Identity, transport: str, pieces: list[Piece],
                  terminal: Terminal, cause: str, timings: Timings) -> FinishRecord:
    text, parts = merged(pieces)
    calls = calls_of(parts)
    if isinstance(terminal, Done):
        return FinishRecord(request.stream_id, identity, request, transport, parts, text, terminal.finish_reason,
                            None, cause, terminal.usage, timings, calls)
    return FinishRecord(request.stream_id, identity, request, transport, parts, text, None, terminal.code.value,
                        cause, None, timings, calls)


def calls_of(parts: list[Part]) -> list[dict[str, Any]]:
    """Every call the model made in the stream, whole, in the order it began them. Not `done`'s `tool_calls`,
    which are the last reply's only: with server-side tools a stream is several replies, and its calls are
    numbered across them (upstream_sse.py, index_base), so one index is one call even when a tool's result or
    another call's fragment came between its fragments."""
    calls: dict[int, dict[str, Any]] = {}
    for part in parts:
        if part["type"] != TOOL_CALL:
            continue
        known = calls.get(part["index"])
        if known is None:
            calls[part["index"]] = {"id": part.get("id", ""), "type": "function",
                                    "function": {"name": part.get("name", ""), "arguments": part["arguments"]}}
            continue
        known["id"] = known["id"] or part.get("id", "")
        known["function"]["name"] = known["function"]["name"] or part.get("name", "")
        known["function"]["arguments"] += part["arguments"]
    return list(calls.values())


def run_hook(hook: OnFinish, record: FinishRecord) -> None:
    """Call the hook (in a task of its own: chat_relay/hooks/team_hooks.py); whatever it raises is logged."""
    try:
        hook(record)
    except Exception as err:  # a bug in the team's hook: logged, and the server goes on
        log_bug(log, f"stream {record.stream_id}: the on_finish hook failed", err)
