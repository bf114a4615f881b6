"""A team's app whose model can look things up in the team's own database: a server-side tool (`@relay.tool`).

The relay offers `city_population` to the model with every request; when the model calls it, the relay runs it
here, on the server, streams its result to the client as a `tool_result` part, and asks the model again, in the
same stream (docs/protocol.md, "Server-side tools"). The browser never sees the database, only what the tool
returned.

Run it with an upstream configured as for the relay (OPENAI_API_KEY, or OPENAI_BASE_URL), from this
repository's root:

    .venv/bin/gunicorn -c gunicorn.conf.py 'examples.server_tools:create_app()'   # gevent
    ASYNC_MODE=eventlet .venv/bin/python -m examples.server_tools                 # eventlet's server, on HOST:PORT

then, for example:

    curl -N -H 'Content-Type: application/json' -H 'Accept: application/x-ndjson' \
      -d '{"prompt": "How many people live in Oslo?"}' http://127.0.0.1:8000/message/stream
"""

import os

if __name__ == "__main__":  # served by its own server: monkey-patch before anything networked is imported
    if os.environ.get("ASYNC_MODE") == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    else:
        from gevent import monkey

        monkey.patch_all()

import sqlite3
import tempfile
from pathlib import Path

from flask import Flask
from flask_socketio import SocketIO

from chat_relay import ChatRelay, ToolError

CITIES = [("Oslo", 709_000), ("Bergen", 291_000), ("Lisbon", 545_000), ("Porto", 232_000)]


def make_database(path: Path) -> None:
    """The team's own data: a small table of cities."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS city (name TEXT PRIMARY KEY, population INTEGER NOT NULL)")
        db.executemany("INSERT OR REPLACE INTO city VALUES (?, ?)", CITIES)


def register_tools(relay: ChatRelay, database: Path) -> None:
    """The tools the model may call, run here on the server."""

    @relay.tool
    def city_population(city: str) -> dict[str, object]:
        """The population of a city, from the team's database."""
        with sqlite3.connect(database) as db:  # one connection per call: each call runs in a task of its own
            row = db.execute("SELECT name, population FROM city WHERE name = ? COLLATE NOCASE", (city,)).fetchone()
        if row is None:
            raise ToolError(f"No city named {city!r} in the database.")  # the user and the model see this
        return {"city": row[0], "population": row[1]}


def create_app() -> Flask:
    """The relay on a team's app, with one tool that reads the team's database."""
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode=os.environ.get("ASYNC_MODE", "gevent"))
    relay = ChatRelay(app, socketio)
    database = Path(tempfile.mkdtemp(prefix="server-tools-")) / "cities.sqlite3"
    make_database(database)
    register_tools(relay, database)
    return app


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO)
    team_app = create_app()
    team_app.extensions["socketio"].run(team_app, host=os.environ.get("HOST", "127.0.0.1"),
                                     port=int(os.environ.get("PORT", "8000")))
