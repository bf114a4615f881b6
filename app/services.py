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
from .streams.manager import StreamManager
from .streams.registry import StreamRegistry
from .streams.shared_log import SharedLogs, resume_secret
from .streams.tokens import ResumeTokens
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
    streams: StreamManager = field(init=False)

    def __post_init__(self) -> None:
        settings, socketio = self.settings, self.socketio
        object.__setattr__(self, "connections", Connections(settings.max_connections_per_client))
        shared = SharedLogs(settings.redis_url, settings.resume_ttl, socketio.sleep) if settings.redis_url else None
        tokens = ResumeTokens(resume_secret(settings, shared), bind_client=self.access.tokens_required)
        streams = StreamManager(
            upstream=self.upstream, registry=self.registry, tokens=tokens, shared=shared,
            new_event=socketio.server.eio.create_event, spawn=socketio.start_background_task, sleep=socketio.sleep,
            async_mode=settings.async_mode, grace=settings.resume_grace, ttl=settings.resume_ttl)
        object.__setattr__(self, "streams", streams)
        object.__setattr__(self, "admission", Admission(settings, self.registry))
        object.__setattr__(self, "shutdown", Shutdown(settings, self.registry, self.admission, socketio))
        if shared is not None:  # stop requests from clients on other instances
            socketio.start_background_task(shared.listen, streams.stop_here)


def current_services() -> Services:
    return services_of(current_app)


def services_of(app: Flask) -> Services:
    """The app's shared objects, for code that holds the app but runs outside a request (gunicorn's hooks)."""
    return app.extensions[EXTENSION_KEY]
