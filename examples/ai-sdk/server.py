"""The AI SDK example: its page (dist/, built by Vite) at `/`, and the chat relay mounted beside it by `ChatRelay`.

One command from the repository's root builds the page and serves it on http://127.0.0.1:8000, with an upstream
configured as for the relay (OPENAI_API_KEY, or OPENAI_BASE_URL; README, "Configuration"):

    make example-ai-sdk                        # gevent (gevent's WSGI server)
    ASYNC_MODE=eventlet make example-ai-sdk    # eventlet's

Under it, `make example-ai-sdk` runs `npm ci` and `npm run build` in examples/ai-sdk/ when needed, then
`.venv/bin/python examples/ai-sdk/server.py`. The page talks to the relay with `useChat` over `POST /api/chat` (the
AI SDK's own HTTP transport) or over Socket.IO (frontend/src/socketChatTransport.js): docs/ai-sdk.md, "The example
page".
"""

import os

if __name__ == "__main__":  # served by its own server: monkey-patch before anything networked is imported
    if os.environ.get("ASYNC_MODE") == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    else:
        from gevent import monkey

        monkey.patch_all()

from pathlib import Path

from flask import Flask, Response, send_from_directory
from flask_socketio import SocketIO

from chat_relay import ChatRelay

DIST = Path(__file__).resolve().parent / "dist"
NOT_BUILT = "The example page is not built: run `make example-ai-sdk` from the repository's root.\n"


def create_app() -> Flask:
    """The page's routes, and the relay with its own SocketIO options (origin rule, limits, orjson)."""
    app = Flask(__name__)
    relay = ChatRelay()
    socketio = SocketIO(app, **relay.socketio_options())
    relay.init_app(app, socketio)

    @app.get("/")
    def index() -> Response:
        """The page, revalidated on every load so that a new build shows."""
        if not (DIST / "index.html").is_file():
            return Response(NOT_BUILT, status=503, mimetype="text/plain")
        response = send_from_directory(DIST, "index.html", max_age=0)
        response.headers["Cache-Control"] = "no-cache"
        return response

    @app.get("/assets/<path:name>")
    def asset(name: str) -> Response:
        """Vite's hashed scripts and styles."""
        return send_from_directory(DIST / "assets", name)

    return app


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO)
    example = create_app()
    socketio = example.extensions["socketio"]
    socketio.run(example, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
