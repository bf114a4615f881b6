"""The objects that the Socket.IO handlers and the HTTP routes share, built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app
from flask_socketio import SocketIO

from .access.auth import Access
from .access.connections import Connections
from .access.limits import Admission
from .access.metrics_access import MetricsAccess
from .config import Settings
from .observability.metrics import Metrics
from .serving.readiness import Readiness
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
    metrics: Metrics
    admission: Admission = field(init=False)
    connections: Connections = field(init=False)
    metrics_access: MetricsAccess = field(init=False)
    shutdown: Shutdown = field(init=False)
    readiness: Readiness = field(init=False)
    streams: StreamManager = field(init=False)

    def __post_init__(self) -> None:
        settings, socketio = self.settings, self.socketio
        object.__setattr__(self, "connections", Connections(settings.max_connections_per_client))
        object.__setattr__(self, "metrics_access", MetricsAccess(settings.metrics_allow, self.access.host_allowed))
        shared = SharedLogs(settings.redis_url, settings.resume_ttl, socketio.sleep,
                            new_event=socketio.server.eio.create_event,
                            spawn=socketio.start_background_task) if settings.redis_url else None
        tokens = ResumeTokens(resume_secret(settings, shared), bind_client=self.access.tokens_required)
        streams = StreamManager(
            upstream=self.upstream, registry=self.registry, tokens=tokens, shared=shared,
            new_event=socketio.server.eio.create_event, spawn=socketio.start_background_task, sleep=socketio.sleep,
            async_mode=settings.async_mode, grace=settings.resume_grace, ttl=settings.resume_ttl, metrics=self.metrics,
            buffered=settings.max_buffered_bytes, stall_after=settings.stalled_reader_timeout)
        object.__setattr__(self, "streams", streams)
        object.__setattr__(self, "admission", Admission(settings, self.registry))
        object.__setattr__(self, "shutdown", Shutdown(settings, self.registry, self.admission, socketio))
        readiness = Readiness(self.shutdown, shared.ping if shared is not None else None, socketio.sleep)
        object.__setattr__(self, "readiness", readiness)
        self.metrics.watch(running=self.registry.__len__, connections=lambda: self.connections.total,
                           ready=readiness.ready)
        if shared is not None:  # stop requests from clients on other instances; is Redis there
            socketio.start_background_task(shared.listen, streams.stop_here)
            socketio.start_background_task(readiness.watch)


def current_services() -> Services:
    return services_of(current_app)


def services_of(app: Flask) -> Services:
    """The app's shared objects, for code that holds the app but runs outside a request (gunicorn's hooks)."""
    return app.extensions[EXTENSION_KEY]
