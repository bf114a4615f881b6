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
    """Build the relay as an app of its own: a ChatRelay (app/extension.py) on a SocketIO server made to its measure,
    with the web page, and every error in its JSON shape. Imports live in here so `python -m app` can monkey-patch
    before anything networked loads."""
    from flask import Flask
    from flask_socketio import SocketIO

    from .config import load_settings
    from .extension import ChatRelay
    from .observability import logs
    from .transports.routes import answer_every_error_in_json

    settings = settings or load_settings()
    settings.require_upstream()
    logs.configure(settings.log_level, settings.log_format)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    relay = ChatRelay(settings=settings, page=True)
    relay.init_app(app, SocketIO(app, **relay.socketio_options()))
    answer_every_error_in_json(app)
    return app
