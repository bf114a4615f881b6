"""chat_relay: relay an OpenAI chat completion, chunk by chunk, to the client that asked, over Socket.IO and HTTP.

    from chat_relay import ChatRelay

    relay = ChatRelay(url_prefix="/ai", namespace="/ai", event="assistant")
    relay.init_app(app, socketio)

The names below load on first use, not on `import chat_relay`: a server that monkey-patches (gevent, eventlet)
can import the settings first and patch before anything networked is imported.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .access.identity import Caller, Identify, Identity
    from .config import ConfigError, Settings, load_settings
    from .errors import ErrorCode, RelayError
    from .extension import ChatRelay
    from .hooks.budget import Budget
    from .hooks.finish import FinishRecord, OnFinish, Timings
    from .hooks.prepare import Prepare
    from .standalone import create_app
    from .streams.request_validation import ChatRequest
    from .tools.tool_error import ToolError
    from .transports.socketio_handlers import EventNames

__version__ = "0.1.0"

__all__ = ["Budget", "Caller", "ChatRelay", "ChatRequest", "ConfigError", "ErrorCode", "EventNames", "FinishRecord",
           "Identify", "Identity", "OnFinish", "Prepare", "RelayError", "Settings", "Timings", "ToolError",
           "__version__", "create_app", "load_settings"]

_HOMES = {"Budget": ".hooks.budget", "Caller": ".access.identity", "ChatRequest": ".streams.request_validation",
          "FinishRecord": ".hooks.finish", "Identify": ".access.identity", "Identity": ".access.identity",
          "OnFinish": ".hooks.finish", "Prepare": ".hooks.prepare", "Timings": ".hooks.finish",
          "ChatRelay": ".extension", "ConfigError": ".config", "ErrorCode": ".errors",
          "EventNames": ".transports.socketio_handlers", "RelayError": ".errors", "Settings": ".config",
          "create_app": ".standalone", "load_settings": ".config", "ToolError": ".tools.tool_error"}


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'chat_relay' has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
