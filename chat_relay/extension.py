"""`ChatRelay`: the relay mounted on a Flask app and its SocketIO server, the relay's own (create_app) or a team's.

Flask-style: `ChatRelay(app, socketio, ...)`, or `relay = ChatRelay(...)` then `relay.init_app(app, socketio)`.
The names it can change are specified in docs/protocol.md, "Mounted in another app".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .async_drivers import MODES
from .config import ConfigError, Settings, load_settings
from .tools.registry import ToolRegistry, tool_of
from .transports.socketio_handlers import DEFAULT_EVENT, EventNames
from .wiring import EXTENSION_KEY, Services

if TYPE_CHECKING:
    from flask import Flask
    from flask_socketio import SocketIO

    from .access.auth import Access
    from .access.identity import Identify
    from .hooks.budget import Budget
    from .hooks.finish import OnFinish
    from .hooks.prepare import Prepare
    from .observability.metrics import Metrics

log = logging.getLogger(__name__)

# Events python-socketio keeps for itself, or Flask-SocketIO routes specially.
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "message", "json"})
_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
F = TypeVar("F", bound=Callable[..., Any])
_PATH = re.compile(r"(/[A-Za-z0-9_.~-]+)+")


class ChatRelay:
    """Registers the relay's Socket.IO handlers and HTTP routes on an app and its SocketIO server.

    - `url_prefix`: before every HTTP path of the relay ("/ai": `POST /ai/message/stream`, `GET /ai/healthz`).
    - `event`: the request event and the stem of the others (`<event>_chunk`, `_done`, `_error`, `_stop`, `_resume`).
    - `namespace`: the Socket.IO namespace of the relay's connect and events; a namespace of its own keeps
      the team's `connect` handler on "/" apart from the relay's token and connection checks.
    - `ai_sdk_path`: the AI SDK's chat endpoint (docs/ai-sdk.md), under `url_prefix`; None leaves it out.
    - `page`: the web page at `/`, for the relay alone; it speaks the default names only.
    - `settings`: default `load_settings()`, the environment and `.env`.

    The team's hooks (README, "Building on the relay: hooks"; chat_relay/hooks/), each optional:
    - `identify(caller) -> Identity | None`: who is asking, once per Socket.IO connection and per HTTP request;
      None refuses (`unauthorized`). It replaces AUTH_TOKENS; limits then count per user id.
    - `prepare(request, identity) -> request`: the request to send instead, validated as a client's is.
    - `on_finish(record)`: once per stream, after its terminal event, in a task of its own.
    - `budget(identity) -> tokens | None`: tokens per BUDGET_PERIOD; past it, `budget_exceeded`.
    """

    def __init__(self, app: Flask | None = None, socketio: SocketIO | None = None, *,
                 settings: Settings | None = None, url_prefix: str = "", event: str = DEFAULT_EVENT,
                 namespace: str = "/", page: bool = False, ai_sdk_path: str | None = "/api/chat",
                 identify: Identify | None = None, prepare: Prepare | None = None, on_finish: OnFinish | None = None,
                 budget: Budget | None = None) -> None:
        from .hooks.team_hooks import Hooks

        _check_options(url_prefix, event, namespace, page)
        if ai_sdk_path is not None and not _PATH.fullmatch(ai_sdk_path):
            raise ValueError(f"ai_sdk_path must start with '/' and not end with one ('/api/chat'), or be None; "
                             f"got {ai_sdk_path!r}")
        self.hooks = Hooks(identify=identify, prepare=prepare, on_finish=on_finish, budget=budget)
        self.url_prefix = url_prefix
        self.ai_sdk_path = ai_sdk_path
        self.events = EventNames(event)
        self.namespace = namespace
        self.page = page
        self._settings = settings
        self._access: Access | None = None
        self._metrics: Metrics | None = None
        self.services: Services | None = None
        self.tools = ToolRegistry()  # server-side tools: `tool`
        if app is not None:
            self.init_app(app, socketio)

    @property
    def settings(self) -> Settings:
        """Read once, on first use, so that nothing is read from the environment when the relay is created unbound."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def socketio_options(self) -> dict[str, Any]:
        """The SocketIO arguments that give the relay all of its guarantees (create_app uses them; a team may):
        its origin rule at the handshake, the packet size limit, its ping timing, tolerant packets, orjson, and
        the Redis message queue when REDIS_URL is set."""
        from .errors import ErrorCode
        from .transports import wire_json
        from .transports.tolerant_packets import TolerantPacket

        settings, access, metrics = self.settings, self._access_rules(), self._metrics_of()

        def socketio_origin_allowed(origin: str | None, environ: dict[str, object]) -> bool:
            """engine.io asks once per request with an Origin, and answers a refused one with its own 400."""
            if access.origin_allowed(origin, environ):
                return True
            metrics.refused("socketio", ErrorCode.ORIGIN_NOT_ALLOWED)
            return False

        return {
            "async_mode": settings.async_mode,
            "cors_allowed_origins": socketio_origin_allowed,  # same origin, or listed ones; never a wildcard
            # a larger packet closes the connection (docs/protocol.md); it bounds websocket frames too
            "max_http_buffer_size": settings.max_request_bytes,
            "ping_interval": settings.ping_interval,  # a client silent for interval + timeout is gone: streams end
            "ping_timeout": settings.ping_timeout,
            "serializer": TolerantPacket,  # malformed JSON gets an invalid_request ack, not silence
            "json": wire_json,  # orjson for every packet written
            **socketio_queue(settings.redis_url),
        }

    def init_app(self, app: Flask, socketio: SocketIO | None = None) -> Services:
        """Mount the relay on `app` and `socketio` (default: the SocketIO already bound to `app`).

        Raises ConfigError or RuntimeError, naming the fix, for a setup the relay would misbehave in.
        """
        from flask_cors import CORS
        from werkzeug.middleware.proxy_fix import ProxyFix

        from .access.message_bound import MessageBound
        from .errors import RelayError
        from .middleware.body_deadline import BodyDeadline
        from .middleware.closed_websocket import ClosedWebsocketGuard
        from .middleware.connection_cap import HandshakeGate, watch_sessions
        from .middleware.host_guard import SocketIOHostGuard
        from .middleware.http_connection_cap import HttpConnectionCap
        from .middleware.unbuffered_streams import UnbufferedStreams
        from .streams.registry import StreamRegistry
        from .streams.upstream import Upstream
        from .transports import websocket_frames, websocket_limits
        from .transports.bad_packets import close_on_bad_packets
        from .transports.http_routes import bp as http_bp
        from .transports.operator_routes import bp as operations_bp
        from .transports.page_routes import bp as page_bp
        from .transports.socketio_handlers import register_socket_handlers

        if self.services is not None:
            raise RuntimeError("This ChatRelay is mounted already: make one ChatRelay per app.")
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("A ChatRelay is mounted on this app already.")
        socketio = socketio or app.extensions.get("socketio")
        if socketio is None or socketio.server is None:
            raise RuntimeError("Bind the SocketIO server to the app first (`SocketIO(app)` or "
                               "`socketio.init_app(app)`), then mount the relay: ChatRelay(app, socketio).")
        settings = self._settings = _with_mode_of(self.settings, socketio.async_mode)
        settings.require_upstream()
        self._check_free(socketio)
        # The HTTP client logs every upstream request with its full URL, user:password@ included; the
        # stream_end line already says what happened to each stream.
        for name in ("httpx", "httpx2", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)

        access, metrics = self._access_rules(), self._metrics_of()

        def refused_over_socketio(err: RelayError) -> None:
            metrics.refused("socketio", err.code)

        def refused_over_http(err: RelayError) -> None:
            metrics.refused("http", err.code)

        _use_tolerant_packets(socketio, self.events.request)
        services = Services(settings, Upstream(settings, metrics), StreamRegistry(), socketio, access, metrics,
                            self.tools, self.hooks)
        websocket_frames.install(socketio.server.eio, settings.websocket_compression, services.driver.green)
        # engine.io's own message bound, per frame and across fragments too, and a small one until the connect is
        # admitted (MAX_UNAUTHENTICATED_BYTES); unreadable frames end the connection
        bound = MessageBound(settings.max_unauthenticated_bytes, int(socketio.server.eio.max_http_buffer_size),
                             services.connections, access, request_context=app.request_context)
        websocket_limits.install(socketio.server.eio, bound.before_auth, services.driver,
                                 lambda eio_socket, set_bound: bound.follow(getattr(eio_socket, "sid", None),
                                                                            set_bound))
        # The relay's guards on the Socket.IO endpoint it shares (docs/protocol.md, "Mounted in another app").
        path = _socketio_path(socketio)
        app.wsgi_app = ClosedWebsocketGuard(app.wsgi_app)  # type: ignore[method-assign]
        # Each engine.io handshake counted against its address (MAX_CONNECTIONS_PER_CLIENT), for allowed hosts
        # only; none while draining.
        app.wsgi_app = HandshakeGate(app.wsgi_app, services.connections, path,  # type: ignore[method-assign]
                                     draining=lambda: services.shutdown.began, refused=refused_over_socketio)
        # Socket.IO only for ALLOWED_HOSTS (DNS rebinding); inside ProxyFix, so the forwarded Host is the one checked.
        app.wsgi_app = SocketIOHostGuard(app.wsgi_app, access.check_host, path,  # type: ignore[method-assign]
                                         refused=refused_over_socketio)
        # Every body read within REQUEST_BODY_TIMEOUT, and at most MAX_CONNECTIONS_PER_CLIENT HTTP requests in progress
        # per address, before anything else reads the request (docs/security.md); inside ProxyFix: the client address.
        # On every path of the relay as a site of its own (the page's), else on the relay's paths only: a team's
        # routes may take larger or slower uploads.
        stream_paths = [f"{self.url_prefix}/message"]
        if self.ai_sdk_path is not None:
            stream_paths.append(self.url_prefix + self.ai_sdk_path)

        def streams(where: str) -> bool:  # the paths that start streams, and resume and stop them
            return any(_under(where, root) for root in stream_paths)

        relays = (lambda p: True) if self.page else (lambda p: streams(p) or _under(p, path))
        def body_bound(environ: dict[str, Any]) -> int:  # smaller before auth (chat_relay/access/message_bound.py)
            where = environ.get("PATH_INFO") or ""
            if _under(where, path):
                return bound.for_socketio_post(environ)
            if streams(where):
                return bound.for_stream_request(environ)
            return settings.max_request_bytes

        def refused_body(err: RelayError, where: str) -> None:  # an engine.io polling POST is Socket.IO's
            metrics.refused("socketio" if _under(where, path) else "http", err.code)

        app.wsgi_app = BodyDeadline(app.wsgi_app, settings.request_body_timeout,  # type: ignore[method-assign]
                                    services.driver, settings.max_request_bytes, applies=relays,
                                    refused=refused_body, bound=body_bound,
                                    refused_by_auth=streams)
        # The streams' pieces sent as they come under eventlet's server too, whose buffering the route cannot
        # turn off from behind Flask-SocketIO's middleware (chat_relay/middleware/unbuffered_streams.py).
        app.wsgi_app = UnbufferedStreams(app.wsgi_app, streams)  # type: ignore[method-assign]

        def user_of(environ: dict[str, Any]) -> str | None:  # a stream request's user, if `identify` knows it
            if not streams(environ.get("PATH_INFO") or "") or environ.get("REQUEST_METHOD") == "OPTIONS":
                return None
            with app.request_context(environ):  # the hook may read flask.session
                return access.user_before_body(environ)

        app.wsgi_app = HttpConnectionCap(app.wsgi_app,  # type: ignore[method-assign]
                                         settings.max_connections_per_client,
                                         applies=lambda p: relays(p) and not _under(p, path), refused=refused_over_http,
                                         client_of=user_of)
        if settings.trusted_proxies:
            # Outermost, around Flask-SocketIO's middleware too, so Socket.IO connects see the client's address.
            hops = settings.trusted_proxies
            app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops,  # type: ignore[method-assign]
                                    x_host=hops)
        if settings.cors_allowed_origins:
            resources = [rf"{re.escape(self.url_prefix)}/message/.*"]
            if self.ai_sdk_path is not None:  # the chat endpoint itself, and its resume and stop
                resources.append(rf"{re.escape(self.url_prefix + self.ai_sdk_path)}(/.*)?$")
            CORS(app, resources={pattern: {"origins": settings.cors_allowed_origins} for pattern in resources})

        app.extensions[EXTENSION_KEY] = services
        register_socket_handlers(socketio, services, self.events, self.namespace)
        watch_sessions(socketio, services.connections, settings.socketio_connect_timeout)
        close_on_bad_packets(socketio)
        app.register_blueprint(http_bp, url_prefix=self.url_prefix or None)
        app.register_blueprint(operations_bp, url_prefix=self.url_prefix or None)
        if self.ai_sdk_path is not None:
            from .transports.ai_sdk.routes import ai_sdk_blueprint, install_index

            install_index(app, services)
            app.register_blueprint(ai_sdk_blueprint(self.ai_sdk_path), url_prefix=self.url_prefix or None)
        if self.page:
            app.register_blueprint(page_bp)
        self.services = services
        return services

    @overload
    def tool(self, function: F, /) -> F: ...
    @overload
    def tool(self, function: None = None, /, *, name: str | None = None,
             description: str | None = None) -> Callable[[F], F]: ...

    def tool(self, function: F | None = None, /, *, name: str | None = None,
             description: str | None = None) -> F | Callable[[F], F]:
        """Register a server-side tool: `@relay.tool` or `@relay.tool(name=..., description=...)`, before or after
        `init_app`. The model is offered it in every request, with the JSON Schema of its type hints and its
        docstring; the relay runs its calls within TOOL_TIMEOUT and streams what it returns (docs/protocol.md,
        "Server-side tools"). Raise `chat_relay.ToolError("...")` to tell the user why it cannot answer."""
        def register(function: F) -> F:
            self.tools.add(tool_of(function, name, description))
            return function

        return register(function) if function is not None else register

    def _access_rules(self) -> Access:
        from .access.auth import Access

        if self._access is None:
            self._access = Access(self.settings, self.hooks.identify)
        return self._access

    def _metrics_of(self) -> Metrics:
        from .observability.metrics import Metrics

        if self._metrics is None:
            self._metrics = Metrics(self.settings.allowed_models)
        return self._metrics

    def _check_free(self, socketio: SocketIO) -> None:
        """Refuse to take over a handler the team already has on the relay's namespace (one handler per event)."""
        server = socketio.server
        taken = sorted({"connect", "disconnect", *self.events.handled()} & set(server.handlers.get(self.namespace, {})))
        if taken or self.namespace in server.namespace_handlers:
            what = ", ".join(taken) or "a class-based Namespace"
            raise RuntimeError(
                f"The SocketIO server has its own handlers on namespace {self.namespace!r} ({what}): give the relay "
                "a namespace of its own, ChatRelay(..., namespace='/ai'), or other event names (event='...').")


def socketio_queue(redis_url: str | None) -> dict[str, object]:
    """Flask-SocketIO's message queue on REDIS_URL, so that an emit from any instance reaches any client.

    The relay's own emits go straight to their client (`ignore_queue`): a stream never waits on Redis, nor is
    dropped while Redis is away. redis-py's default socket timeout would cut the queue's pub/sub listener,
    which waits for messages indefinitely: it has none, and health checks instead.
    """
    if not redis_url:
        return {}
    from socketio import RedisManager

    options = {"socket_timeout": None, "socket_connect_timeout": 2, "health_check_interval": 15,
               "socket_keepalive": True}
    return {"client_manager": RedisManager(redis_url, redis_options=options)}


def _check_options(url_prefix: str, event: str, namespace: str, page: bool) -> None:
    if url_prefix and (not url_prefix.startswith("/") or url_prefix.endswith("/")):
        raise ValueError(f"url_prefix must be '' or start with '/' and not end with one ('/ai'); got {url_prefix!r}")
    if not _NAME.fullmatch(event) or event in RESERVED_EVENTS:
        raise ValueError(f"event must be a plain name such as 'assistant', not a reserved one; got {event!r}")
    if not namespace.startswith("/"):
        raise ValueError(f"namespace must start with '/', like '/ai'; got {namespace!r}")
    if page and (url_prefix or event != DEFAULT_EVENT or namespace != "/"):
        raise ValueError("page=True serves the web page, which speaks the default names only: leave url_prefix, "
                         "event and namespace at their defaults, or mount without the page")


def _with_mode_of(settings: Settings, server_mode: str) -> Settings:
    """The settings in the SocketIO server's async mode, which the relay's tasks must share; an ASYNC_MODE set to
    another one is a mistake to point out, not to run with."""
    if server_mode not in MODES:
        raise ConfigError(f"The SocketIO server runs in async mode {server_mode!r}; the relay runs with "
                          f"{', '.join(MODES)}: pass SocketIO(app, async_mode='gevent').")
    if settings.async_mode == server_mode:
        return settings
    if "async_mode" in settings.model_fields_set:
        raise ConfigError(f"ASYNC_MODE is {settings.async_mode}, but the SocketIO server runs in {server_mode}: "
                          f"set ASYNC_MODE={server_mode}, or pass SocketIO(app, async_mode={settings.async_mode!r}).")
    return settings.model_copy(update={"async_mode": server_mode})


def _use_tolerant_packets(socketio: SocketIO, request_event: str) -> None:
    """Packets that are no call of an event reach the request handler, to be refused
    (chat_relay/transports/tolerant_packets.py).
    Only in place of python-socketio's own JSON packets: a team's msgpack or own serializer is left alone."""
    from socketio.packet import Packet

    from .transports.tolerant_packets import TolerantPacket, tolerant_packet

    server = socketio.server
    if server.packet_class is Packet or issubclass(server.packet_class, TolerantPacket):
        server.packet_class = tolerant_packet(request_event, int(server.eio.max_http_buffer_size))
    else:
        log.warning("the SocketIO server has its own serializer: a malformed %s packet gets no ack", request_event)


def _under(path: str, root: str) -> bool:
    """Whether `path` is `root` or below it."""
    return path == root or path.startswith(root + "/")


def _socketio_path(socketio: SocketIO) -> str:
    """Where the SocketIO server answers ("/socket.io" unless SocketIO(path=...) says otherwise)."""
    middleware = getattr(socketio, "sockio_mw", None)
    path = getattr(middleware, "engineio_path", None) or "/socket.io/"
    return "/" + path.strip("/")
