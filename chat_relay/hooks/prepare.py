"""What is sent: the team's `prepare` hook rewrites a validated request (a system prompt of its own, retrieved
context, a model by plan, tools), and what it returns is validated again, as a client's request is.

`prepare` is given the request as the client's JSON, with `messages` always (a `prompt` becomes one user message)
and `model` always (the default filled in), but without SYSTEM_PROMPT, which the relay adds after, as it does to a
client's. It returns the request to send in the same shape; the stream keeps the client's `stream_id`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..access.identity import Identity
from ..config import Settings
from ..errors import ErrorCode, RelayError
from ..observability.bug_reports import hook_answer
from ..streams.request_validation import ChatRequest, parse_chat_request

log = logging.getLogger(__name__)

Prepare = Callable[[dict[str, Any], Identity], dict[str, Any]]
"""Return the request to send, or raise a RelayError (its code and message go to the client)."""

INVALID = "The server could not prepare this request."


def prepared(request: ChatRequest, sent: dict[str, Any], identity: Identity, prepare: Prepare,
             settings: Settings) -> ChatRequest:
    """The request `prepare` makes of the client's validated one (`sent`: its JSON, `request`: as validated)."""
    given = _as_messages(sent, request)
    wanted = hook_answer(log, "prepare", INVALID, lambda: prepare(given, identity))
    if not isinstance(wanted, dict):
        log.error("the prepare hook returned a %s, not a request (a dict)", type(wanted).__name__)
        raise RelayError(ErrorCode.INTERNAL, INVALID)
    wanted = {key: value for key, value in wanted.items() if key != "stream_id"}
    try:
        checked = parse_chat_request(wanted, settings)
    except RelayError as err:  # the team's mistake, not the client's: said in the log, not to the client
        log.error("the prepare hook returned an invalid request: %s", err.message)
        raise RelayError(ErrorCode.INTERNAL, INVALID) from None
    return replace(checked, stream_id=request.stream_id)


def _as_messages(sent: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
    """The client's request as `prepare` sees it: a copy (the hook may change it freely), with `messages` and
    `model`, without `stream_id`."""
    given = copy.deepcopy({key: value for key, value in sent.items() if key not in ("prompt", "stream_id")})
    if "prompt" in sent:
        given["messages"] = [{"role": "user", "content": sent["prompt"]}]
    given["model"] = request.model
    return given
