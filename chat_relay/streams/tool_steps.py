"""What a producer asks of a tool loop (chat_relay/tools/loop.py), so that streams/ imports nothing of tools/: after
each reply of the model, whether to ask it again and with what; and the usage of a stream's requests summed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .parts import Piece
from .request_validation import ChatRequest


class ToolSteps(Protocol):
    """One stream's tool loop."""

    finish_reason: str | None  # set when the loop itself ended the stream (tool_steps_exceeded)

    def next_request(self, request: ChatRequest, reply_text: str, calls: list[dict[str, Any]],
                     append: Callable[[Piece], None]) -> ChatRequest | None:
        """After a reply that called `calls` (whole): run the server's, appending their parts; the request to
        send next, or None to end the stream with this reply."""


class ServerTools(Protocol):
    """The app's registered tools, as the stream manager uses them."""

    def offered(self, request: ChatRequest) -> ChatRequest:
        """The request with the server's tools added (or refused with a RelayError)."""

    def steps(self) -> ToolSteps | None:
        """A loop for one new stream; None when there are no tools to run."""


def summed_usage(before: dict[str, int] | None, usage: dict[str, int] | None) -> dict[str, int] | None:
    """Two requests' usage added key by key; one that reported none adds nothing."""
    if before is None or usage is None:
        return usage if before is None else before
    return {key: before.get(key, 0) + usage.get(key, 0) for key in {**before, **usage}}
