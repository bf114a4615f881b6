"""The objects that the Socket.IO handlers and the HTTP routes share, built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask, current_app
from flask_socketio import SocketIO

from .access.admission import Admission
from .access.auth import Access
from .access.connections import Connections
from .access.metrics_access import MetricsAccess
from .async_drivers import AsyncDriver, driver_for
from .config import Settings
from .hooks.team_hooks import HookRunner, Hooks
from .lifecycle.readiness import Readiness, redis_probe
from .lifecycle.shutdown import Shutdown
from .observability.metrics import Metrics
from .streams.manager import StreamManager
from .streams.registry import StreamRegistry
from .streams.resume_tokens import ResumeTokens, resume_secret
from .streams.shared_buffer import SharedBuffers
from .streams.upstream import Upstream
from .tools.loop import AppTools
from .tools.registry import ToolRegistry

EXTENSION_KEY = "chat_relay"


@dataclass(frozen=True)
class Services:
    settings: Settings
    upstream: Upstream
    registry: StreamRegistry
    socketio: SocketIO
    access: Access
    metrics: Metrics
    tools: ToolRegistry = field(default_factory=ToolRegistry)  # the app's server-side tools (@relay.tool)
    team_hooks: Hooks = field(default_factory=Hooks)  # what the team gave ChatRelay
    admission: Admission = field(init=False)
    connections: Connections = field(init=False)
    metrics_access: MetricsAccess = field(init=False)
    shutdown: Shutdown = field(init=False)
    readiness: Readiness = field(init=False)
    streams: StreamManager = field(init=False)
    driver: AsyncDriver = field(init=False)  # the async mode's primitives, chosen once
    hooks: HookRunner = field(init=False)  # the team's hooks, around each stream's start and end

    def __post_init__(self) -> None:
        settings, socketio = self.settings, self.socketio
        driver = driver_for(socketio)
        object.__setattr__(self, "driver", driver)
        object.__setattr__(self, "connections", Connections(settings.max_connections_per_client))
        object.__setattr__(self, "metrics_access", MetricsAccess(settings.metrics_allow, self.access.host_allowed))
        shared = SharedBuffers(settings.redis_url, settings.resume_ttl, driver.sleep, new_event=driver.new_event,
                               spawn=driver.spawn) if settings.redis_url else None
        secret = resume_secret(settings, shared.redis if shared is not None else None)
        tokens = ResumeTokens(secret, bind_client=self.access.authenticates)
        streams = StreamManager(
            upstream=self.upstream, registry=self.registry, tokens=tokens, shared=shared,
            driver=driver, grace=settings.resume_grace, ttl=settings.resume_ttl, metrics=self.metrics,
            buffered=settings.max_buffered_bytes, stall_after=settings.stalled_reader_timeout,
            tools=AppTools(self.tools, driver, settings, self.metrics), store_timeout=settings.redis_timeout)
        object.__setattr__(self, "streams", streams)
        object.__setattr__(self, "admission", Admission(settings, self.registry))
        object.__setattr__(self, "hooks", HookRunner(self.team_hooks, settings, self.admission, driver))
        object.__setattr__(self, "shutdown", Shutdown(settings, self.registry, self.admission, socketio, driver,
                                                      hooks_running=lambda: self.hooks.pending))
        ping = redis_probe(settings.redis_url) if settings.redis_url else None
        readiness = Readiness(self.shutdown, ping, driver.sleep)
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
