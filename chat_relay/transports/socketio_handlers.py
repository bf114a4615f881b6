"""Socket.IO transport: thin handlers that validate, start or stop a stream, and return the ack at once.

Each stream has two background tasks: its producer (Producer.run), which reads the upstream into the stream's
log, and its delivery, which follows the log and emits to the requesting client's sid only, one chunk event
for all the pieces waiting each time it wakes (chat_relay/streams/stream_buffer.py).
The event names and payloads are specified in docs/protocol.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flask import request
from flask_socketio import ConnectionRefusedError, SocketIO, emit

from ..access.auth import CLIENT_KEY, identity_of
from ..errors import ErrorCode, RelayError
from ..middleware.connection_cap import REFUSED_KEY
from ..observability.bug_reports import log_bug
from ..streams.events import Chunk, Done, Failed, RelayEvent
from ..streams.producer import INTERNAL_FAILURE
from ..streams.request_validation import parse_chat_request, parse_resume_request, requested_stream_id
from ..wiring import Services
from .backpressure import wait_for_writer
from .first_chunk import first_chunk_timed
from .tolerant_packets import Unreadable

log = logging.getLogger(__name__)

DEFAULT_EVENT = "chatgpt_description"
TRANSPORT = "socketio"  # in the metrics' labels


@dataclass(frozen=True)
class EventNames:
    """The protocol's six event names, all from one stem (docs/protocol.md, "Mounted in another app")."""

    request: str = DEFAULT_EVENT

    @property
    def chunk(self) -> str:
        return f"{self.request}_chunk"

    @property
    def done(self) -> str:
        return f"{self.request}_done"

    @property
    def error(self) -> str:
        return f"{self.request}_error"

    @property
    def stop(self) -> str:
        return f"{self.request}_stop"

    @property
    def resume(self) -> str:
        return f"{self.request}_resume"

    def handled(self) -> tuple[str, ...]:
        """The events the server takes, besides connect and disconnect."""
        return self.request, self.stop, self.resume


def register_socket_handlers(socketio: SocketIO, services: Services, names: EventNames = EventNames(),
                             namespace: str = "/") -> None:
    """Attach the protocol's handlers to this SocketIO server, under these names, on this namespace."""
    def writer_of(sid: str) -> Callable[[], bool]:
        return lambda: wait_for_writer(socketio.server, sid, namespace, services.driver)

    @socketio.on("connect", namespace=namespace)
    def admit_client(auth: object = None) -> None:
        """Refuse a connection without a valid token (when AUTH_TOKENS is set), from a foreign origin or host, or
        one more than its client's MAX_CONNECTIONS_PER_CLIENT, with a coded reason;
        chat_relay/middleware/connection_cap.py
        then closes it. The origin and host were checked at the handshake already when the relay's own
        SocketIO is the server's (create_app); a team's server may allow more."""
        try:
            services.access.check_host(request.environ)
            services.access.check_origin(request.environ)
            client = services.access.identify_socketio(auth, request.environ, request.remote_addr)
            services.connections.connect(request.environ, client)  # keeps `client` in the environ (CLIENT_KEY)
        except RelayError as err:
            request.environ[REFUSED_KEY] = True
            services.metrics.refused(TRANSPORT, err.code)
            raise ConnectionRefusedError(err.message, err.to_dict()) from None

    @socketio.on(names.request, namespace=namespace)
    def start_stream(data: object = None, *extra: object) -> dict[str, object]:
        """Validate, start the stream in the background, and ack with its stream_id and resume token, or an error."""
        sid: str = request.sid  # type: ignore[attr-defined]
        client: str = request.environ[CLIENT_KEY]
        try:
            _check_call(names.request, data, extra)
            chat_request = parse_chat_request(data, services.settings)
            # Before admission, which counts the request against the rate limit: a refusal uses up nothing.
            services.registry.check_free(sid, chat_request.stream_id)
            # Admission (caps, rate limit), then the team's hooks: prepare, the budget (chat_relay/hooks/).
            chat_request, ending = services.hooks.admit(chat_request, data,  # type: ignore[arg-type]  # a dict
                                                        identity_of(request.environ), client)
            started = services.streams.start(chat_request, sid, client, settle=writer_of(sid),
                                             reserved=True, transport=TRANSPORT, on_end=ending)
        except RelayError as err:
            services.metrics.refused(TRANSPORT, err.code)
            # Also as an event, for clients that pass no ack callback (the seed's React page). It names
            # the stream_id only if no stream of that id is running, which it would seem to end.
            stream_id = requested_stream_id(data)
            if stream_id is not None and services.registry.delivery(sid, stream_id) is not None:
                stream_id = None
            emit(names.error, {"stream_id": stream_id, **err.to_dict()}, ignore_queue=True)
            return {"error": err.to_dict()}
        services.streams.wait_logged(started)  # the token in the ack then works on every instance
        events = first_chunk_timed(started.reader, started.relay.created,
                                   lambda seconds: services.metrics.first_chunk_delivered(TRANSPORT, seconds))
        socketio.start_background_task(_deliver, socketio, services, names, namespace, sid, chat_request.stream_id,
                                       events)
        return {"stream_id": chat_request.stream_id, "resume_token": started.token}

    @socketio.on(names.resume, namespace=namespace)
    def resume_stream(data: object = None, *extra: object) -> dict[str, object]:
        """Deliver a stream again from a cursor, on this connection: the rest of it, then its terminal event."""
        sid: str = request.sid  # type: ignore[attr-defined]
        try:
            _check_call(names.resume, data, extra)
            wanted = parse_resume_request(data)
            key = services.streams.key_for(wanted.resume_token, wanted.stream_id, request.environ[CLIENT_KEY])
            reader = services.streams.resume(key, wanted.after_seq, sid, wanted.stream_id,
                                             settle=writer_of(sid))
        except RelayError as err:
            return {"error": err.to_dict()}
        socketio.start_background_task(_deliver, socketio, services, names, namespace, sid, wanted.stream_id, reader)
        return {"stream_id": wanted.stream_id}

    @socketio.on(names.stop, namespace=namespace)
    def stop_stream(data: object = None, *extra: object) -> dict[str, object]:
        """Cancel one of this client's streams (or any, with its resume token); its end comes as usual."""
        sid: str = request.sid  # type: ignore[attr-defined]
        try:
            _check_call(names.stop, data, extra)
            fields = data if isinstance(data, dict) else {}
            stream_id = fields.get("stream_id")
            key = services.streams.key_of(sid, stream_id, fields.get("resume_token"), request.environ[CLIENT_KEY])
            if not services.streams.stop(key):
                raise RelayError(ErrorCode.INVALID_REQUEST, "No stream of yours with that stream_id is running.")
        except RelayError as refused:
            return {"error": refused.to_dict()}
        return {"stream_id": stream_id}

    @socketio.on("disconnect", namespace=namespace)
    def let_go_of_client_streams(reason: object = None) -> None:
        """Nobody is listening here any more: the streams wait RESUME_GRACE for a resume, then stop."""
        services.streams.disconnect(request.sid)  # type: ignore[attr-defined]

    if namespace not in socketio.exception_handlers:  # a team's own handler for the namespace is kept
        @socketio.on_error(namespace)
        def unexpected_error(exc: Exception) -> dict[str, object]:
            """The backstop: log the details, tell the client only the code."""
            log_bug(log, "socket.io handler failed", exc)
            return {"error": RelayError(ErrorCode.INTERNAL, "The server failed to handle the request.").to_dict()}


def _check_call(event: str, data: object, extra: tuple[object, ...]) -> None:
    """Refuse a packet that was no call of an event (tolerant_packets.py), or a call with more than one argument."""
    if isinstance(data, Unreadable):
        raise data.error()
    if extra:
        raise RelayError(ErrorCode.INVALID_REQUEST, f"{event} takes one argument, an object; got {1 + len(extra)}.")


def _deliver(socketio: SocketIO, services: Services, names: EventNames, namespace: str, sid: str, stream_id: str,
             reader: Iterable[RelayEvent]) -> None:
    """Follow the stream and emit each chunk, then the terminal event, to this client's room only."""
    server = socketio.server

    def emit_to_client(event: str, data: object) -> None:  # straight to this instance's client, never through Redis
        server.emit(event, data, to=sid, namespace=namespace, ignore_queue=True)

    try:
        for event in reader:
            if isinstance(event, Chunk):  # two arguments: seed-style `onChunk(text)` handlers still work
                meta: dict[str, object] = {"stream_id": stream_id, "seq": event.seq}
                if event.parts is not None:  # absent for text only: the text is all there is
                    meta["parts"] = event.parts
                emit_to_client(names.chunk, (event.text, meta))
            else:
                emit_to_client(names.done if isinstance(event, Done) else names.error, event.payload(stream_id))
                # The stream counts against its client's limit until the client has its last chunk: when the
                # writer takes the terminal event, it has sent the chunk before (docs/security.md, "Slow readers").
                while not wait_for_writer(server, sid, namespace, services.driver):
                    pass
    except Exception:
        log_bug(log, f"stream {stream_id}: emitting failed")
        failure = Failed(ErrorCode.INTERNAL, INTERNAL_FAILURE, chunks=0)
        emit_to_client(names.error, failure.payload(stream_id))
    finally:
        services.streams.release(sid, stream_id)
