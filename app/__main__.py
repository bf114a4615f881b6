"""`python -m app`: serve on the async mode's own WSGI server; the way to run ASYNC_MODE=eventlet.

gunicorn 26 and later have no eventlet worker, so eventlet mode is served by eventlet's production
server (started as `socketio.run` would, with its debug mode off). Monkey-patching must come first,
before openai or anything networked.
"""

import os
import warnings

from dotenv import dotenv_values  # reads a file; opens no socket

_MODE = os.environ.get("ASYNC_MODE") or dotenv_values(".env").get("ASYNC_MODE") or "gevent"
# Kept until logging is set up, then shown (chat_relay/observability/logs.py: as JSON with LOG_FORMAT=json): eventlet
# warns on import that it is deprecated.
with warnings.catch_warnings(record=True) as _EARLY_WARNINGS:
    if _MODE == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    elif _MODE == "gevent":
        from gevent import monkey

        monkey.patch_all()

import logging  # noqa: E402
import sys  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

if TYPE_CHECKING:
    from flask import Flask

from chat_relay.config import ConfigError, load_settings  # noqa: E402
from chat_relay.observability.logs import access_fields, log_event  # noqa: E402
from chat_relay.streams.upstream import shown_url  # noqa: E402

from . import create_app  # noqa: E402
from .serving.servers import server_for  # noqa: E402


def main() -> int:
    """Check the settings, then serve until interrupted."""
    try:
        settings = load_settings()
        settings.require_upstream()
        server_for(settings.async_mode)  # a mode this application serves (here: gevent too, on its own server)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    app = create_app(settings)
    for early in _EARLY_WARNINGS:
        warnings.showwarning(early.message, early.category, early.filename, early.lineno)
    socketio = app.extensions["socketio"]
    upstream = shown_url(settings.openai_base_url) if settings.openai_base_url else "OpenAI"
    serving = f"Serving on http://{settings.host}:{settings.port} ({settings.async_mode}), upstream {upstream}"
    if settings.log_format == "json":  # every line a JSON object
        logging.getLogger("app").info("%s", serving)
    else:
        print(serving, flush=True)
    if settings.async_mode == "eventlet":
        _drain_on_signals(app)
        _serve_eventlet(app, settings.host, settings.port, json_access=settings.log_format == "json")
    else:
        socketio.run(app, host=settings.host, port=settings.port, log_output=True)
    return 0


def _serve_eventlet(app: "Flask", host: str, port: int, json_access: bool) -> None:
    """eventlet's production server, as `socketio.run` starts it, but with its debug mode off.

    `socketio.run` keeps `debug` for itself, so eventlet's server would run with its own default,
    debug=True, and answer an unhandled error with the traceback in the body. With LOG_FORMAT=json its
    access lines keep their fields (`_KeepFields`) and become JSON objects like gunicorn's.
    """
    import eventlet.wsgi

    from chat_relay.config import WORKER_CONNECTIONS

    eventlet.wsgi.server(
        eventlet_listener(host, port),
        app,
        log=_EventletLog(logging.getLogger("eventlet.wsgi")),
        log_output=True,
        log_format=_KeepFields() if json_access else _WithoutQuery(),
        debug=False,
        minimum_chunk_size=0,  # otherwise streamed bodies are held back until 4 KB have gathered
        max_size=WORKER_CONNECTIONS,  # as gunicorn's worker_connections; eventlet's own default is 1024
        # As gunicorn's keepalive: an idle keep-alive connection, or one that never sends its request line, is
        # closed after 5 s instead of holding one of those connections for ever (docs/security.md).
        keepalive=5.0,
    )


def eventlet_listener(host: str, port: int) -> Any:
    """The listening socket, with Nagle's algorithm off, as gunicorn sets it on its own (its connections inherit it).

    With Nagle on, a small write waits for the client's ACK of the one before, and a client delays that ACK by up
    to 40 ms: an ack followed at once by a chunk or a terminal event (a stop's) would reach the client 40 ms late.
    """
    import socket

    import eventlet
    import eventlet.green.socket

    family, _, _, _, address = eventlet.green.socket.getaddrinfo(host, port)[0]
    listener = eventlet.listen(address, family)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


class _KeepFields:
    """eventlet's access line is `log_format % fields`: this `log_format` keeps the fields themselves."""

    def __mod__(self, fields: dict[str, Any]) -> dict[str, Any]:
        return fields


class _WithoutQuery:
    """eventlet's own access line, but the path without its query string: a resume's ?resume_token= must never
    reach a log."""

    def __mod__(self, fields: dict[str, Any]) -> str:
        method, _, rest = str(fields.get("request_line")).partition(" ")
        target, _, protocol = rest.partition(" ")
        line = f"{method} {target.partition('?')[0]} {protocol}".strip()
        return eventlet_default_format() % {**fields, "request_line": line}


def eventlet_default_format() -> str:
    import eventlet.wsgi

    return eventlet.wsgi.DEFAULT_LOG_FORMAT


class _EventletLog:
    """eventlet's server logs any error while writing a response, such as a client that hung up, as a whole
    traceback (and logs nothing else that needs more than a line). Keep it to its last line: no stack traces
    in the log. An access line's fields (LOG_FORMAT=json: `_KeepFields`) are logged as one event."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def info(self, msg: str | dict[str, Any], *args: object) -> None:
        if isinstance(msg, dict):
            method, _, rest = str(msg.get("request_line")).partition(" ")  # "GET /path?query HTTP/1.1"
            log_event(self._logger, "access", access_fields(
                msg.get("client_ip"), method, rest.partition(" ")[0], msg.get("status_code"), msg.get("body_length"),
                float(msg.get("wall_seconds") or 0)))
            return
        if msg.startswith("Traceback"):
            msg, args = "response ended early: %s", (msg.strip().splitlines()[-1],)
        self._logger.info(msg.rstrip(), *args)

    def debug(self, msg: str, *args: object) -> None:
        self._logger.debug(msg.rstrip(), *args)

    def error(self, msg: str, *args: object) -> None:
        self.info(msg, *args)


def _drain_on_signals(app: "Flask") -> None:
    """SIGTERM or Ctrl-C: drain the streams (chat_relay/lifecycle/shutdown.py), then stop eventlet's server so
    `_serve_eventlet` returns. A second Ctrl-C exits at once.

    SystemExit, thrown into the main green thread where it waits in accept(), is how eventlet's server
    stops; it does so only after the drain, because it closes its websockets as it stops (and then waits
    for every connection to end, which a second Ctrl-C does not). Until then new connections are accepted,
    but new streams are refused with `server_shutdown`.
    """
    import eventlet
    import eventlet.hubs
    import greenlet

    from chat_relay.lifecycle.shutdown import chain_interrupt, chain_sigterm
    from chat_relay.wiring import services_of

    main_greenlet = greenlet.getcurrent()

    def stop_server() -> None:
        eventlet.hubs.get_hub().schedule_call_global(0, main_greenlet.throw, SystemExit)

    def keep_the_hub_awake() -> None:
        # The handler runs inside the hub's wait for I/O, and the drain it starts runs only once that wait
        # ends: on an idle server, up to a minute later. A short timer keeps every wait short.
        while True:
            eventlet.sleep(0.5)

    eventlet.spawn(keep_the_hub_awake)
    shutdown = services_of(app).shutdown
    chain_sigterm(shutdown, when_drained=stop_server)
    chain_interrupt(shutdown, when_drained=stop_server, exit_now=lambda: os._exit(130))  # 128 + SIGINT, as shells do


if __name__ == "__main__":
    sys.exit(main())
