"""Request validation: untrusted JSON in, a ChatRequest out, or an invalid_request RelayError."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config import Settings
from ..errors import ErrorCode, RelayError

STREAM_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_STREAM_ID = re.compile(STREAM_ID_PATTERN)


class _Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str


class _ChatRequestIn(BaseModel):
    """The wire shape of a request; strict, so `"5"` is not a number and typos are not ignored."""

    model_config = ConfigDict(strict=True, extra="forbid")

    prompt: str | None = None
    messages: list[_Message] | None = None
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1)
    stream_id: str | None = Field(None, pattern=STREAM_ID_PATTERN)

    @model_validator(mode="after")
    def _one_conversation(self) -> _ChatRequestIn:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("Send either 'prompt' or 'messages', not both.")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("'prompt' must not be empty.")
        if self.messages is not None and not self.messages:
            raise ValueError("'messages' must hold at least one message.")
        return self


@dataclass(frozen=True)
class ChatRequest:
    """A validated request, ready for the upstream: the system prompt added, the model resolved."""

    stream_id: str
    model: str
    messages: list[dict[str, str]]
    temperature: float | None = None
    max_tokens: int | None = None


def parse_chat_request(data: object, settings: Settings) -> ChatRequest:
    """Validate a client's payload against the protocol and the server's limits."""
    if not isinstance(data, dict):
        raise _invalid("The request must be a JSON object.")
    try:
        raw = _ChatRequestIn.model_validate(data)
    except ValidationError as err:
        raise _invalid(_describe(err)) from None

    if raw.prompt is not None:
        messages = [{"role": "user", "content": raw.prompt}]
    else:
        messages = [m.model_dump() for m in raw.messages or []]
    if len(messages) > settings.max_messages:
        raise _invalid(f"Too many messages: at most {settings.max_messages} are allowed.")
    if sum(len(m["content"]) for m in messages) > settings.max_prompt_chars:
        raise _invalid(f"The conversation is too long: at most {settings.max_prompt_chars:,} characters are allowed.")
    if not all(_is_encodable(m["content"]) for m in messages):
        raise _invalid("The text contains invalid Unicode (an unpaired surrogate).")

    model = raw.model or settings.openai_model
    if model not in settings.allowed_models:
        raise _invalid(f"Unknown model {model[:64]!r}: choose one of {', '.join(settings.allowed_models)}.")
    if raw.max_tokens is not None and raw.max_tokens > settings.max_tokens_limit:
        raise _invalid(f"'max_tokens' must be at most {settings.max_tokens_limit}.")
    if settings.system_prompt:
        messages.insert(0, {"role": "system", "content": settings.system_prompt})

    return ChatRequest(
        stream_id=raw.stream_id or uuid.uuid4().hex,
        model=model,
        messages=messages,
        temperature=raw.temperature if raw.temperature is not None else settings.default_temperature,
        max_tokens=raw.max_tokens if raw.max_tokens is not None else settings.default_max_tokens,
    )


def requested_stream_id(data: object) -> str | None:
    """The client's stream_id if it is well-formed, so even a rejected request's error names it."""
    candidate = data.get("stream_id") if isinstance(data, dict) else None
    return candidate if isinstance(candidate, str) and _STREAM_ID.fullmatch(candidate) else None


def _invalid(message: str) -> RelayError:
    return RelayError(ErrorCode.INVALID_REQUEST, message)


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# What a field must be, by pydantic's error type, in the same voice as the messages above: one sentence that
# names the field in quotes and says what it takes. pydantic's own wording ("Input should be...") never reaches
# the client, nor the input itself, which may be huge.
_EXPECTED = {
    "string_type": "must be a string",
    "list_type": "must be a list",
    "model_type": "must be an object with 'role' and 'content'",
    "float_type": "must be a number",
    "int_type": "must be a whole number",
    "finite_number": "must be a finite number",
    "literal_error": "must be {expected}",
    "greater_than_equal": "must be at least {ge:g}",
    "less_than_equal": "must be at most {le:g}",
    "string_pattern_mismatch": "must be 1 to 64 letters, digits, '_' or '-'",
    "string_too_long": "must be at most {max_length} characters",
    "missing": "is missing",
    "extra_forbidden": "is not a known field",
}


def _describe(err: ValidationError) -> str:
    """One sentence, in our voice, from pydantic's first error."""
    first = err.errors(include_url=False, include_input=False)[0]
    if first["type"] == "value_error":  # our own model validator's sentence
        return str(first.get("ctx", {}).get("error", "The request is not valid."))
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".")
    where = where if len(where) <= 64 else where[:64] + "..."  # an unknown field's name is the client's
    expected = _EXPECTED.get(first["type"], "is not valid")
    try:
        expected = expected.format(**first.get("ctx", {}))
    except (KeyError, ValueError):
        expected = "is not valid"
    return f"'{where}' {expected}." if where else "The request is not valid."


class _ResumeIn(BaseModel):
    """A resume request (docs/protocol.md, "Resuming a stream")."""

    model_config = ConfigDict(strict=True, extra="forbid")

    stream_id: str = Field(pattern=STREAM_ID_PATTERN)
    after_seq: int = Field(-1, ge=-1)
    resume_token: str = Field(max_length=1000)


@dataclass(frozen=True)
class ResumeRequest:
    stream_id: str
    after_seq: int
    resume_token: str


def parse_resume_request(data: object) -> ResumeRequest:
    if not isinstance(data, dict):
        raise _invalid("The resume request must be a JSON object.")
    try:
        raw = _ResumeIn.model_validate(data)
    except ValidationError as err:
        raise _invalid(_describe(err)) from None
    return ResumeRequest(raw.stream_id, raw.after_seq, raw.resume_token)
