"""The tools a team registered with `@relay.tool`: each function's name, description and JSON Schema, read from its
signature by pydantic, and the offer of them in every request's `tools`."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..errors import ErrorCode, RelayError
from ..streams.request_validation import NAME_PATTERN, ChatRequest
from .tool_error import ToolError

_NAME = re.compile(NAME_PATTERN)
_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@dataclasses.dataclass(frozen=True)
class Tool:
    """One registered function, and the model that validates the arguments the model wrote for it."""

    name: str
    description: str
    function: Callable[..., Any]
    arguments_model: type[BaseModel]

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON Schema of its arguments, as the model is offered it."""
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        return schema

    def definition(self) -> dict[str, Any]:
        """The function tool of a request's `tools`."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def arguments(self, text: str) -> dict[str, Any]:
        """The call's whole arguments (JSON text), validated: the keyword arguments to call it with. Raises
        ToolError naming the first problem."""
        problem = f"The arguments of tool {self.name!r} are not valid: "
        try:
            parsed = orjson.loads(text or "{}")  # a call without arguments is sent as "" by some servers
        except orjson.JSONDecodeError:
            raise ToolError(problem + "they are not JSON.") from None
        if not isinstance(parsed, dict):
            raise ToolError(problem + "they must be a JSON object.")
        try:
            valid = self.arguments_model.model_validate(parsed)
        except ValidationError as err:
            first = err.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ToolError(problem + (f"'{where}': " if where else "") + first["msg"] + ".") from None
        return {name: getattr(valid, name) for name in type(valid).model_fields}


def tool_of(function: Callable[..., Any], name: str | None = None, description: str | None = None) -> Tool:
    """A Tool for `function`: its arguments' schema from its type hints (a parameter without one takes any JSON
    value, one with a default is optional), its description from its docstring unless given."""
    name = name or function.__name__
    if not _NAME.fullmatch(name):
        raise ValueError(f"a tool's name must match {NAME_PATTERN} (letters, digits, _ and -); got {name!r}")
    hints = inspect.get_annotations(function, eval_str=True)
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind not in _KINDS:
            raise ValueError(f"tool {name!r}: the model passes named arguments only; {parameter.name!r} cannot "
                             "take them (*args, **kwargs and positional-only parameters are not offered)")
        hint = hints.get(parameter.name, Any)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (hint, default)
    model = create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    text = description if description is not None else inspect.getdoc(function) or ""
    return Tool(name, text.strip(), function, model)


class ToolRegistry:
    """The app's registered tools, by name; each name once."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._definitions: list[dict[str, Any]] = []  # built once: every request is sent them

    def add(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"a tool named {tool.name!r} is registered already: give one of them another name "
                             "(@relay.tool(name=...))")
        self._tools[tool.name] = tool
        self._definitions.append(tool.definition())

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def offered(self, request: ChatRequest) -> ChatRequest:
        """The request with the registered tools after the client's own; a client tool of the same name is
        refused, as the relay would not know whose call it is."""
        if not self._tools:
            return request
        client_tools: list[dict[str, Any]] = request.options.get("tools") or []
        for tool in client_tools:
            taken = tool["function"]["name"]
            if taken in self._tools:
                raise RelayError(ErrorCode.INVALID_REQUEST,
                                 f"'tools' names the function {taken!r}, which is a tool of the server's.")
        tools = [*client_tools, *self._definitions]
        return dataclasses.replace(request, options={**request.options, "tools": tools})
