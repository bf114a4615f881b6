"""One call of a server-side tool: its arguments validated, the function run in a task of its own within
TOOL_TIMEOUT, and what came of it as a part (`tool_result` or `tool_error`), as the `tool` message the model
gets (docs/protocol.md, "Server-side tools"), and in the metrics (`relay_tool_calls_total`, once per call)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ..async_drivers import AsyncDriver
from ..observability.bug_reports import log_bug
from ..observability.logs import log_event
from ..observability.metrics import OTHER, Metrics
from ..streams.parts import Part
from .registry import Tool, ToolRegistry
from .tool_error import ToolError

log = logging.getLogger(__name__)

TOOL_RESULT, TOOL_ERROR = "tool_result", "tool_error"

# What became of a call (the metrics' `outcome`, observability/metrics.py TOOL_OUTCOMES): a result; the tool's own
# ToolError; a bug (it raised, or returned no JSON); past TOOL_TIMEOUT; a result over MAX_TOOL_RESULT_BYTES; its
# stream ended while it ran; arguments it was never called with; a name not registered; over MAX_TOOL_CALLS.
OK, ERROR, FAILED, TIMEOUT, TOO_LARGE = "ok", "error", "failed", "timeout", "too_large"
CANCELLED, BAD_ARGUMENTS, UNKNOWN_TOOL, NOT_RUN = "cancelled", "bad_arguments", "unknown_tool", "not_run"


class ToolAbandoned(BaseException):
    """Thrown into a tool's task that ran past its time, or whose stream was stopped (a BaseException, so the
    tool's own `except Exception` does not swallow it)."""


class _GaveUp(ToolError):
    """A call the runner answered for the tool (a bug in it, or past its time): its message, and why."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class Outcome:
    """A call's part for the stream, and the content of the `tool` message the model gets."""

    part: Part
    content: str
    outcome: str = OK  # for the metrics


class ToolRunner:
    """Runs the calls of one app's registered tools, each in a task of its own, waited for at most `timeout`."""

    def __init__(self, tools: ToolRegistry, driver: AsyncDriver, timeout: float, max_result_bytes: int,
                 metrics: Metrics | None = None) -> None:
        self._tools, self._driver, self._metrics = tools, driver, metrics
        self._timeout, self._max_result_bytes = timeout, max_result_bytes

    def run(self, call: dict[str, Any], stream_id: str = "") -> Outcome:
        """Run one whole call (`{"id", "function": {"name", "arguments"}}`) of a registered tool, and log a
        `tool_call` line (the tool, the outcome, the time: never the arguments or the result)."""
        began = time.monotonic()
        try:
            outcome = self._outcome(call)
        except BaseException as exc:  # its stream ended while the tool ran (or a bug here): counted all the same
            self._count(call, FAILED if isinstance(exc, Exception) else CANCELLED, time.monotonic() - began)
            raise
        took = time.monotonic() - began
        self._count(call, outcome.outcome, took)
        log_event(log, "tool_call", {"stream_id": stream_id, "tool": call["function"]["name"],
                                     "outcome": outcome.part["type"], "duration_ms": int(took * 1000)})
        return outcome

    def not_run(self, call: dict[str, Any], message: str) -> Outcome:
        """A call left unrun (over MAX_TOOL_CALLS), counted as one."""
        self._count(call, NOT_RUN, 0.0)
        return failure(call, message, NOT_RUN)

    def _count(self, call: dict[str, Any], outcome: str, seconds: float) -> None:
        if self._metrics is not None:
            name = call["function"]["name"]
            # the model names the tool: a name not registered would be a label value of its choosing
            self._metrics.tool_called(name if name in self._tools else OTHER, outcome, seconds)

    def _outcome(self, call: dict[str, Any]) -> Outcome:
        call_id, name = str(call.get("id") or ""), call["function"]["name"]
        tool = self._tools.get(name)
        if tool is None:
            return failure(call, f"There is no tool {name!r}.", UNKNOWN_TOOL)
        try:
            arguments = tool.arguments(call["function"].get("arguments") or "")
        except ToolError as err:
            return failure(call, err.message, BAD_ARGUMENTS)
        try:
            value = self._call(tool, arguments)
        except ToolError as err:
            return failure(call, err.message, err.outcome if isinstance(err, _GaveUp) else ERROR)
        try:
            result = to_jsonable_python(value)
            encoded = orjson.dumps(result)
        except (PydanticSerializationError, TypeError, orjson.JSONEncodeError):
            log_bug(log, f"tool {name} returned a value that is not JSON")
            return failure(call, f"Tool {name!r} failed.", FAILED)
        if len(encoded) > self._max_result_bytes:
            return failure(call, f"The result of tool {name!r} is larger than MAX_TOOL_RESULT_BYTES "
                                 f"({self._max_result_bytes:,} bytes).", TOO_LARGE)
        content = result if isinstance(result, str) else encoded.decode()
        return Outcome({"type": TOOL_RESULT, "id": call_id, "name": name, "result": result}, content)

    def _call(self, tool: Tool, arguments: dict[str, Any]) -> Any:
        """The function's return value; ToolError for its own, a timeout or a bug. The function runs in a task of
        its own, so that the stream's task can give up on it after TOOL_TIMEOUT (or at a stop: the exception
        that stops the stream lands here, and the tool's task is told to end too)."""
        finished = self._driver.new_event()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["value"] = tool.function(**arguments)
            except ToolError as err:
                outcome["error"] = err
            except ToolAbandoned:
                pass  # its stream no longer waits for it
            except Exception as exc:  # a bug in the tool: logged, and the model told that it failed
                log_bug(log, f"tool {tool.name} failed", exc)
                outcome["error"] = _GaveUp(f"Tool {tool.name!r} failed.", FAILED)
            finally:
                finished.set()

        task = self._driver.spawn(work)
        try:
            done = finished.wait(self._timeout)
        except BaseException:  # the stream was stopped while the tool ran: it need not run on
            self._abandon(task, finished)
            raise
        if not done and not outcome:
            self._abandon(task, finished)
            raise _GaveUp(f"Tool {tool.name!r} took longer than TOOL_TIMEOUT ({self._timeout:g} s).", TIMEOUT)
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    def _abandon(self, task: object, finished: Any) -> None:
        """End a tool's task where it waits (green threads; an OS thread runs on, unwaited for)."""
        self._driver.interrupt(task, ToolAbandoned, still_wanted=lambda: not finished.is_set())


def failure(call: dict[str, Any], message: str, outcome: str = ERROR) -> Outcome:
    """A call that gave no result, and why: its `tool_error` part, and `{"error": message}` for the model."""
    part = {"type": TOOL_ERROR, "id": str(call.get("id") or ""), "name": call["function"]["name"], "message": message}
    return Outcome(part,
                   orjson.dumps({"error": message}).decode(), outcome)
