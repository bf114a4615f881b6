"""The AI SDK's chat endpoint: `POST <path>` (default /api/chat), `GET <path>/<chat id>/stream` (resume) and
`POST <path>/<chat id>/stop`, each answering in the UI message stream (docs/ai-sdk.md).

The stream is the relay's own: the same validation, admission, producer and delivery as `POST /message/stream`
(chat_relay/transports/http_routes.py), only written by ui_stream.py; so back-pressure, stop, limits and the one
terminal hold here as there.
"""

from __future__ import annotations

import functools
import re
import uuid

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from ...errors import ErrorCode, RelayError
from ...streams.chat_index import ChatIndex
from ...streams.redis_store import UNAVAILABLE, log_key
from ...streams.request_validation import parse_chat_request
from ...wiring import Services, current_services
from ..http_body_formats import BodyFormat
from ..http_routes import (  # the HTTP stream's own delivery and refusals: both endpoints answer alike
    STREAM_HEADERS,
    delivery,
    error_response,
    http_error,
    json_body,
    refused,
    relay_error,
    start_stream,
    unexpected_error,
)
from .ui_request import CHAT_ID_PATTERN, parse_ui_request
from .ui_stream import CONTENT_TYPE, HEADERS, ui_message_stream

INDEX_KEY = "chat_relay.ai_sdk"  # the app's ChatIndex, in app.extensions


def ui_message_format(message_id: str) -> BodyFormat:
    """The UI message stream of a reply written as the message `message_id` ("": the stream's own id)."""
    return BodyFormat(CONTENT_TYPE, functools.partial(ui_message_stream, message_id=message_id))

NO_CHAT = "No reply of yours in that chat is running."
_CHAT_ID = re.compile(CHAT_ID_PATTERN)


def ai_sdk_blueprint(path: str) -> Blueprint:
    """The endpoint's routes at `path` (under the relay's url_prefix)."""
    bp = Blueprint("ai_sdk", __name__)
    bp.before_request(_limit_body)
    bp.add_url_rule(path, "chat", chat, methods=["POST"])
    bp.add_url_rule(f"{path}/<chat_id>/stream", "resume", resume, methods=["GET"])
    bp.add_url_rule(f"{path}/<chat_id>/stop", "stop", stop, methods=["POST"])
    bp.register_error_handler(RelayError, relay_error)
    bp.register_error_handler(HTTPException, http_error)
    bp.register_error_handler(Exception, unexpected_error)
    return bp


def install_index(app: Flask, services: Services) -> None:
    """The chat index, in Redis too when the relay shares its streams there."""
    shared = services.streams.shared
    app.extensions[INDEX_KEY] = ChatIndex(services.settings.resume_ttl, shared.redis if shared else None)


def _limit_body() -> None:
    request.max_content_length = current_services().settings.max_request_bytes


def chat() -> Response:
    """Stream the reply to the chat's messages; errors before the first chunk get a status and a JSON body."""
    services = current_services()
    client = services.access.check_http(request.environ, request.headers, request.remote_addr)
    data = json_body(services)
    if isinstance(data, Response):
        return data
    try:
        ui_request = parse_ui_request(data)
        chat_request = parse_chat_request(ui_request.payload, services.settings)
    except RelayError as err:
        return refused(services, err)
    owner = f"http:{uuid.uuid4().hex}"
    # prepare, if the team gave one, is given the request the UI messages became
    started = start_stream(services, client, owner, chat_request, ui_request.payload)
    if isinstance(started, Response):
        return started
    _index().record(client, ui_request.chat_id, chat_request.stream_id, started.token, ui_request.message_id)
    return delivery(services, owner, chat_request.stream_id, started.reader, ui_message_format(ui_request.message_id),
                    {**HEADERS, "X-Stream-Id": chat_request.stream_id}, since=started.relay.created)


def resume(chat_id: str) -> Response:
    """The chat's running reply from its start, or 204 when none is running (what the AI SDK's resume expects)."""
    services = current_services()
    client = services.access.check_http(request.environ, request.headers, request.remote_addr)
    found = _running(services, client, chat_id)
    if found is None:
        return Response(status=204, headers=STREAM_HEADERS)
    stream_id, key, message_id = found
    owner = f"http:{uuid.uuid4().hex}"
    try:
        reader = services.streams.resume(key, -1, owner, stream_id)
    except RelayError as err:
        if err.code is ErrorCode.STREAM_EXPIRED:
            return Response(status=204, headers=STREAM_HEADERS)
        return error_response(err)
    return delivery(services, owner, stream_id, reader, ui_message_format(message_id),
                     {**HEADERS, "X-Stream-Id": stream_id})


def stop(chat_id: str) -> Response:
    """Stop the chat's running reply, from any connection or instance: its stream then ends with `abort`."""
    services = current_services()
    client = services.access.check_http(request.environ, request.headers, request.remote_addr)
    found = _running(services, client, chat_id)
    if found is None or not services.streams.stop(found[1]):
        return error_response(RelayError(ErrorCode.INVALID_REQUEST, NO_CHAT))
    return jsonify(chat_id=chat_id, stream_id=found[0])


def _running(services: Services, client: str, chat_id: str) -> tuple[str, str, str] | None:
    """(stream_id, key, message_id) of the chat's reply if it is running, here or (with Redis) on any instance."""
    if not _CHAT_ID.match(chat_id):
        return None
    found = _index().find(client, chat_id)
    if found is None:
        return None
    stream_id, token, message_id = found
    try:
        key = services.streams.key_for(token, stream_id, client)
    except RelayError:
        return None
    if services.registry.get(key) is not None:
        return stream_id, key, message_id
    shared = services.streams.shared
    if shared is None:
        return None
    # Produced elsewhere: running while its log in Redis has no terminal (a dead producer's then reads
    # `interrupted`). A log not there yet is a stream just started: its index entry expires before its log does.
    try:
        last = shared.redis.xrevrange(log_key(key), count=1)
    except redis.RedisError:
        raise RelayError(ErrorCode.RESUME_UNAVAILABLE, UNAVAILABLE) from None
    if last and b"end" in (last[0][1] or {}):
        return None
    return stream_id, key, message_id


def _index() -> ChatIndex:
    index: ChatIndex = current_app.extensions[INDEX_KEY]
    return index
