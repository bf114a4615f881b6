"""`create_app`: the relay as a Flask app of its own, on a SocketIO server made to its measure.

For a team that wants the relay alone (its own process, behind its own proxy); a team with an app of its own
mounts `ChatRelay` on it instead. Imports live inside the function, so that a server can monkey-patch first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from .config import Settings


def create_app(settings: Settings | None = None, *, page: bool = False) -> Flask:
    """Build the relay's own app: a ChatRelay on a new Flask app and SocketIO server, every error in JSON.

    `page`: also serve the web page built into frontend/dist (this project's server does)."""
    from flask import Flask
    from flask_socketio import SocketIO

    from .config import load_settings
    from .extension import ChatRelay
    from .observability import logs
    from .transports.http_routes import answer_every_error_in_json

    settings = settings or load_settings()
    settings.require_upstream()
    logs.configure(settings.log_level, settings.log_format)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    relay = ChatRelay(settings=settings, page=page)
    relay.init_app(app, SocketIO(app, **relay.socketio_options()))
    answer_every_error_in_json(app)
    return app
