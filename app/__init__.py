"""A Flask-SocketIO server that relays an OpenAI chat completion, chunk by chunk, to the client that asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from chat_relay.config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the relay as an app of its own: a ChatRelay (chat_relay/extension.py) on a SocketIO server made to its
    measure,
    with the web page, and every error in its JSON shape. Imports live in here so `python -m app` can monkey-patch
    before anything networked loads."""
    from flask import Flask
    from flask_socketio import SocketIO

    from chat_relay.config import MAX_REQUEST_BYTES, load_settings
    from chat_relay.extension import ChatRelay
    from chat_relay.observability import logs
    from chat_relay.transports.http_routes import answer_every_error_in_json

    settings = settings or load_settings()
    settings.require_upstream()
    logs.configure(settings.log_level, settings.log_format)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    relay = ChatRelay(settings=settings, page=True)
    relay.init_app(app, SocketIO(app, **relay.socketio_options()))
    answer_every_error_in_json(app)
    return app
