"""relay_tool_calls_total and relay_tool_duration_seconds without a server: every way a call of a server-side tool
can end is counted once, under its registered name (never a name only the model chose), and only the calls that ran
are timed. tests/live/test_server_tools.py reads the same counts on a real server's /metrics."""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

import pytest

from chat_relay import ToolError
from chat_relay.config import Settings
from chat_relay.observability.metrics import Metrics
from chat_relay.streams.producer import StreamCancelled
from chat_relay.streams.request_validation import parse_chat_request
from chat_relay.tools.loop import ToolRounds
from chat_relay.tools.runner import ToolRunner
from tests.unit.test_server_tools_fast import call, registry_of, threads


def counts(metrics: Metrics) -> dict[tuple[str, str], float]:
    """relay_tool_calls_total by (tool, outcome), and the run-time histogram's count by (tool, "timed")."""
    found: dict[tuple[str, str], float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == "relay_tool_calls_total" and sample.value:
                found[(sample.labels["tool"], sample.labels["outcome"])] = sample.value
            elif sample.name == "relay_tool_duration_seconds_count" and sample.value:
                found[(sample.labels["tool"], "timed")] = sample.value
    return found


def add(a: int, b: int) -> int:
    return a + b


def refuse() -> str:
    raise ToolError("Not on Sundays.")


def crash() -> str:
    raise RuntimeError("a bug")


def opaque() -> object:
    return object()


def large() -> str:
    return "x" * 2000


def test_every_outcome_is_counted_once_and_only_runs_are_timed() -> None:
    release = threading.Event()

    def stuck() -> str:
        release.wait(10)
        return "late"

    metrics = Metrics(["m"])
    runner = ToolRunner(registry_of(add, refuse, crash, opaque, large, stuck), threads(), 0.05, 1000, metrics)
    try:
        for name, arguments in (("add", '{"a": 1, "b": 2}'), ("add", '{"a": "one", "b": 2}'), ("add", "{"),
                                ("refuse", "{}"), ("crash", "{}"), ("opaque", "{}"), ("large", "{}"),
                                ("stuck", "{}"), ("SECRET-NAME-the-model-chose", "{}")):
            runner.run(call(name, arguments))
    finally:
        release.set()
    assert counts(metrics) == {
        ("add", "ok"): 1, ("add", "bad_arguments"): 2, ("refuse", "error"): 1, ("crash", "failed"): 1,
        ("opaque", "failed"): 1, ("large", "too_large"): 1, ("stuck", "timeout"): 1, ("other", "unknown_tool"): 1,
        # timed: the calls whose function ran
        ("add", "timed"): 1, ("refuse", "timed"): 1, ("crash", "timed"): 1, ("opaque", "timed"): 1,
        ("large", "timed"): 1, ("stuck", "timed"): 1,
    }


def test_calls_past_max_tool_calls_count_as_not_run() -> None:
    metrics, registry = Metrics(["m"]), registry_of(add)
    rounds = ToolRounds(registry, ToolRunner(registry, threads(), 5, 1000, metrics), 5, max_calls=2)
    request = parse_chat_request({"prompt": "hi"}, Settings(openai_api_key="k"))
    calls = [call("add", json.dumps({"a": 1, "b": n}), f"c{n}") for n in range(3)]
    assert rounds.next_request(request, "", calls, [].append) is not None
    assert counts(metrics) == {("add", "ok"): 2, ("add", "not_run"): 1, ("add", "timed"): 2}


class _StoppedWhileWaiting:
    """An event whose wait is where the stream's task is stopped (what a stop throws into it in a green mode)."""

    def __init__(self) -> None:
        self._set = threading.Event()

    def set(self) -> None:
        self._set.set()

    def is_set(self) -> bool:
        return self._set.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        raise StreamCancelled()


def test_a_call_whose_stream_is_stopped_counts_as_cancelled() -> None:
    release = threading.Event()

    def stuck() -> str:
        release.wait(10)
        return "late"

    metrics = Metrics(["m"])
    driver: Any = dataclasses.replace(threads(), new_event=_StoppedWhileWaiting)
    runner = ToolRunner(registry_of(stuck), driver, 5, 1000, metrics)
    try:
        with pytest.raises(StreamCancelled):
            runner.run(call("stuck", "{}"))
    finally:
        release.set()
    assert counts(metrics) == {("stuck", "cancelled"): 1, ("stuck", "timed"): 1}
