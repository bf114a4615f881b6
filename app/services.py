"""The objects that the Socket.IO handlers and the HTTP routes share, built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app
from flask_socketio import SocketIO

from .auth import Access
from .config import Settings
from .limits import Admission
from .registry import StreamRegistry
from .relay import Relay
from .schemas import ChatRequest
from .shutdown import Shutdown
from .upstream import Upstream

EXTENSION_KEY = "chat_relay"


@dataclass(frozen=True)
class Services:
    settings: Settings
    upstream: Upstream
    registry: StreamRegistry
    socketio: SocketIO
    access: Access
    admission: Admission = field(init=False)
    shutdown: Shutdown = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "admission", Admission(self.settings, self.registry))
        object.__setattr__(self, "shutdown", Shutdown(self))

    def new_relay(self, request: ChatRequest) -> Relay:
        """A relay that yields to other greenlets after each chunk, so writers are not starved."""
        return Relay(request, self.upstream, pause=self.socketio.sleep)


def current_services() -> Services:
    return current_app.extensions[EXTENSION_KEY]
