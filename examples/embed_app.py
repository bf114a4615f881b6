"""A team's own Flask app, with the chat relay added beside its routes and Socket.IO handlers.

The app keeps its `/`, `/healthz`, its Socket.IO `connect` and `echo` on "/". The relay answers under /ai:
`POST /ai/message/stream` over HTTP, and over Socket.IO, on namespace "/ai", the event `assistant` (then
`assistant_chunk`, `assistant_done`, `assistant_error`; `assistant_stop`, `assistant_resume`). The names are
specified in docs/protocol.md, "Mounted in another app".

It imports the installed library, as a team's app would: `pip install .` from this repository (or the wheel that
`pip wheel --no-deps .` builds; tests/live/test_packaging.py runs this file so). Run it with an upstream configured as
for the relay (OPENAI_API_KEY, or OPENAI_BASE_URL), for example from this repository's root:

    .venv/bin/gunicorn -c gunicorn.conf.py 'examples.embed_app:create_app()'   # gevent, as the relay itself runs
    ASYNC_MODE=eventlet .venv/bin/python -m examples.embed_app                 # eventlet's server, on HOST:PORT

then, for example:

    curl -N -H 'Content-Type: application/json' -d '{"prompt": "Hello"}' http://127.0.0.1:8000/ai/message/stream
"""

import os

if __name__ == "__main__":  # served by its own server: monkey-patch before anything networked is imported
    if os.environ.get("ASYNC_MODE") == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    else:
        from gevent import monkey

        monkey.patch_all()

from flask import Flask, Response, jsonify
from flask_socketio import SocketIO, emit

from chat_relay import ChatRelay


def register_team_handlers(app: Flask, socketio: SocketIO) -> None:
    """What the team's app had before the relay: its own pages and its own Socket.IO events."""

    @app.get("/")
    def index() -> str:
        """The team's home page."""
        return "<h1>Team app</h1><p>Ask the assistant: POST /ai/message/stream, or Socket.IO on /ai.</p>"

    @app.get("/healthz")
    def healthz() -> Response:
        """The team's own liveness check; the relay's is at /ai/healthz."""
        return jsonify(status="ok", app="team")

    @socketio.on("connect")
    def welcome(auth: object = None) -> None:
        """The team's greeting on its default namespace."""
        emit("welcome", {"app": "team"})

    @socketio.on("echo")
    def echo(data: object) -> dict[str, object]:
        """The team's own event: answered in its ack."""
        return {"echo": data}


def create_app() -> Flask:
    """The team's app as it was, plus one line: the relay under /ai."""
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode=os.environ.get("ASYNC_MODE", "gevent"))
    register_team_handlers(app, socketio)

    ChatRelay(app, socketio, url_prefix="/ai", namespace="/ai", event="assistant")
    return app


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO)
    team_app = create_app()
    team_app.extensions["socketio"].run(team_app, host=os.environ.get("HOST", "127.0.0.1"),
                                        port=int(os.environ.get("PORT", "8000")))
