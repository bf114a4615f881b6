"""Which server this application runs each async mode on: one list, read by gunicorn.conf.py, `python -m app` and
the launcher (`make run`), so that they agree. The library runs in any of chat_relay.async_drivers.MODES; this is
the server application's choice among them (`threading` is the fast tests' mode, served by none).

It imports only the settings' ConfigError, never anything networked: `python -m app` reads it early.
"""

from __future__ import annotations

from chat_relay.config import ConfigError

GUNICORN = "gunicorn"  # with gunicorn.conf.py, its gevent worker
OWN_SERVER = "python -m app"  # the mode's own WSGI server: gunicorn 26 and later have no eventlet worker
SERVERS: dict[str, str] = {"gevent": GUNICORN, "eventlet": OWN_SERVER}  # each served mode's production server


def server_for(mode: str) -> str:
    """The server `mode` runs on in production; a ConfigError naming the served modes for one that has none."""
    if mode not in SERVERS:
        raise ConfigError(f"ASYNC_MODE={mode} is for tests; use {' or '.join(SERVERS)} (gevent is the default).")
    return SERVERS[mode]


def modes_served_by(server: str) -> list[str]:
    """The modes `server` serves in production."""
    return [mode for mode, name in SERVERS.items() if name == server]
