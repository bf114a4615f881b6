"""HTTP transport: `POST /message/stream` (plain text, NDJSON or SSE), its resume and stop, and `GET /healthz`."""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

from ..access.auth import bearer_token, identity_of
from ..errors import ErrorCode, RelayError, http_refusal
from ..observability.bug_reports import log_bug
from ..streams.events import Chunk, Failed, RelayEvent, Terminal
from ..streams.manager import Started
from ..streams.producer import INTERNAL_FAILURE
from ..streams.registry import Closable
from ..streams.request_validation import ChatRequest, parse_chat_request
from ..wiring import Services, current_services
from .first_chunk import first_chunk_timed
from .http_body_formats import BodyFormat, negotiate
from .http_hangup import watch_client

log = logging.getLogger(__name__)

bp = Blueprint("http", __name__)
TRANSPORT = "http"  # in the metrics' labels



@bp.before_request
def limit_body() -> None:
    """Bodies larger than MAX_REQUEST_BYTES are refused (413) before they are read, whatever the app's own limit."""
    request.max_content_length = current_services().settings.max_request_bytes


STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each chunk on at once
}


@bp.post("/message/stream")
def message_stream() -> Response:
    """Stream one reply; errors before the first chunk get a status and a JSON body, later ones a last line."""
    services = current_services()
    client = services.access.check_http(request.environ, request.headers, request.remote_addr)
    body_format = negotiate(request.accept_mimetypes)
    data = json_body(services)
    if isinstance(data, Response):
        return data
    try:
        chat_request = parse_chat_request(data, services.settings)
    except RelayError as err:
        return refused(services, err)
    owner = f"http:{uuid.uuid4().hex}"  # every request its own owner: its stream_id never collides
    started = start_stream(services, client, owner, chat_request, data)
    if isinstance(started, Response):
        return started
    headers = {"X-Stream-Id": chat_request.stream_id, "X-Resume-Token": started.token}
    return delivery(services, owner, chat_request.stream_id, started.reader, body_format, headers,
                    since=started.relay.created)


def json_body(services: Services) -> Any:
    """The request's JSON body, or the Response that refuses it, counted as a refusal: 415 when it is not JSON, 413
    when it is over MAX_REQUEST_BYTES, 400 when it is broken. Both stream endpoints read their body here."""
    if not request.is_json:
        message = "Send a JSON body with Content-Type: application/json."
        return refused(services, RelayError(ErrorCode.INVALID_REQUEST, message), 415)
    try:
        return request.get_json()
    except RequestEntityTooLarge:
        return refused(services, _too_large(), 413)
    except (BadRequest, RecursionError):  # RecursionError: nested too deep for the JSON parser
        return refused(services, RelayError(ErrorCode.INVALID_REQUEST, "The body is not valid JSON."))


def start_stream(services: Services, client: str, owner: str, chat_request: ChatRequest,
                 sent: Any) -> Started | Response:
    """Admit a validated request (caps, rate limit, then the team's hooks: prepare, the budget; `sent` is what
    prepare is given) and start its stream for `owner`; the Started stream, or the Response that refuses it.
    Until the upstream answers, a failure can still be a status code: this waits for its answer or the end."""
    try:
        chat_request, ending = services.hooks.admit(chat_request, sent, identity_of(request.environ), client)
        started = services.streams.start(chat_request, owner, client, reserved=True, transport=TRANSPORT,
                                         on_end=ending)
    except RelayError as err:
        return refused(services, err)
    stream_log = started.relay.buffer
    stream_log.wait(lambda: stream_log.opened or stream_log.terminal is not None, stream_log.new_event())
    if not stream_log.opened:  # a stream that failed (its metrics say so), not a refusal
        services.streams.release(owner, chat_request.stream_id)
        return error_response(_refusal(stream_log.terminal))
    services.streams.wait_logged(started)  # the token in the headers then works on every instance
    return started


@bp.get("/message/stream/<stream_id>")
def resume_stream(stream_id: str) -> Response:
    """Read a stream again from a cursor: what was written after it, the live rest, then the terminal."""
    services = current_services()
    client = services.access.check_http(request.environ, request.headers, request.remote_addr)
    body_format = negotiate(request.accept_mimetypes)
    owner = f"http:{uuid.uuid4().hex}"
    try:
        after = _cursor(request.headers.get("Last-Event-ID") or request.args.get("after_seq", "-1"))
        key = services.streams.key_for(_resume_token(services), stream_id, client)
        reader = services.streams.resume(key, after, owner, stream_id)
    except RelayError as err:
        return error_response(err)
    return delivery(services, owner, stream_id, reader, body_format, {"X-Stream-Id": stream_id})


@bp.post("/message/stream/<stream_id>/stop")
def stop_stream(stream_id: str) -> Response:
    """Stop a stream from anywhere, with its resume token."""
    services = current_services()
    client = services.access.check_http(request.environ, request.headers, request.remote_addr)
    try:
        key = services.streams.key_for(_resume_token(services), stream_id, client)
        if not services.streams.stop(key):
            raise RelayError(ErrorCode.INVALID_REQUEST, "No stream of yours with that stream_id is running.")
    except RelayError as err:
        return error_response(err)
    return jsonify(stream_id=stream_id)


def delivery(services: Services, owner: str, stream_id: str, reader: Closable,
              body_format: BodyFormat, headers: dict[str, str], since: float | None = None) -> Response:
    """The streamed response of one delivery: written as the reader yields; a hang-up ends the delivery.
    With `since` (the stream's start), the time to its first chunk is measured
    (chat_relay/transports/first_chunk.py)."""
    done = False

    def finish() -> None:  # runs when the response closes, streamed to the end or not
        nonlocal done
        done = True
        reader.close()
        services.streams.release(owner, stream_id)

    watch_client(request.environ, lambda: done, reader.close, services.driver)
    # eventlet's server otherwise holds writes until 4 KB have gathered.
    request.environ["eventlet.minimum_write_chunk_size"] = 0
    # An empty first write sends the headers (X-Resume-Token among them) before the first text, under gunicorn;
    # eventlet's server skips empty writes, and sends them with the first text.
    events: Iterable[RelayEvent] = _ending_with_a_terminal(reader, stream_id)  # type: ignore[arg-type]
    if since is not None:
        events = first_chunk_timed(events, since,
                                   lambda seconds: services.metrics.first_chunk_delivered(TRANSPORT, seconds))
    body = itertools.chain((b"",), body_format.encode(stream_id, events))
    response = Response(body, content_type=body_format.content_type, headers={**STREAM_HEADERS, **headers})
    response.call_on_close(finish)
    return response


def _ending_with_a_terminal(events: Iterable[RelayEvent], stream_id: str) -> Iterator[RelayEvent]:
    """The reader's events; a bug while reading still ends the response with an `internal` error event, where
    the server would otherwise cut the connection with no terminal event."""
    last: RelayEvent | None = None  # what was sent last says all the failure needs: nothing is tracked per event
    try:
        for last in events:
            yield last
    except Exception:
        log_bug(log, f"stream {stream_id}: reading it failed")
        if last is None or isinstance(last, Chunk):
            yield Failed(ErrorCode.INTERNAL, INTERNAL_FAILURE, 0 if last is None else last.seq + 1)


def _resume_token(services: Services) -> str | None:
    """The resume token: X-Resume-Token, a Bearer token when AUTH_TOKENS is off, or ?resume_token= (EventSource)."""
    token = request.headers.get("X-Resume-Token") or request.args.get("resume_token")
    if token is None and not services.access.authenticates:
        token = bearer_token(request.headers)
    return token


def _refusal(terminal: Terminal | None) -> RelayError:
    """How a stream that ended before its upstream answered is told as a status: its error, or a cancel."""
    if isinstance(terminal, Failed):
        return RelayError(terminal.code, terminal.message, retry_after=terminal.retry_after)
    return RelayError(ErrorCode.INVALID_REQUEST, "The request was cancelled.")


def _cursor(value: str) -> int:
    try:
        after = int(value)
    except ValueError:
        after = -2
    if after < -1:
        raise RelayError(ErrorCode.INVALID_REQUEST, "after_seq (or Last-Event-ID) must be an integer, -1 or more.")
    return after


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness, how many streams are running, and how many Socket.IO connections are open."""
    services = current_services()
    return jsonify(status="ok", streams=len(services.registry), connections=services.connections.total)


@bp.errorhandler(RelayError)
def relay_error(err: RelayError) -> Response:
    """Refusals raised by a view (chat_relay/access/auth.py: host, origin, token) in the same JSON shape."""
    return refused(current_services(), err)


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    """Errors Flask raises itself (body too large, wrong method, no such path) in the same JSON shape as ours."""
    code = ErrorCode.INVALID_REQUEST if (exc.code or 500) < 500 else ErrorCode.INTERNAL
    err = _too_large() if exc.code == 413 else RelayError(code, exc.description or exc.name)
    return error_response(err, exc.code)


def _too_large() -> RelayError:
    limit = request.max_content_length
    return RelayError(ErrorCode.INVALID_REQUEST, f"The request is too large: at most {limit} bytes.")


@bp.errorhandler(Exception)
def unexpected_error(exc: Exception) -> Response:
    """The backstop for a bug in a view: one log line, and the client gets only the code."""
    log_bug(log, f"{request.method} {request.path} failed", exc)
    return error_response(RelayError(ErrorCode.INTERNAL, "The server failed to handle the request."))


def answer_every_error_in_json(app: Flask) -> None:
    """For an app that is the relay alone (create_app): every error, on any path, in the relay's JSON shape.
    A team's app (chat_relay/extension.py) keeps its own; the relay's routes answer in JSON either way."""
    app.register_error_handler(RelayError, relay_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)


def refused(services: Services, err: RelayError, status: int | None = None) -> Response:
    """A request refused by this server itself, before any stream: counted (relay_refusals_total), then answered."""
    services.metrics.refused(TRANSPORT, err.code)
    return error_response(err, status)


def error_response(err: RelayError, status: int | None = None) -> Response:
    code, headers, body = http_refusal(err, status)
    return Response(body, code, headers)
