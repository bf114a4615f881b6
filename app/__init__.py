"""A Flask-SocketIO server that relays an OpenAI chat completion, chunk by chunk, to the client that asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from .config import Settings

# Socket.IO messages and HTTP bodies larger than this are refused before they are parsed.
MAX_REQUEST_BYTES = 1_000_000
# Connections one server process serves at once, idle ones included: gunicorn's worker_connections, eventlet's
# max_size. README "Security and limits" says how it relates to MAX_CONNECTIONS_PER_CLIENT and nginx's limit_conn.
WORKER_CONNECTIONS = 2000


def socketio_queue(redis_url: str | None) -> dict[str, object]:
    """Flask-SocketIO's message queue on REDIS_URL, so that an emit from any instance reaches any client.

    The relay's own emits go straight to their client (`ignore_queue`): a stream never waits on Redis, nor is
    dropped while Redis is away. redis-py's default socket timeout would cut the queue's pub/sub listener,
    which waits for messages indefinitely: it has none, and health checks instead.
    """
    if not redis_url:
        return {}
    from socketio import RedisManager

    options = {"socket_timeout": None, "socket_connect_timeout": 2, "health_check_interval": 15,
               "socket_keepalive": True}
    return {"client_manager": RedisManager(redis_url, redis_options=options)}


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app. Imports live in here so `python -m app` can monkey-patch before anything networked loads."""
    import logging

    from flask import Flask
    from flask_cors import CORS
    from flask_socketio import SocketIO
    from werkzeug.middleware.proxy_fix import ProxyFix

    from .access.auth import Access
    from .access.hosts import SocketIOHostGuard
    from .config import load_settings
    from .errors import ErrorCode, RelayError
    from .observability import logs
    from .observability.metrics import Metrics
    from .services import EXTENSION_KEY, Services
    from .streams.registry import StreamRegistry
    from .streams.upstream import Upstream
    from .transports import websocket_frames, wire_json
    from .transports.operations import bp as operations_bp
    from .transports.packets import TolerantPacket
    from .transports.page import bp as page_bp
    from .transports.routes import bp
    from .transports.sessions import HandshakeGate, watch_sessions
    from .transports.sockets import register_socket_handlers
    from .transports.websocket_guard import ClosedWebsocketGuard

    settings = settings or load_settings()
    settings.require_upstream()
    logs.configure(settings.log_level, settings.log_format)
    # The HTTP client logs every upstream request with its full URL, user:password@ included; the
    # stream_end line already says what happened to each stream.
    for name in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    origins = settings.cors_allowed_origins
    access = Access(settings)
    metrics = Metrics(settings.allowed_models)

    def refused_over_socketio(err: RelayError) -> None:
        metrics.refused("socketio", err.code)

    def socketio_origin_allowed(origin: str | None, environ: dict[str, object]) -> bool:
        """engine.io asks once per request with an Origin, and answers a refused one with its own 400."""
        if access.origin_allowed(origin, environ):
            return True
        metrics.refused("socketio", ErrorCode.ORIGIN_NOT_ALLOWED)
        return False

    socketio = SocketIO(
        app,
        async_mode=settings.async_mode,
        cors_allowed_origins=socketio_origin_allowed,  # same origin, or listed ones; never a wildcard
        max_http_buffer_size=MAX_REQUEST_BYTES,  # a larger packet closes the connection (docs/protocol.md)
        ping_interval=settings.ping_interval,  # a client silent for interval + timeout is gone: streams cancelled
        ping_timeout=settings.ping_timeout,
        serializer=TolerantPacket,  # malformed JSON gets an invalid_request ack, not silence
        json=wire_json,  # orjson for every packet written
        **socketio_queue(settings.redis_url),
    )
    websocket_frames.install(socketio.server.eio, compression=settings.websocket_compression)
    services = Services(settings, Upstream(settings, metrics), StreamRegistry(), socketio, access, metrics)
    app.wsgi_app = ClosedWebsocketGuard(app.wsgi_app)  # type: ignore[method-assign]
    # Each engine.io handshake counted against its address (MAX_CONNECTIONS_PER_CLIENT), for allowed hosts only;
    # none while draining.
    app.wsgi_app = HandshakeGate(app.wsgi_app, services.connections,  # type: ignore[method-assign]
                                 draining=lambda: services.shutdown.began, refused=refused_over_socketio)
    # Socket.IO only for ALLOWED_HOSTS (DNS rebinding); inside ProxyFix, so the forwarded Host is the one checked.
    app.wsgi_app = SocketIOHostGuard(app.wsgi_app, access.check_host,  # type: ignore[method-assign]
                                     refused=refused_over_socketio)
    if settings.trusted_proxies:
        # Outermost, around Flask-SocketIO's middleware too, so Socket.IO connects see the client's address.
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    if origins:
        CORS(app, resources={r"/message/*": {"origins": origins}})

    app.extensions[EXTENSION_KEY] = services
    register_socket_handlers(socketio, services)
    watch_sessions(socketio, services.connections, settings.socketio_connect_timeout)
    app.register_blueprint(bp)
    app.register_blueprint(operations_bp)
    app.register_blueprint(page_bp)
    return app
