"""Building the request's messages: an image as a content part, a tool's answer as a `tool` message.

A message is a plain dict in the protocol's shape (docs/protocol.md, "The request"), so a conversation can be kept,
stored or sent as JSON; these helpers only spare the caller the data: URL and the key names.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Literal

Message = Mapping[str, Any]
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")  # what the server accepts


def image_part(data: bytes, media_type: str, detail: Literal["auto", "low", "high"] | None = None) -> dict[str, Any]:
    """An image to put in a user message's content list, as a data: URL (the server checks its bytes and size)."""
    if media_type not in IMAGE_TYPES:
        raise ValueError(f"media_type must be one of {', '.join(IMAGE_TYPES)}, not {media_type!r}")
    image: dict[str, Any] = {"url": f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"}
    if detail is not None:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def tool_message(tool_call_id: str, content: str) -> dict[str, Any]:
    """The answer to one tool call, to send after the assistant message that made it."""
    return {"role": "tool", "tool_call_id": tool_call_id, "content": content}
