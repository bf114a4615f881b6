"""The rounds of server-side tools in one stream: after a reply that calls registered tools, run them (their parts
go into the stream's buffer), extend the conversation with the calls and their results, and ask the model again,
at most MAX_TOOL_STEPS times (docs/protocol.md, "Server-side tools")."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..async_drivers import AsyncDriver
from ..config import Settings
from ..observability.metrics import Metrics
from ..streams.parts import Piece
from ..streams.request_validation import ChatRequest
from .registry import ToolRegistry
from .runner import ToolRunner

STEPS_EXCEEDED = "tool_steps_exceeded"


class ToolRounds:
    """One stream's loop (streams/tool_steps.py, ToolSteps)."""

    def __init__(self, tools: ToolRegistry, runner: ToolRunner, max_steps: int, max_calls: int = 8) -> None:
        self._tools, self._runner, self._max_steps, self._max_calls = tools, runner, max_steps, max_calls
        self.rounds = 0
        self._too_many = f"Not run: at most MAX_TOOL_CALLS ({max_calls}) calls of the server's tools run per reply."
        self.finish_reason: str | None = None

    def next_request(self, request: ChatRequest, reply_text: str, calls: list[dict[str, Any]],
                     append: Callable[[Piece], None]) -> ChatRequest | None:
        mine = [call for call in calls if call["function"]["name"] in self._tools]
        if not mine:
            return None  # the client's calls only, or none: the reply is the stream's last
        if self.rounds >= self._max_steps:
            self.finish_reason = STEPS_EXCEEDED
            return None
        self.rounds += 1
        messages = [*request.messages, {"role": "assistant", "content": reply_text or None, "tool_calls": calls}]
        for number, call in enumerate(mine):
            if number < self._max_calls:
                outcome = self._runner.run(call, request.stream_id)
            else:
                outcome = self._runner.not_run(call, self._too_many)
            append(outcome.part)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": outcome.content})
        if len(mine) < len(calls):
            return None  # mixed: the client answers its calls, and sends the whole conversation back
        return dataclasses.replace(request, messages=messages)


class AppTools:
    """The app's registered tools and how they run (streams/tool_steps.py, ServerTools). Tools may be registered
    after the relay is mounted: each stream looks at the registry as it starts."""

    def __init__(self, tools: ToolRegistry, driver: AsyncDriver, settings: Settings, metrics: Metrics) -> None:
        self._tools = tools
        self._runner = ToolRunner(tools, driver, settings.tool_timeout, settings.max_tool_result_bytes, metrics)
        self._max_steps, self._max_calls = settings.max_tool_steps, settings.max_tool_calls

    def offered(self, request: ChatRequest) -> ChatRequest:
        return self._tools.offered(request)

    def steps(self) -> ToolRounds | None:
        return ToolRounds(self._tools, self._runner, self._max_steps, self._max_calls) if len(self._tools) else None
