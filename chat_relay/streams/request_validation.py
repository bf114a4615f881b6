"""Request validation: untrusted JSON in, a ChatRequest out, or an invalid_request RelayError."""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

import orjson
from openai.types.shared import ReasoningEffort
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from ..config import Settings
from ..errors import ErrorCode, RelayError
from .request_images import image_url_problem

STREAM_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_STREAM_ID = re.compile(STREAM_ID_PATTERN)


_STRICT = ConfigDict(strict=True, extra="forbid")
# A function's name, as the OpenAI API takes it (tools, tool calls, tool_choice, a json_schema's name).
NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# The reasoning efforts the installed openai client knows (its ReasoningEffort, without None).
REASONING_EFFORTS: tuple[str, ...] = tuple(
    value for arg in get_args(ReasoningEffort) for value in get_args(arg) if isinstance(value, str))
# The request fields passed to the upstream exactly as the client sent them, when it sent them.
PASSED_AS_SENT = ("tools", "tool_choice", "parallel_tool_calls", "response_format", "stop", "seed", "top_p",
                  "presence_penalty", "frequency_penalty", "reasoning_effort", "max_completion_tokens")
_PASSED = frozenset(PASSED_AS_SENT)

# Unions are told apart by one key (or by being a string or a list), so a refusal speaks of the branch the
# client meant, never of every branch it did not. The tags (with an "=") show in pydantic's error locations,
# and describe leaves them out.
_TAGS: set[str] = set()
# A model validator's ValueError that starts with it names a field of its object: _FIELD name _FIELD problem.
_FIELD = "\x1f"


def _by(key: str, values: tuple[str, ...], field: str | None = None) -> Any:
    """A discriminator on `key`'s value (a str or a list, for key "*"), refusing any other in our words."""
    _TAGS.update(f"{key}={value}" for value in values)

    def tag(value: object) -> str | None:
        if key == "*":
            return f"*={type(value).__name__}" if isinstance(value, (str, list, dict)) else None
        found = value.get(key) if isinstance(value, dict) else None
        return f"{key}={found}" if isinstance(found, str) else None

    expected = " or ".join((", ".join(f"'{v}'" for v in values[:-1]), f"'{values[-1]}'")) if len(values) > 1 \
        else f"'{values[0]}'"
    # The field and what it takes ride in the message: a context dict would make the type unhashable.
    return Discriminator(tag, custom_error_type="bad_tag",
                         custom_error_message=f"{field if field is not None else key}\x1f{expected}")


def _plain_json(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema the client wrote, which the upstream's JSON encoder must take: no NaN or infinity (Python's
    JSON parser reads them), no integer orjson cannot write, no bytes (a Socket.IO binary attachment), and no
    deeper than orjson writes. Walked without recursion: it may be as deep as the parser allowed."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)) and depth > _JSON_DEPTH:
            raise ValueError(f"{_FIELD}{_FIELD}must nest at most {_JSON_DEPTH} levels deep.")
        if isinstance(item, dict):
            stack.extend((kid, depth + 1) for kid in item.values())
        elif isinstance(item, list):
            stack.extend((kid, depth + 1) for kid in item)
        elif not isinstance(item, (str, int, float, bool, type(None))) or (
                isinstance(item, float) and not math.isfinite(item)) or (
                isinstance(item, int) and not -(2**63) <= item < 2**64):  # what orjson, the checker below, takes
            raise ValueError(f"{_FIELD}{_FIELD}must hold plain JSON: finite numbers of at most 64 bits, "
                             "no binary data.")
    return value


_JSON_DEPTH = 64  # deep enough for any schema; well within what orjson writes (255 levels in all)
_JsonObject = Annotated[dict[str, Any], AfterValidator(_plain_json)]


class _TextPart(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str


class _ImageUrl(BaseModel):
    model_config = _STRICT
    url: str
    detail: Literal["auto", "low", "high"] = "auto"  # the default is never sent: the client's own dict is


class _ImagePart(BaseModel):
    model_config = _STRICT
    type: Literal["image_url"]
    image_url: _ImageUrl


_TextParts = Annotated[list[_TextPart], Field(min_length=1)]
_UserParts = Annotated[list[Annotated[
    Annotated[_TextPart, Tag("type=text")] | Annotated[_ImagePart, Tag("type=image_url")],
    _by("type", ("text", "image_url"))]], Field(min_length=1)]
_TEXT_CONTENT = "a string or a list of text parts"
_TextContent = Annotated[Annotated[str, Tag("*=str")] | Annotated[_TextParts, Tag("*=list")],
                         _by("*", ("str", "list"), field="")]
_UserContent = Annotated[Annotated[str, Tag("*=str")] | Annotated[_UserParts, Tag("*=list")],
                         _by("*", ("str", "list"), field="")]


class _FunctionCall(BaseModel):
    model_config = _STRICT
    name: str = Field(pattern=NAME_PATTERN)
    arguments: str


class _ToolCall(BaseModel):
    model_config = _STRICT
    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"]
    function: _FunctionCall


class _SystemMessage(BaseModel):
    model_config = _STRICT
    role: Literal["system"]
    content: _TextContent


class _DeveloperMessage(BaseModel):
    model_config = _STRICT
    role: Literal["developer"]
    content: _TextContent


class _UserMessage(BaseModel):
    model_config = _STRICT
    role: Literal["user"]
    content: _UserContent


class _AssistantMessage(BaseModel):
    model_config = _STRICT
    role: Literal["assistant"]
    content: _TextContent | None = None
    tool_calls: list[_ToolCall] = Field(default_factory=list, min_length=1)  # absent is fine; [] and null are not

    @model_validator(mode="after")
    def _says_something(self) -> _AssistantMessage:
        if self.content is None and "tool_calls" not in self.model_fields_set:
            raise ValueError(f"{_FIELD}content{_FIELD}is missing: an assistant message needs it unless it has "
                             "'tool_calls'.")
        return self


class _ToolMessage(BaseModel):
    model_config = _STRICT
    role: Literal["tool"]
    tool_call_id: str = Field(min_length=1, max_length=256)
    content: _TextContent


_ROLES = ("system", "developer", "user", "assistant", "tool")
_Message = Annotated[
    Annotated[_SystemMessage, Tag("role=system")] | Annotated[_DeveloperMessage, Tag("role=developer")]
    | Annotated[_UserMessage, Tag("role=user")] | Annotated[_AssistantMessage, Tag("role=assistant")]
    | Annotated[_ToolMessage, Tag("role=tool")],
    _by("role", _ROLES)]


class _FunctionDefinition(BaseModel):
    model_config = _STRICT
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    parameters: _JsonObject = Field(default_factory=dict)  # a JSON Schema; the upstream reads it
    strict: bool = False


class _Tool(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: _FunctionDefinition


class _ToolName(BaseModel):
    model_config = _STRICT
    name: str = Field(pattern=NAME_PATTERN)


class _NamedToolChoice(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    function: _ToolName


_ToolChoice = Annotated[Annotated[Literal["none", "auto", "required"], Tag("*=str")]
                        | Annotated[_NamedToolChoice, Tag("*=dict")], _by("*", ("str", "dict"), field="")]


class _TextFormat(BaseModel):
    model_config = _STRICT
    type: Literal["text"]


class _JsonObjectFormat(BaseModel):
    model_config = _STRICT
    type: Literal["json_object"]


class _JsonSchema(BaseModel):
    model_config = _STRICT
    name: str = Field(pattern=NAME_PATTERN)
    schema_: _JsonObject = Field(default_factory=dict, alias="schema")
    description: str = ""
    strict: bool = False


class _JsonSchemaFormat(BaseModel):
    model_config = _STRICT
    type: Literal["json_schema"]
    json_schema: _JsonSchema


_ResponseFormat = Annotated[
    Annotated[_TextFormat, Tag("type=text")] | Annotated[_JsonObjectFormat, Tag("type=json_object")]
    | Annotated[_JsonSchemaFormat, Tag("type=json_schema")],
    _by("type", ("text", "json_object", "json_schema"))]
_StopWord = Annotated[str, Field(min_length=1)]
_Stop = Annotated[Annotated[_StopWord, Tag("*=str")]
                  | Annotated[Annotated[list[_StopWord], Field(min_length=1, max_length=4)], Tag("*=list")],
                  _by("*", ("str", "list"), field="")]


class _ChatRequestIn(BaseModel):
    """The wire shape of a request; strict, so `"5"` is not a number and typos are not ignored.

    The new fields are passed on as the client sent them (its own dict, not this model), and refuse `null`:
    a field is left out, or has a value."""

    model_config = _STRICT

    prompt: str | None = None
    messages: list[_Message] | None = None
    model: str | None = None
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1)
    stream_id: str | None = Field(None, pattern=STREAM_ID_PATTERN)
    # None when absent; a `null` sent is refused by _one_conversation below.
    tools: list[_Tool] | None = None
    tool_choice: _ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: _ResponseFormat | None = None
    stop: _Stop | None = None
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    top_p: float | None = Field(None, ge=0, le=1, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2, le=2, allow_inf_nan=False)
    frequency_penalty: float | None = Field(None, ge=-2, le=2, allow_inf_nan=False)
    reasoning_effort: Literal[REASONING_EFFORTS] | None = None  # type: ignore[valid-type]
    max_completion_tokens: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_conversation(self) -> _ChatRequestIn:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("Send either 'prompt' or 'messages', not both.")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("'prompt' must not be empty.")
        if self.messages is not None and not self.messages:
            raise ValueError("'messages' must hold at least one message.")
        for name in self.model_fields_set & _PASSED:
            if getattr(self, name) is None:
                raise ValueError(f"'{name}' must not be null: leave it out instead.")
        if self.max_tokens is not None and self.max_completion_tokens is not None:
            raise ValueError("Send either 'max_tokens' or 'max_completion_tokens', not both.")
        for needs_tools in ("tool_choice", "parallel_tool_calls"):
            if getattr(self, needs_tools) is not None and not self.tools:
                raise ValueError(f"'{needs_tools}' needs 'tools'.")
        if self.tools is None:
            return self
        names = [tool.function.name for tool in self.tools]
        if len(set(names)) < len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise ValueError(f"'tools' names the function {twice!r} twice: names must be unique.")
        if isinstance(self.tool_choice, _NamedToolChoice) and self.tool_choice.function.name not in names:
            raise ValueError(f"'tool_choice.function.name' must name one of 'tools': "
                             f"{self.tool_choice.function.name!r} is none of them.")
        return self


@dataclass(frozen=True)
class ChatRequest:
    """A validated request, ready for the upstream: the system prompt added, the model resolved.

    `messages` and `options` are the client's own JSON values (validated, never rebuilt), so the upstream
    gets each field exactly as it was sent; `options` holds the PASSED_AS_SENT fields the client sent."""

    stream_id: str
    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


def parse_chat_request(data: object, settings: Settings) -> ChatRequest:
    """Validate a client's payload against the protocol and the server's limits."""
    if not isinstance(data, dict):
        raise _invalid("The request must be a JSON object.")
    try:
        raw = _ChatRequestIn.model_validate(data)
    except ValidationError as err:
        raise _invalid(describe(err)) from None

    if raw.prompt is not None:
        messages: list[dict[str, Any]] = [{"role": "user", "content": raw.prompt}]
    else:
        messages = list(data["messages"])  # validated above: each a dict in one of the message shapes
    if len(messages) > settings.max_messages:
        raise _invalid(f"Too many messages: at most {settings.max_messages} are allowed.")
    if text_length(messages) > settings.max_prompt_chars:
        raise _invalid(f"The conversation is too long: at most {settings.max_prompt_chars:,} characters are allowed.")
    options = {name: value for name, value in data.items() if name in _PASSED}
    try:  # one pass over every string the upstream will get: the JSON encoder refuses lone surrogates
        orjson.dumps([messages, options])
    except orjson.JSONEncodeError:
        raise _invalid("The text contains invalid Unicode (an unpaired surrogate).") from None
    if raw.prompt is None:
        _check_images(messages, settings)
    if raw.tools:
        _check_tools(options["tools"], settings)

    model = raw.model or settings.openai_model
    if model not in settings.allowed_models:
        raise _invalid(f"Unknown model {model[:64]!r}: choose one of {', '.join(settings.allowed_models)}.")
    if raw.max_tokens is not None and raw.max_tokens > settings.max_tokens_limit:
        raise _invalid(f"'max_tokens' must be at most {settings.max_tokens_limit}.")
    if raw.max_completion_tokens is not None and raw.max_completion_tokens > settings.max_tokens_limit:
        raise _invalid(f"'max_completion_tokens' must be at most {settings.max_tokens_limit}.")
    if settings.system_prompt:
        messages.insert(0, {"role": "system", "content": settings.system_prompt})
    # DEFAULT_MAX_TOKENS for a request that bounds its reply neither way (the upstream refuses both together)
    default = settings.default_max_tokens if "max_completion_tokens" not in options else None

    return ChatRequest(
        stream_id=raw.stream_id or uuid.uuid4().hex,
        model=model,
        messages=messages,
        temperature=raw.temperature if raw.temperature is not None else settings.default_temperature,
        max_tokens=raw.max_tokens if raw.max_tokens is not None else default,
        options=options,
    )


def text_length(messages: list[dict[str, Any]]) -> int:
    """The characters MAX_PROMPT_CHARS counts: every content's text, tool calls' arguments, tool results; no image."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif content is not None:
            total += sum(len(part["text"]) for part in content if part["type"] == "text")
        for call in message.get("tool_calls", ()):
            total += len(call["function"]["arguments"])
    return total


def _check_images(messages: list[dict[str, Any]], settings: Settings) -> None:
    """At most MAX_IMAGES, each a data: URL of the image type it declares (or an https: URL, when allowed)."""
    count = 0
    for m, message in enumerate(messages):
        content = message["content"]
        if message["role"] != "user" or isinstance(content, str):
            continue
        for p, part in enumerate(content):
            if part["type"] != "image_url":
                continue
            count += 1
            if count > settings.max_images:
                raise _invalid(f"'messages[{m}].content[{p}]' is one image too many: at most "
                               f"{settings.max_images} are allowed per request.")
            problem = image_url_problem(part["image_url"]["url"], settings.max_image_bytes,
                                        settings.allow_image_urls)
            if problem is not None:
                raise _invalid(f"'messages[{m}].content[{p}].image_url.url' {problem}.")


def _check_tools(tools: list[dict[str, Any]], settings: Settings) -> None:
    if len(tools) > settings.max_tools:
        raise _invalid(f"'tools' holds too many tools: at most {settings.max_tools} are allowed.")
    size = len(orjson.dumps(tools))
    if size > settings.max_tools_bytes:
        raise _invalid(f"'tools' is too large: at most {settings.max_tools_bytes:,} bytes as compact JSON "
                       "are allowed.")


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
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "float_type": "must be a number",
    "int_type": "must be a whole number",
    "bool_type": "must be true or false",
    "finite_number": "must be a finite number",
    "literal_error": "must be {expected}",
    "greater_than_equal": "must be at least {ge:g}",
    "less_than_equal": "must be at most {le:g}",
    "string_pattern_mismatch": "must be 1 to 64 letters, digits, '_' or '-'",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must hold at least {min_length} item(s)",
    "too_long": "must hold at most {max_length} items",
    "missing": "is missing",
    "extra_forbidden": "is not a known field",
}


def describe(err: ValidationError) -> str:
    """One sentence, in our voice, from pydantic's first error."""
    first = err.errors(include_url=False, include_input=True)[0]
    ctx = first.get("ctx", {})
    loc = list(first["loc"])
    client_key = loc.pop() if first["type"] == "extra_forbidden" else None  # the client's, whatever it reads
    loc = [part for part in loc if part not in _TAGS] + ([client_key] if client_key is not None else [])
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    where = where if len(where) <= 64 else where[:64] + "..."  # an unknown field's name is the client's
    if first["type"] == "value_error":  # our own validator's sentence, or a field of this object and its problem
        said = str(ctx.get("error", "The request is not valid."))
        if said.startswith(_FIELD):
            name, problem = said[1:].split(_FIELD)
            return f"'{'.'.join(part for part in (where, name) if part)}' {problem}"
        return said
    if first["type"] == "too_short" and ctx.get("min_length") == 1:
        return f"'{where}' must not be empty."
    if first["type"] == "bad_tag":  # a union's branch not found: say what the client's value should have been
        (key, shapes), given = first["msg"].split("\x1f"), first.get("input")
        if key == "":
            expected = "must be a string or a list" if "list" in shapes else "must be a string or an object"
        elif not isinstance(given, dict):
            expected = f"must be an object with '{key}'" + (" and 'content'" if key == "role" else "")
        else:
            where, expected = f"{where}.{key}".lstrip("."), f"must be {shapes}"
        return f"'{where}' {expected}."
    expected = _EXPECTED.get(first["type"], "is not valid")
    try:
        expected = expected.format(**ctx)
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
        raise _invalid(describe(err)) from None
    return ResumeRequest(raw.stream_id, raw.after_seq, raw.resume_token)
