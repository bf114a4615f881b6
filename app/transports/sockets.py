"""Socket.IO transport: thin handlers that validate, start or stop a stream, and return the ack at once.

Each stream has two background tasks: its producer (Relay.run), which reads the upstream into the stream's
log, and its delivery, which follows the log and emits to the requesting client's sid only, one chunk event
for all the text waiting each time it wakes (app/streams/log.py).
The event names and payloads are specified in docs/protocol.md.
"""

from __future__ import annotations

import logging

from flask import request
from flask_socketio import ConnectionRefusedError, SocketIO, emit

from ..access.auth import CLIENT_KEY, socket_token
from ..bugs import log_bug
from ..errors import ErrorCode, RelayError
from ..services import Services
from ..streams.events import Chunk, Done, Failed
from ..streams.registry import StreamRegistry
from ..streams.relay import INTERNAL_FAILURE, Relay
from ..streams.schemas import parse_chat_request, requested_stream_id
from .packets import Unreadable
from .writer import wait_for_writer

log = logging.getLogger(__name__)

REQUEST = "chatgpt_description"
CHUNK = "chatgpt_description_chunk"
DONE = "chatgpt_description_done"
ERROR = "chatgpt_description_error"
STOP = "chatgpt_description_stop"


def register_socket_handlers(socketio: SocketIO, services: Services) -> None:
    """Attach the protocol's handlers to this app's SocketIO server."""

    @socketio.on("connect")
    def admit_client(auth: object = None) -> None:
        """Refuse a connection without a valid token (when AUTH_TOKENS is set), with a coded reason."""
        try:
            client = services.access.identify(socket_token(auth), request.remote_addr)
        except RelayError as err:
            raise ConnectionRefusedError(err.message, err.to_dict()) from None
        request.environ[CLIENT_KEY] = client  # the connection's environ lives as long as the connection

    @socketio.on(REQUEST)
    def start_stream(data: object = None, *extra: object) -> dict[str, object]:
        """Validate, start the stream in the background, and ack with its stream_id or an error."""
        sid: str = request.sid  # type: ignore[attr-defined]
        client: str = request.environ[CLIENT_KEY]
        try:
            _check_call(REQUEST, data, extra)
            relay = services.new_relay(parse_chat_request(data, services.settings))
            # Before admission, which counts the request against the rate limit: a refusal uses up nothing.
            services.registry.check_free(sid, relay.stream_id)
            services.admission.admit(client)
            entry = services.registry.add(sid, relay, client)
        except RelayError as err:
            # Also as an event, for clients that pass no ack callback (the seed's React page). It names
            # the stream_id only if no stream of that id is running, which it would seem to end.
            stream_id = requested_stream_id(data)
            if stream_id is not None and services.registry.get(sid, stream_id) is not None:
                stream_id = None
            emit(ERROR, {"stream_id": stream_id, **err.to_dict()})
            return {"error": err.to_dict()}
        entry.task = socketio.start_background_task(relay.run)
        socketio.start_background_task(_deliver, socketio, services.registry, sid, relay)
        return {"stream_id": relay.stream_id}

    @socketio.on(STOP)
    def stop_stream(data: object = None, *extra: object) -> dict[str, object]:
        """Cancel one of this client's own streams; its task sends the `done` with finish_reason cancelled."""
        try:
            _check_call(STOP, data, extra)
        except RelayError as refused:
            return {"error": refused.to_dict()}
        stream_id = data.get("stream_id") if isinstance(data, dict) else None
        entry = services.registry.get(request.sid, stream_id) if isinstance(stream_id, str) else None  # type: ignore[attr-defined]
        if entry is None:
            err = RelayError(ErrorCode.INVALID_REQUEST, "No stream of yours with that stream_id is running.")
            return {"error": err.to_dict()}
        entry.cancel(services.settings.async_mode, "stopped")
        return {"stream_id": stream_id}

    @socketio.on("disconnect")
    def cancel_client_streams(reason: object = None) -> None:
        """Nobody is listening any more: stop paying for tokens."""
        for entry in services.registry.owned_by(request.sid):  # type: ignore[attr-defined]
            entry.cancel(services.settings.async_mode, "client_gone")

    @socketio.on_error_default
    def unexpected_error(exc: Exception) -> dict[str, object]:
        """The backstop: log the details, tell the client only the code."""
        log_bug(log, "socket.io handler failed", exc)
        return {"error": RelayError(ErrorCode.INTERNAL, "The server failed to handle the request.").to_dict()}


def _check_call(event: str, data: object, extra: tuple[object, ...]) -> None:
    """Refuse a packet that was no call of an event (packets.py), or a call with more than one argument."""
    if isinstance(data, Unreadable):
        raise data.error()
    if extra:
        raise RelayError(ErrorCode.INVALID_REQUEST, f"{event} takes one argument, an object; got {1 + len(extra)}.")


def _deliver(socketio: SocketIO, registry: StreamRegistry, sid: str, relay: Relay) -> None:
    """Follow the stream's log and emit each chunk, then the terminal event, to this client's room only."""
    stream_id = relay.stream_id
    server = socketio.server
    try:
        for event in relay.log.follow(settle=lambda: wait_for_writer(server, sid)):
            if isinstance(event, Chunk):  # two arguments: seed-style `onChunk(text)` handlers still work
                server.emit(CHUNK, (event.text, {"stream_id": stream_id, "seq": event.seq}), to=sid)
            else:
                server.emit(DONE if isinstance(event, Done) else ERROR, event.payload(stream_id), to=sid)
    except Exception:
        log_bug(log, f"stream {stream_id}: emitting failed")
        entry = registry.get(sid, stream_id)
        if entry is not None:
            entry.cancel(server.async_mode, "internal")  # stop paying for a reply nobody will see
        failure = Failed(ErrorCode.INTERNAL, INTERNAL_FAILURE, chunks=relay.log.last_seq + 1)
        server.emit(ERROR, failure.payload(stream_id), to=sid)
    finally:
        registry.remove(sid, stream_id)
