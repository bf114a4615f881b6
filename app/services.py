"""The objects that the Socket.IO handlers and the HTTP routes share, built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app
from flask_socketio import SocketIO

from .access.auth import Access
from .access.connections import Connections
from .access.limits import Admission
from .config import Settings
from .serving.shutdown import Shutdown
from .streams.log import StreamLog
from .streams.registry import StreamRegistry
from .streams.relay import Relay
from .streams.schemas import ChatRequest
from .streams.upstream import Upstream

EXTENSION_KEY = "chat_relay"


@dataclass(frozen=True)
class Services:
    settings: Settings
    upstream: Upstream
    registry: StreamRegistry
    socketio: SocketIO
    access: Access
    admission: Admission = field(init=False)
    connections: Connections = field(init=False)
    shutdown: Shutdown = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "connections", Connections(self.settings.max_connections_per_client))
        object.__setattr__(self, "admission", Admission(self.settings, self.registry))
        object.__setattr__(self, "shutdown", Shutdown(self.settings, self.registry, self.admission, self.socketio))

    def new_relay(self, request: ChatRequest) -> Relay:
        """A stream's producer and its log, whose readers wait with the async mode's own events."""
        stream_log = StreamLog(request.stream_id, self.socketio.server.eio.create_event)
        return Relay(request, self.upstream, stream_log, pause=self.socketio.sleep)


def current_services() -> Services:
    return services_of(current_app)


def services_of(app: Flask) -> Services:
    """The app's shared objects, for code that holds the app but runs outside a request (gunicorn's hooks)."""
    return app.extensions[EXTENSION_KEY]
