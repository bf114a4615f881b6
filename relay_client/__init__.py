"""A small Python client for the chat relay, over Socket.IO or HTTP (docs/protocol.md is the contract).

    from relay_client import RelayClient

    with RelayClient("http://127.0.0.1:8000") as client, client.stream("What does 42 signify?") as reply:
        for text in reply:
            print(text, end="", flush=True)
    print(reply.done.finish_reason)

`reply.parts()` yields everything the model streams as typed parts (`TextPart`, `ReasoningPart`, `ToolCallPart`,
`RefusalPart`, and `ToolResultPart` or `ToolErrorPart` for a tool the server ran); after the end, `reply.reasoning`,
`reply.tool_calls`, `reply.tool_results` and `reply.done` hold it whole.

Errors come as exceptions: `RelayError` with the protocol's `.code` and `.message`, a subclass per code
(`InvalidRequest`, `RateLimited`...). It needs only `python-socketio[client]` and `requests`
(relay_client/requirements.txt), not the server's packages.
"""

from relay_client.client import RelayClient, Transport
from relay_client.errors import (
    BudgetExceeded,
    HostNotAllowed,
    InternalError,
    Interrupted,
    InvalidRequest,
    OriginNotAllowed,
    RateLimited,
    RelayConnectionError,
    RelayError,
    ResumeUnavailable,
    ServerShutdown,
    StalledReader,
    StreamExpired,
    TooManyConnections,
    TooManyStreams,
    Unauthorized,
    UpstreamAuth,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from relay_client.messages import image_part, tool_message
from relay_client.parts import (
    Part,
    ReasoningPart,
    RefusalPart,
    TextPart,
    ToolCall,
    ToolCallPart,
    ToolErrorPart,
    ToolResultPart,
)
from relay_client.reply import Chunk, Done, Reply

__all__ = [
    "BudgetExceeded", "Chunk", "Done", "HostNotAllowed", "InternalError", "Interrupted", "InvalidRequest",
    "OriginNotAllowed", "Part",
    "RateLimited", "ReasoningPart", "RefusalPart", "RelayClient", "RelayConnectionError", "RelayError", "Reply",
    "ResumeUnavailable", "ServerShutdown", "StalledReader", "StreamExpired", "TextPart", "TooManyConnections",
    "TooManyStreams", "ToolCall", "ToolCallPart", "ToolErrorPart", "ToolResultPart", "Transport", "Unauthorized",
    "UpstreamAuth", "UpstreamError", "UpstreamTimeout", "UpstreamUnavailable", "image_part", "tool_message",
]
