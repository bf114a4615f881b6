"""The AI SDK's chat request (what DefaultChatTransport posts) turned into the relay's own request payload.

The body is `{id, messages, trigger, messageId, ...body}`: the chat's id, its UI messages with their `parts`,
and the fields of the transport's `body` option, which must be the relay's request fields (model,
temperature, tools, ...), each checked by the relay's own validation afterwards. The UI messages become Chat
Completions messages the way the AI SDK's convertToModelMessages makes model messages: text and image files
kept, reasoning left out, each tool call with a result an assistant `tool_calls` entry and a `tool` message,
a call still without one left out (the upstream refuses a call without its result), and the parts after
each `step-start` of an assistant message a message of their own.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...errors import ErrorCode, RelayError
from ...streams.request_validation import STREAM_ID_PATTERN, describe

CHAT_ID_PATTERN = STREAM_ID_PATTERN  # a chat id names a Redis key and a URL path: the stream_id's characters
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")
# The body's own fields; every other field is one of the relay's, or refused by its validation.
UI_FIELDS = ("id", "messages", "trigger", "messageId")
NOT_FROM_BODY = ("prompt", "stream_id")  # the chat's messages are the conversation; the relay names the stream
_MESSAGE_ID = re.compile(r"[^\x00-\x1f]{1,200}")  # an id the reply may echo: no control characters, bounded
DENIED = "Tool call execution denied."  # the AI SDK's words for a call the user denied


class _Message(BaseModel):
    """A UI message: its parts are read one by one below, each for the fields its type has."""

    model_config = ConfigDict(strict=True, extra="ignore")  # metadata and the like are the client's own
    id: str = ""
    role: Literal["system", "user", "assistant"]
    parts: list[dict[str, Any]]


class _UIRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")  # the rest: the relay's fields, checked by it
    id: str = Field(pattern=CHAT_ID_PATTERN)
    messages: list[_Message] = Field(min_length=1)
    trigger: Literal["submit-message", "regenerate-message"] = "submit-message"
    messageId: str | None = None  # the AI SDK's name


@dataclass(frozen=True)
class UIChatRequest:
    chat_id: str
    payload: dict[str, Any]  # the relay's request: messages and the body's fields, for parse_chat_request
    # The assistant message the reply continues (the last message, when it is the assistant's: after a tool's
    # output is sent back), whose id the reply's `start` must carry; "" for a new message.
    message_id: str = ""


def parse_ui_request(data: object) -> UIChatRequest:
    """Validate the AI SDK's request and convert it; invalid_request for anything the relay cannot send on."""
    if not isinstance(data, dict):
        raise _invalid("The request must be a JSON object.")
    try:
        request = _UIRequest.model_validate(data)
    except ValidationError as err:
        raise _invalid(describe(err)) from None
    for name in NOT_FROM_BODY:
        if name in data:
            raise _invalid(f"'{name}' is not a field of an AI SDK chat request: send 'messages'.")
    messages: list[dict[str, Any]] = []
    for number, message in enumerate(request.messages):
        messages.extend(_converted(message, f"messages[{number}]"))
    extra = {name: value for name, value in data.items() if name not in UI_FIELDS}
    last = request.messages[-1]
    continued = last.id if last.role == "assistant" and _MESSAGE_ID.fullmatch(last.id) else ""
    return UIChatRequest(request.id, {**extra, "messages": messages}, continued)


def _converted(message: _Message, where: str) -> list[dict[str, Any]]:
    if message.role == "assistant":
        return _assistant(message.parts, where)
    if message.role == "system":
        return [{"role": "system", "content": "".join(_text(part, f"{where}.parts[{n}]")
                                                      for n, part in enumerate(message.parts)
                                                      if part.get("type") == "text")}]
    content: list[dict[str, Any]] = []
    for number, part in enumerate(message.parts):
        kind, at = part.get("type"), f"{where}.parts[{number}]"
        if kind == "text":
            content.append({"type": "text", "text": _text(part, at)})
        elif kind == "file":
            content.append({"type": "image_url", "image_url": {"url": _image_url(part, at)}})
    if len(content) == 1 and content[0]["type"] == "text":  # as the AI SDK's OpenAI provider sends one text
        return [{"role": "user", "content": content[0]["text"]}]
    return [{"role": "user", "content": content or ""}]


def _assistant(parts: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """An assistant message: one message per step, each followed by its tool calls' results."""
    out: list[dict[str, Any]] = []
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []

    def step_done() -> None:
        if texts or calls:
            message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
            if calls:
                message["tool_calls"] = list(calls)
            out.append(message)
            out.extend(results)
        texts.clear()
        calls.clear()
        results.clear()

    for number, part in enumerate(parts):
        kind, at = part.get("type"), f"{where}.parts[{number}]"
        if kind == "step-start":
            step_done()
        elif kind == "text":
            texts.append(_text(part, at))
        elif isinstance(kind, str) and (kind.startswith("tool-") or kind == "dynamic-tool"):
            call = _tool_call(part, kind, at)
            if call is not None:
                calls.append(call[0])
                results.append(call[1])
    step_done()
    return out


def _tool_call(part: dict[str, Any], kind: str, at: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The call and its result, or None for a call that has none yet."""
    state = part.get("state")
    if state == "output-available" and part.get("preliminary") is not True:
        output = part.get("output")
        result = output if isinstance(output, str) else _json(output)
    elif state == "output-error":
        result = _string(part, "errorText", at)
    elif state == "output-denied":
        approval = part.get("approval")
        reason = approval.get("reason") if isinstance(approval, dict) else None
        result = reason if isinstance(reason, str) else DENIED
    else:
        return None
    call_id = _string(part, "toolCallId", at)
    name = kind[len("tool-"):] if kind != "dynamic-tool" else _string(part, "toolName", at)
    arguments = _json(part.get("input") if part.get("input") is not None else {})
    return ({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}},
            {"role": "tool", "tool_call_id": call_id, "content": result})


def _json(value: Any) -> str:
    """As JSON.stringify writes it, which the AI SDK's providers send."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _image_url(part: dict[str, Any], at: str) -> str:
    media_type = _string(part, "mediaType", at)
    if media_type not in IMAGE_TYPES:
        raise _invalid(f"'{at}.mediaType' must be an image type ({', '.join(IMAGE_TYPES)}): the relay sends "
                       "images only.")
    return _string(part, "url", at)  # checked as an image URL by the relay's validation (request_images.py)


def _text(part: dict[str, Any], at: str) -> str:
    return _string(part, "text", at)


def _string(part: dict[str, Any], name: str, at: str) -> str:
    value = part.get(name)
    if not isinstance(value, str):
        raise _invalid(f"'{at}.{name}' must be a string.")
    return value


def _invalid(message: str) -> RelayError:
    return RelayError(ErrorCode.INVALID_REQUEST, message)
