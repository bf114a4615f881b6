"""The exception a server-side tool raises to tell the user why it could not answer."""

from __future__ import annotations


class ToolError(Exception):
    """Raised by a tool: its message goes to the client (a `tool_error` part) and to the model, as written.

    Any other exception a tool raises is a bug: the client and the model get a generic message, and the server's
    log names the exception's type and line (never its message, which may hold anything).
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
