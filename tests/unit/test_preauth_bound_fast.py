"""The small bound before auth (chat_relay/access/message_bound.py) without a server: which bound each request and
connection gets, that a body over it is never read, and that a websocket's bound rises at the admitted connect."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

from chat_relay.access.auth import Access
from chat_relay.access.connections import Connections, Held
from chat_relay.access.message_bound import MessageBound
from chat_relay.async_drivers import AsyncDriver, mode_driver
from chat_relay.config import Settings
from chat_relay.middleware.body_deadline import BodyDeadline

TOKEN = "tok-preauth-unit"
SMALL, LARGE = 65_536, 8_388_608
THREADS = AsyncDriver("threading", threading.Thread, time.sleep, threading.Event, mode_driver("threading"))


def bound_with(tokens: str = TOKEN) -> tuple[MessageBound, Connections]:
    settings = Settings(auth_tokens=tokens, _env_file=None)  # type: ignore[call-arg]
    connections = Connections(100)
    return MessageBound(SMALL, LARGE, connections, Access(settings)), connections


class Unreadable(io.RawIOBase):
    """A body that must not be read."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


def test_a_stream_request_gets_the_large_bound_only_with_a_right_token() -> None:
    bound, _ = bound_with()
    assert bound.for_stream_request({}) == SMALL
    assert bound.for_stream_request({"HTTP_AUTHORIZATION": "Bearer wrong"}) == SMALL
    assert bound.for_stream_request({"HTTP_AUTHORIZATION": f"Basic {TOKEN}"}) == SMALL
    assert bound.for_stream_request({"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}) == LARGE
    open_bound, _ = bound_with(tokens="")
    assert open_bound.for_stream_request({}) == LARGE  # no tokens: nothing to wait for


def test_asking_the_bound_counts_no_failed_auth() -> None:
    bound, _ = bound_with()
    for _ in range(50):
        bound.for_stream_request({"HTTP_AUTHORIZATION": "Bearer wrong", "REMOTE_ADDR": "10.0.0.1"})
    assert bound._access.identify(TOKEN, "10.0.0.1").startswith("token:")  # not throttled


def test_a_websocket_bound_rises_at_the_admitted_connect() -> None:
    bound, connections = bound_with()
    held = connections.sessions["sid1"] = Held()
    bounds: list[int] = []
    bound.follow("sid1", bounds.append)
    assert bounds == [SMALL]
    assert bound.for_socketio_post({"QUERY_STRING": "EIO=4&transport=polling&sid=sid1"}) == SMALL
    environ: dict[str, Any] = {"chat_relay.connection": held}
    connections.connect(environ, "token:abc")
    assert bounds == [SMALL, LARGE]
    assert bound.for_socketio_post({"QUERY_STRING": "EIO=4&transport=polling&sid=sid1"}) == LARGE
    later: list[int] = []
    bound.follow("sid1", later.append)  # a websocket upgraded after the connect starts large
    assert later == [LARGE]


def test_a_stream_body_over_the_small_bound_goes_to_the_route_unread() -> None:
    seen: list[tuple[str, bytes]] = []

    def route(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append((environ["CONTENT_LENGTH"], environ["wsgi.input"].read()))
        start_response("401 UNAUTHORIZED", [])
        return [b"{}"]

    bound, _ = bound_with()
    middleware = BodyDeadline(route, 10, THREADS, LARGE, bound=lambda environ: bound.for_stream_request(environ),
                              refused_by_auth=lambda path: path == "/message/stream")
    environ = {"PATH_INFO": "/message/stream", "CONTENT_LENGTH": "5000000", "wsgi.input": Unreadable()}
    answer = middleware(environ, lambda status, headers: None)
    assert list(answer) == [b"{}"]
    assert seen == [("0", b"")]


def test_a_polling_post_over_the_small_bound_is_refused_unread() -> None:
    statuses: list[str] = []
    bound, _ = bound_with()
    middleware = BodyDeadline(lambda environ, start_response: [b"read"], 10, THREADS, LARGE,
                              bound=lambda environ: bound.for_socketio_post(environ))
    environ = {"PATH_INFO": "/socket.io/", "QUERY_STRING": "sid=x", "CONTENT_LENGTH": str(SMALL + 1),
               "wsgi.input": Unreadable()}
    answer = b"".join(middleware(environ, lambda status, headers: statuses.append(status)))
    assert statuses[0].startswith("413") and b"invalid_request" in answer


def test_a_connect_admitted_on_a_teams_namespace_lifts_the_bound_too() -> None:
    bound, connections = bound_with()
    held = connections.sessions["sid2"] = Held(connected_elsewhere=True)
    assert held.admitted
    bounds: list[int] = []
    bound.follow("sid2", bounds.append)
    assert bounds == [LARGE]
