"""A team's app on the relay: users log in with the team's own session cookie; the relay knows them by it (identify),
puts the team's system prompt before each conversation (prepare), lets the model look up a plan in the team's
SQLite data (the plan_details tool, run on the server), saves each reply with the tools it used to the user's
history in SQLite (on_finish), shown back at GET /history, and holds each user to a daily token budget by plan.

Routes: `GET /healthz`, `POST /login` (JSON `{"name", "password"}`; sets the session cookie), `POST /logout`,
`GET /history` (the logged-in user's conversations, each with the tools the model called and what they
returned), and the relay's: `POST /ai/message/stream` and Socket.IO's `chatgpt_description`, both for logged-in
users only (`unauthorized` otherwise). Two demo users are made at the start: alice (password "wonderland", plan
pro) and bob ("builder", plan free); TEAM_FREE_BUDGET sets the free plan's daily tokens (2000).

Run it with an upstream configured as for the relay (OPENAI_API_KEY, or OPENAI_BASE_URL), a SECRET_KEY (it signs
the session cookie, and keys FORWARD_USER's hash), and TEAM_DB for the SQLite file, from this repository's root:

    SECRET_KEY=change-me .venv/bin/gunicorn -c gunicorn.conf.py 'examples.team_app.app:create_app()'   # gevent
    SECRET_KEY=change-me ASYNC_MODE=eventlet .venv/bin/python -m examples.team_app.app                # eventlet

then, for example:

    curl -c jar -H 'Content-Type: application/json' -d '{"name": "alice", "password": "wonderland"}' http://127.0.0.1:8000/login
    curl -N -b jar -H 'Content-Type: application/json' -d '{"prompt": "Hello"}' http://127.0.0.1:8000/ai/message/stream
    curl -b jar http://127.0.0.1:8000/history
"""

import os

if __name__ == "__main__":  # served by its own server: monkey-patch before anything networked is imported
    if os.environ.get("ASYNC_MODE") == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    else:
        from gevent import monkey

        monkey.patch_all()

from flask import Flask, Response, jsonify, request, session
from flask_socketio import SocketIO

from chat_relay import ChatRelay

from .store import Store
from .team_hooks import budget, identify, make_on_finish, prepare
from .team_tools import register_tools


def create_app() -> Flask:
    """The team's app: its login and history, and the relay under /ai with the team's hooks."""
    app = Flask(__name__)
    app.secret_key = os.environ["SECRET_KEY"]
    store = app.extensions["team_store"] = Store(os.environ.get("TEAM_DB", "team_app.sqlite3"))
    store.add_user("alice", "wonderland", "pro")
    store.add_user("bob", "builder", "free")
    store.add_plan("free", int(os.environ.get("TEAM_FREE_BUDGET", "2000")), "the default model")
    store.add_plan("pro", 50_000, "any model the relay allows")

    @app.get("/healthz")
    def healthz() -> Response:
        """The team's liveness check; the relay's is at /ai/healthz."""
        return jsonify(status="ok")

    @app.post("/login")
    def login() -> Response | tuple[Response, int]:
        """Check the name and password; the session cookie then says who the user is."""
        data = request.get_json(silent=True) or {}
        name, password = data.get("name"), data.get("password")
        if not isinstance(name, str) or not isinstance(password, str) or not store.check_login(name, password):
            return jsonify(error="wrong name or password"), 401
        session["user"] = name
        return jsonify(user=name)

    @app.post("/logout")
    def logout() -> Response:
        session.pop("user", None)
        return jsonify(user=None)

    @app.get("/history")
    def history() -> Response | tuple[Response, int]:
        """The logged-in user's conversations, oldest first, as on_finish saved them."""
        name = session.get("user")
        if not isinstance(name, str):
            return jsonify(error="log in first"), 401
        return jsonify(user=name, history=store.history(name))

    relay = ChatRelay(url_prefix="/ai", identify=identify, prepare=prepare, on_finish=make_on_finish(store),
                      budget=budget)
    socketio = SocketIO(app, **relay.socketio_options())  # the relay's guarantees (and Redis's queue, if set)
    relay.init_app(app, socketio)
    register_tools(relay, store)
    return app


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO)
    team_app = create_app()
    team_app.extensions["socketio"].run(team_app, host=os.environ.get("HOST", "127.0.0.1"),
                                     port=int(os.environ.get("PORT", "8000")))
