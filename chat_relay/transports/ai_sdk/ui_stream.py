"""The relay's events written as the AI SDK's UI message stream (protocol v1, the `ai` package's major 7).

The stream is SSE of JSON chunks, `data: {...}` each, ended by `data: [DONE]` (the `ai` package's
JsonToSseTransformStream). One reply is one message of one step: `start` (its messageId), `start-step`, then its
parts as `*-start`/`*-delta`/`*-end` runs, `finish-step` and `finish`. A failure is one `error` chunk, a stop one
`abort` chunk, as the AI SDK's own backends write them. The message id and the part ids are derived from the
stream alone, so a resume, which reads the stream from its start, writes the same chunks again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from ...streams.events import Chunk, Done, Failed, RelayEvent
from ...streams.parts import REASONING, REFUSAL, TEXT, TOOL_CALL, Part

HEADERS = {"x-vercel-ai-ui-message-stream": "v1"}  # what makes DefaultChatTransport read the body as chunks
CONTENT_TYPE = "text/event-stream; charset=utf-8"
END = b"data: [DONE]\n\n"

# The model's finish reasons, as the AI SDK names them (its FinishReason); any other is "other".
FINISH_REASONS = {"stop": "stop", "length": "length", "content_filter": "content-filter",
                  "tool_calls": "tool-calls", "function_call": "tool-calls"}

UIChunk = dict[str, Any]


def stream_message_id(stream_id: str) -> str:
    """The reply's UI message id: the same on every read of the stream."""
    return f"msg-{stream_id}"


class UIMessageWriter:
    """Turns one stream's events, read from its start, into UI message chunks. Text and reasoning are runs (a
    `*-start`, deltas, an `*-end`), a new run whenever the kind changes; a tool call's arguments stream as
    `tool-input-delta` and its whole input comes with `tool-input-available` once the model has finished."""

    def __init__(self, stream_id: str, message_id: str = "") -> None:
        """`message_id`: the client's assistant message this reply continues (after a tool's output), else the
        stream's own: `useChat` appends the reply to its last message only when the ids match."""
        self.stream_id = stream_id
        self.message_id = message_id or stream_message_id(stream_id)
        self._run: tuple[str, str] | None = None  # the open text or reasoning run: (kind, id)
        self._runs = {"text": 0, "reasoning": 0}  # each kind's runs so far: ids text-0, reasoning-0, ...
        self._calls: dict[int, dict[str, Any]] = {}  # index -> {id, name, arguments, started, available}
        self._after_tools = False  # the server's tools have run: the next part begins the next step

    def begin(self) -> list[UIChunk]:
        return [{"type": "start", "messageId": self.message_id}, {"type": "start-step"}]

    def event(self, event: RelayEvent) -> list[UIChunk]:
        if isinstance(event, Chunk):
            parts = event.parts if event.parts is not None else [{"type": TEXT, "text": event.text}]
            out: list[UIChunk] = []
            for part in parts:
                out.extend(self.part(part))
            return out
        if isinstance(event, Done):
            return self.done(event)
        return self.failed(event)

    def part(self, part: Part) -> list[UIChunk]:
        """One merged part of a chunk (chat_relay/streams/parts.py); a kind not in PART_CHUNKS is not sent."""
        write = PART_CHUNKS.get(part["type"])
        return write(self, part) if write is not None else []

    def delta(self, kind: str, text: str) -> list[UIChunk]:
        out = self._next_step()
        if self._run is None or self._run[0] != kind:
            out.extend(self._close_run())
            self._run = (kind, f"{kind}-{self._runs[kind]}")
            self._runs[kind] += 1
            out.append({"type": f"{kind}-start", "id": self._run[1]})
        out.append({"type": f"{kind}-delta", "id": self._run[1], "delta": text})
        return out

    def _close_run(self) -> list[UIChunk]:
        if self._run is None:
            return []
        kind, run_id = self._run
        self._run = None
        return [{"type": f"{kind}-end", "id": run_id}]

    def _next_step(self) -> list[UIChunk]:
        """After the server's tools ran, the model's next reply is the AI SDK's next step."""
        if not self._after_tools:
            return []
        self._after_tools = False
        return [{"type": "finish-step"}, {"type": "start-step"}]

    def tool_call(self, part: Part) -> list[UIChunk]:
        call = self._calls.setdefault(part["index"], {"arguments": "", "started": False, "available": False})
        for key in ("id", "name"):
            if key in part:
                call[key] = part[key]
        call["arguments"] += part.get("arguments", "")
        if not call["started"]:
            if "id" not in call or "name" not in call:
                return []  # its start waits for both (an upstream gives them in the first fragment)
            call["started"] = True
            out = [*self._next_step(), *self._close_run(),
                   {"type": "tool-input-start", "toolCallId": call["id"], "toolName": call["name"]}]
            if call["arguments"]:
                out.append({"type": "tool-input-delta", "toolCallId": call["id"], "inputTextDelta": call["arguments"]})
            return out
        if not part.get("arguments"):
            return []
        return [{"type": "tool-input-delta", "toolCallId": call["id"], "inputTextDelta": part["arguments"]}]

    def tool_output(self, part: Part) -> list[UIChunk]:
        """A server-side tool's outcome (a `tool_result` or `tool_error` part): the model's reply has ended, so its
        calls' inputs are whole first; the model's next reply is a step of its own."""
        out = [*self._close_run(), *self._inputs_available()]
        self._after_tools = True
        if part["type"] == "tool_error":
            return [*out, {"type": "tool-output-error", "toolCallId": part["id"], "errorText": part["message"]}]
        return [*out, {"type": "tool-output-available", "toolCallId": part["id"], "output": part["result"]}]

    def done(self, done: Done) -> list[UIChunk]:
        if done.finish_reason == "cancelled":  # as the AI SDK's streamText ends on an abort: the open run left so
            return [{"type": "abort", "reason": "stopped"}]
        out = [*self._close_run(), *self._inputs_available()]
        known = {call.get("id") for call in self._calls.values()}
        for whole in done.tool_calls or []:  # a call not streamed in fragments (none today): whole here
            if whole["id"] not in known:
                name = whole["function"]["name"]
                out += [{"type": "tool-input-start", "toolCallId": whole["id"], "toolName": name},
                        self._input(whole["id"], name, whole["function"]["arguments"])]
        finish = FINISH_REASONS.get(done.finish_reason, "other")
        return [*out, {"type": "finish-step"}, {"type": "finish", "finishReason": finish}]

    def _inputs_available(self) -> list[UIChunk]:
        """Each started call's whole input, once: the model has finished its reply."""
        out: list[UIChunk] = []
        for _, call in sorted(self._calls.items()):
            if call["started"] and not call["available"]:
                call["available"] = True
                out.append(self._input(call["id"], call["name"], call["arguments"]))
        return out

    @staticmethod
    def _input(call_id: str, name: str, arguments: str) -> UIChunk:
        try:
            tool_input = json.loads(arguments or "{}")
        except ValueError:
            return {"type": "tool-input-error", "toolCallId": call_id, "toolName": name, "input": arguments,
                    "errorText": "The model's arguments for this call are not valid JSON."}
        return {"type": "tool-input-available", "toolCallId": call_id, "toolName": name, "input": tool_input}

    def failed(self, failed: Failed) -> list[UIChunk]:
        """The relay's error, its code first: `rate_limited: ...` (the message is one a client may see)."""
        return [*self._close_run(), {"type": "error", "errorText": f"{failed.code.value}: {failed.message}"}]


# Each part kind of the relay's stream, and what writes its chunks: one line per kind.
PART_CHUNKS: dict[str, Callable[[UIMessageWriter, Part], list[UIChunk]]] = {
    TEXT: lambda writer, part: writer.delta("text", part["text"]),
    REFUSAL: lambda writer, part: writer.delta("text", part["text"]),  # the AI SDK has no refusal: shown as text
    REASONING: lambda writer, part: writer.delta("reasoning", part["text"]),
    TOOL_CALL: UIMessageWriter.tool_call,
    "tool_result": UIMessageWriter.tool_output,  # server-side tools (docs/protocol.md, "Server-side tools")
    "tool_error": UIMessageWriter.tool_output,
}


def ui_message_stream(stream_id: str, events: Iterable[RelayEvent], message_id: str = "") -> Iterator[bytes]:
    """The SSE body: every chunk of a relay event in one write, then `[DONE]` after the terminal."""
    writer = UIMessageWriter(stream_id, message_id)
    yield _sse(writer.begin())
    for event in events:
        chunks = writer.event(event)
        if isinstance(event, Chunk):
            if chunks:
                yield _sse(chunks)
        else:
            yield _sse(chunks) + END


def _sse(chunks: list[UIChunk]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks)
