"""gunicorn settings for the relay: `gunicorn -c gunicorn.conf.py`, the production and default way to run it.

One gevent worker: Flask-SocketIO keeps each client's session in the worker's memory, so more
workers need sticky sessions and a message queue. One gevent worker holds thousands of streams.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from app.serving.processes import run_dir
from app.serving.servers import GUNICORN, modes_served_by
from chat_relay.config import WORKER_CONNECTIONS, ConfigError, load_settings

try:
    _settings = load_settings()
    _settings.require_upstream()
except ConfigError as _err:
    sys.exit(f"error: {_err}")
if _settings.async_mode not in modes_served_by(GUNICORN):
    sys.exit(
        f"error: gunicorn serves ASYNC_MODE={' or '.join(modes_served_by(GUNICORN))} only (it is "
        f"{_settings.async_mode}). gunicorn 26 and later have no eventlet worker: run eventlet mode with "
        "`python -m app` (or `make run-eventlet`)."
    )

wsgi_app = "app.wsgi:app"
bind = [f"{_settings.host}:{_settings.port}"]
workers = 1
worker_class = "gevent"  # simple-websocket carries the websocket transport; never install gevent-websocket
worker_connections = WORKER_CONNECTIONS  # idle Socket.IO connections included: see README "Security and limits"

# The gevent worker heartbeats from its own greenlet, so a long stream never trips `timeout`.
timeout = 30
graceful_timeout = 30  # on SIGTERM, running streams get this long to finish
keepalive = 5

accesslog = "-"
# gunicorn's default, but the path without its query string: a resume's ?resume_token= must never reach a log.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'
errorlog = "-"
loglevel = _settings.log_level.lower()
if _settings.log_format == "json":  # gunicorn's own lines too: its access lines and notices
    logger_class = "app.serving.gunicorn_logs.JsonLogger"

# Runtime files go to a private run directory, never the home directory (gunicorn's default
# control socket is ~/.gunicorn/gunicorn.ctl). One name per port, so servers side by side don't collide.
_run_dir = run_dir()
pidfile = str(_run_dir / f"gunicorn-{_settings.port}.pid")
control_socket = str(_run_dir / f"gunicorn-{_settings.port}.ctl")
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None


def post_worker_init(worker: object) -> None:
    """Drain the streams before the worker stops (chat_relay/lifecycle/shutdown.py).

    SIGTERM: drain within SHUTDOWN_GRACE, then let the worker stop as it always does. The gevent worker's own
    handler only clears `alive`; its run loop then closes the listener and waits up to graceful_timeout for
    connections to end. It runs once the drain is over, so that until then the worker keeps accepting: a load
    balancer's /readyz gets its 503, and a new stream its `server_shutdown`, instead of no answer. Draining ends
    every stream with a terminal event and disconnects the Socket.IO clients, so the wait ends early.

    Ctrl-C: the worker gets SIGINT from the terminal, and SIGQUIT from the master (its quick shutdown), and
    would exit at once, cutting streams without their last event. Instead: a quick drain, then the worker's own
    quit; a second Ctrl-C quits at once.
    """
    import signal

    from chat_relay.lifecycle.shutdown import chain_interrupt, chain_sigterm
    from chat_relay.wiring import services_of

    shutdown = services_of(worker.wsgi).shutdown  # type: ignore[attr-defined]  # a gunicorn Worker
    chain_sigterm(shutdown, when_drained=lambda: worker.handle_exit(signal.SIGTERM, None))  # type: ignore[attr-defined]

    quitting = False

    def quit_now() -> None:  # once: a second quit, while the first exits, would fail during interpreter shutdown
        nonlocal quitting
        if not quitting:
            quitting = True
            worker.handle_quit(signal.SIGQUIT, None)  # type: ignore[attr-defined]

    chain_interrupt(shutdown, when_drained=quit_now, exit_now=quit_now, also=(signal.SIGQUIT,))
