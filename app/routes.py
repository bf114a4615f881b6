"""HTTP transport: `POST /message/stream` (plain text, NDJSON or SSE) and `GET /healthz`."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException

from .errors import ErrorCode, RelayError
from .formats import negotiate
from .schemas import parse_chat_request
from .services import current_services

bp = Blueprint("http", __name__)

STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each chunk on at once
}


@bp.post("/message/stream")
def message_stream() -> Response:
    """Stream one reply; errors before the first chunk get a status and a JSON body, later ones a last line."""
    services = current_services()
    body_format = negotiate(request.accept_mimetypes)
    if not request.is_json:
        message = "Send a JSON body with Content-Type: application/json."
        return _error(RelayError(ErrorCode.INVALID_REQUEST, message), 415)
    try:
        data = request.get_json()
    except BadRequest:
        return _error(RelayError(ErrorCode.INVALID_REQUEST, "The body is not valid JSON."))

    owner = f"http:{uuid.uuid4().hex}"
    try:
        relay = services.new_relay(parse_chat_request(data, services.settings))
        services.registry.add(owner, relay)
    except RelayError as err:
        return _error(err)
    try:
        relay.open()
    except RelayError as err:
        services.registry.remove(owner, relay.stream_id)
        return _error(err)

    def finish() -> None:  # runs when the response closes, streamed to the end or not
        relay.close()
        services.registry.remove(owner, relay.stream_id)

    # eventlet's server otherwise holds writes until 4 KB have gathered.
    request.environ["eventlet.minimum_write_chunk_size"] = 0
    response = Response(
        body_format.encode(relay.stream_id, relay.events()),
        content_type=body_format.content_type,
        headers={**STREAM_HEADERS, "X-Stream-Id": relay.stream_id},
    )
    response.call_on_close(finish)
    return response


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness, and how many streams are running."""
    return jsonify(status="ok", streams=len(current_services().registry))


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    """Errors Flask raises itself (body too large, wrong method, no such path) in the same JSON shape as ours."""
    code = ErrorCode.INVALID_REQUEST if (exc.code or 500) < 500 else ErrorCode.INTERNAL
    message = exc.description or exc.name
    if exc.code == 413:
        message = f"The request is too large: at most {current_app.config['MAX_CONTENT_LENGTH']} bytes."
    return _error(RelayError(code, message), exc.code)


def _error(err: RelayError, status: int | None = None) -> Response:
    response = jsonify(error=err.to_dict())
    response.status_code = status or err.http_status
    if err.retry_after is not None:
        response.headers["Retry-After"] = str(int(err.retry_after + 0.999))
    return response
