"""A relay with every hook, for the live tests of chat_relay/hooks/, started as a team starts its app:

    .venv/bin/gunicorn -c gunicorn.conf.py 'tests.hooks_app:create_app()'    # gevent
    ASYNC_MODE=eventlet .venv/bin/python -m tests.hooks_app                  # eventlet

- identify: the HTTP header `X-User`, or the Socket.IO auth `{"user": ...}`; "" or "nobody" is refused.
- prepare: puts "You help <user>." before the conversation; a prompt with "invalid-prepare" gets an invalid
  request back (no messages), one with "team-refuses" a RelayError of the team's.
- on_finish: one JSON line per call in HOOK_LOG; with "hook-raises" in the prompt it raises after writing it,
  with "hook-waits:<path>" it waits for that file to exist first (a gate the test opens).
- budget: BUDGET_TOKENS per user, when set.
"""

import os

if __name__ == "__main__":  # served by its own server: monkey-patch before anything networked is imported
    if os.environ.get("ASYNC_MODE") == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    else:
        from gevent import monkey

        monkey.patch_all()

import json
import re
import threading
import time
from typing import Any

from flask import Flask
from flask_socketio import SocketIO

from chat_relay import Caller, ChatRelay, ErrorCode, FinishRecord, Identity, RelayError

_written = threading.Lock()


def identify(caller: Caller) -> Identity | None:
    user = caller.auth.get("user") if isinstance(caller.auth, dict) else caller.headers.get("X-User")
    if not isinstance(user, str) or user in ("", "nobody"):
        return None
    return Identity(user, {"plan": "team"})


def prepare(request: dict[str, Any], identity: Identity) -> dict[str, Any]:
    said = json.dumps(request["messages"])
    if "invalid-prepare" in said:
        return {**request, "messages": []}
    if "team-refuses" in said:
        raise RelayError(ErrorCode.INVALID_REQUEST, "The team does not allow this.")
    return {**request, "messages": [{"role": "system", "content": f"You help {identity.user_id}."},
                                    *request["messages"]]}


def on_finish(record: FinishRecord) -> None:
    said = json.dumps(record.request.messages)
    gate = re.search(r"hook-waits:([\w./-]+)", said)
    while gate and not os.path.exists(gate.group(1)):
        time.sleep(0.02)  # the test's gate is a file; a cooperative sleep under monkey-patching
    line = {"stream_id": record.stream_id, "user": record.identity.user_id, "finish_reason": record.finish_reason,
            "error": record.error, "cause": record.cause, "text": record.text, "parts": record.parts,
            "tool_calls": record.tool_calls, "reasoning": record.reasoning, "usage": record.usage,
            "transport": record.transport, "port": os.environ.get("PORT"),
            "duration": record.timings.duration, "first_piece": record.timings.first_piece}
    with _written, open(os.environ["HOOK_LOG"], "a") as log:
        log.write(json.dumps(line) + "\n")
    if "hook-raises" in said:
        raise RuntimeError("the team's hook failed, secret-in-message")


def budget(identity: Identity) -> int | None:
    tokens = os.environ.get("BUDGET_TOKENS")
    return int(tokens) if tokens else None


def create_app() -> Flask:
    app = Flask(__name__)
    relay = ChatRelay(identify=identify, prepare=prepare, on_finish=on_finish, budget=budget)
    socketio = SocketIO(app, **relay.socketio_options())  # the relay's guarantees, and Redis's queue with REDIS_URL
    relay.init_app(app, socketio)
    return app


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO)
    hooks_app = create_app()
    hooks_app.extensions["socketio"].run(hooks_app, host=os.environ.get("HOST", "127.0.0.1"),
                                      port=int(os.environ.get("PORT", "8000")))
