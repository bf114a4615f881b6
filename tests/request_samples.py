"""Requests that use every field of docs/protocol.md's request, and images of a given size, for the tests of
request validation (fast) and of what reaches the upstream (live)."""

from __future__ import annotations

import base64
import os

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_url(size: int, kind: str = "png", head: bytes = PNG_SIGNATURE) -> str:
    """A data: URL of `size` bytes that start as `head` (a PNG's signature by default), declared as image/`kind`."""
    body = head + os.urandom(max(0, size - len(head)))
    return f"data:image/{kind};base64,{base64.b64encode(body).decode()}"


def image_part(url: str, **extra: object) -> dict:
    return {"type": "image_url", "image_url": {"url": url, **extra}}


def tool(name: str, **extra: object) -> dict:
    return {"type": "function", "function": {"name": name, **extra}}


WEATHER = tool("get_weather", description="The weather in a city, now.", strict=True, parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False})


def every_field(tag: str, image: str) -> dict:
    """One request with every new field and message shape, `tag` in its text so a test finds it in the fake."""
    return {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "developer", "content": "Prefer metric units."},
            {"role": "user", "content": [{"type": "text", "text": f"What is this? {tag}"},
                                         image_part(image, detail="low")]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                                  "arguments": '{"city": "Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "3 °C, snow"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Snowy."}]},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "response_format": {"type": "json_schema", "json_schema": {
            "name": "answer", "description": "The reply", "strict": True,
            "schema": {"type": "object", "properties": {"text": {"type": "string"}}}}},
        "stop": ["\n\n", "END"],
        "seed": 42,
        "top_p": 0.5,
        "presence_penalty": -1.5,
        "frequency_penalty": 2,
        "reasoning_effort": "low",
        "max_completion_tokens": 100,
        "temperature": 0.2,
    }
