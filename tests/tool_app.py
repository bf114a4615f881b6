"""The server-side tools example (examples/server_tools.py) with the tools the live tests need besides: one that
adds, one that refuses, one that crashes, one that sleeps (and says while it does, on GET /test/tools/running).

    .venv/bin/gunicorn -c gunicorn.conf.py 'tests.tool_app:create_app()'   # gevent
    ASYNC_MODE=eventlet .venv/bin/python -m tests.tool_app                 # eventlet
"""

import os

if __name__ == "__main__":
    if os.environ.get("ASYNC_MODE") == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    else:
        from gevent import monkey

        monkey.patch_all()

import tempfile
import time
from pathlib import Path

from flask import Flask, Response, jsonify
from flask_socketio import SocketIO

from chat_relay import ChatRelay, ToolError
from examples import server_tools

SECRET = "SECRET-TOOL-DETAIL"  # in a crashing tool's exception: must reach no client and no log line


def create_app() -> Flask:
    """The example's app, tools and all, plus the tests' tools."""
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode=os.environ.get("ASYNC_MODE", "gevent"))
    relay = ChatRelay(app, socketio)
    database = Path(tempfile.mkdtemp(prefix="tool-app-")) / "cities.sqlite3"
    server_tools.make_database(database)
    server_tools.register_tools(relay, database)
    running: set[str] = set()
    tool = relay.tool

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @tool
    def refuse(reason: str) -> str:
        """Always refuses, with the reason given."""
        raise ToolError(reason)

    @tool
    def crash() -> str:
        """Always fails with a bug."""
        raise RuntimeError(SECRET)

    @tool
    def slow(tag: str, seconds: float) -> str:
        """Sleeps (cooperatively: the server's monkey-patched sleep), listed as running meanwhile."""
        running.add(tag)
        try:
            time.sleep(seconds)
        finally:
            running.discard(tag)
        return f"slept {seconds}"

    @app.get("/test/tools/running")
    def tools_running() -> Response:
        """The tags of the `slow` calls running now."""
        return jsonify(sorted(running))

    return app


if __name__ == "__main__":
    test_app = create_app()
    test_app.extensions["socketio"].run(test_app, host=os.environ.get("HOST", "127.0.0.1"),
                                     port=int(os.environ.get("PORT", "8000")))
