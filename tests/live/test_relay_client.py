"""relay_client against the real server (both modes) and the fake upstream, over both transports: what a
program using it sees. The text complete, in order and while the upstream is still writing; stop; the
protocol's codes as exceptions with nothing secret in them; resume, by hand and after a dropped connection."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from relay_client import (
    Done,
    InvalidRequest,
    RelayClient,
    RelayError,
    TooManyStreams,
    Unauthorized,
    UpstreamAuth,
    UpstreamError,
)
from relay_client.errors import BY_CODE
from relay_client.reply import Reply
from tests.conftest import API_KEY, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import TRANSPORTS, check_cursor

TOKEN = "client-test-token-5d1e"


def words(count: int) -> list[str]:
    """The fake upstream's default pieces."""
    return [f"w{i} " for i in range(count)]


@pytest.fixture(params=TRANSPORTS)
def client(request: pytest.FixtureRequest, live_server: LiveServer) -> Iterator[RelayClient]:
    with RelayClient(live_server.url, transport=request.param, timeout=15) as relay:
        yield relay


def read_through(reply: Reply, seq: int) -> list[tuple[int, str]]:
    """Iterate until the chunk that holds piece `seq`, however the pieces were batched."""
    seen: list[tuple[int, str]] = []
    for chunk in reply.chunks():
        seen.append((chunk.seq, chunk.text))
        if chunk.seq >= seq:
            break
    return seen


def assert_no_secret(error: RelayError) -> None:
    for shown in (str(error), repr(error), error.message):
        assert API_KEY not in shown and "SECRET-BODY-DETAIL" not in shown, shown


def test_every_protocol_code_has_its_exception() -> None:
    from chat_relay.errors import ErrorCode  # the test may know the server; the client package must not import it

    assert set(BY_CODE) == {code.value for code in ErrorCode}
    assert all(issubclass(cls, RelayError) and cls.code == code for code, cls in BY_CODE.items())


def test_text_arrives_complete_in_order_and_while_the_upstream_writes(client: RelayClient, gate: str,
                                                                      fake_upstream: FakeUpstream) -> None:
    completed = fake_upstream.completed
    with client.stream(controls(chunks=6, gate=gate, hold_after=3)) as reply:
        early = read_through(reply, 2)  # the fake holds the rest until the gate opens: these were not buffered
        assert fake_upstream.completed == completed and reply.done is None
        fake_upstream.open_gate(gate)
        rest = [(chunk.seq, chunk.text) for chunk in reply.chunks()]
    check_cursor(early + rest, words(6), {"chunks": reply.done.chunks} if reply.done else None)
    assert reply.text == "".join(words(6)) == "".join(text for _, text in early + rest)
    assert reply.done == Done(reply.stream_id, "stop", 6, reply.done.usage if reply.done else None)
    assert reply.done is not None and reply.done.usage and reply.done.usage["completion_tokens"] == 6
    assert list(reply) == []  # ended: iterating again yields nothing


def test_complete_with_messages_model_and_stream_id(client: RelayClient, fake_upstream: FakeUpstream) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": controls(text=["a\n", "é😀"])}]
    assert client.complete(messages=messages, model="fake-model-2", max_tokens=9) == "a\né😀"
    sent = fake_upstream.requests[-1]
    assert sent["messages"] == messages and sent["model"] == "fake-model-2" and sent["max_tokens"] == 9
    with client.stream(controls(chunks=2), stream_id="mine-1") as reply:
        assert reply.read() == "w0 w1 " and reply.stream_id == "mine-1" and reply.resume_token


def test_stop_ends_the_reply_cancelled(client: RelayClient, fake_upstream: FakeUpstream,
                                       live_server: LiveServer) -> None:
    aborted = fake_upstream.aborted
    with client.stream(controls(chunks=1000, delay=0.02)) as reply:
        seen = read_through(reply, 1)
        reply.stop()
        seen += [(chunk.seq, chunk.text) for chunk in reply.chunks()]
    assert reply.done is not None and reply.done.finish_reason == "cancelled" and reply.done.chunks < 1000
    check_cursor(seen, words(1000), {"chunks": reply.done.chunks})
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=5)
    assert live_server.streams() == 0


def test_leaving_the_block_early_stops_the_reply(client: RelayClient, fake_upstream: FakeUpstream) -> None:
    aborted = fake_upstream.aborted
    with client.stream(controls(chunks=1000, delay=0.02)) as reply:
        next(iter(reply))
    assert fake_upstream.wait_for(lambda f: f.aborted > aborted, timeout=5)


@pytest.mark.parametrize("request_options", [{"prompt": "  "}, {"prompt": "hi", "temperature": 7},
                                             {"prompt": "hi", "model": "no-such-model"}])
def test_a_bad_request_raises_invalid_request(client: RelayClient, request_options: dict) -> None:
    with pytest.raises(InvalidRequest) as caught:
        client.stream(**request_options)
    assert caught.value.code == "invalid_request" and caught.value.message
    assert client.complete(controls(chunks=1)) == "w0 "  # the client is still usable


def test_an_upstream_refusal_raises_its_code_without_secrets(client: RelayClient) -> None:
    with pytest.raises(UpstreamAuth) as caught:
        client.complete(controls(fault="401"))
    assert caught.value.code == "upstream_auth"
    assert_no_secret(caught.value)


def test_an_error_mid_reply_raises_after_the_text(client: RelayClient) -> None:
    with client.stream(controls(chunks=4, fault="error_event")) as reply, pytest.raises(UpstreamError) as caught:
        for _ in reply:
            pass
    assert reply.text == "w0 " and reply.done is None and reply.error is caught.value
    assert caught.value.stream_id == reply.stream_id
    assert_no_secret(caught.value)


@pytest.fixture(scope="module")
def guarded(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    """A server with tokens, one stream per client, and a grace period after a disconnect (as by default)."""
    env = {**upstream_env(fake_upstream), "AUTH_TOKENS": TOKEN, "MAX_STREAMS_PER_CLIENT": "1", "RESUME_GRACE": "10"}
    server = start_server("gevent", env, tmp_path_factory.mktemp("client") / "server.log")
    yield server
    stop_server(server)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tokens_and_limits_raise_their_codes(guarded: LiveServer, transport: str, gate: str,
                                             fake_upstream: FakeUpstream) -> None:
    with RelayClient(guarded.url, transport=transport) as anonymous, pytest.raises(Unauthorized):
        anonymous.complete("hi")
    with RelayClient(guarded.url, transport=transport, token="wrong") as wrong, pytest.raises(Unauthorized) as caught:
        wrong.complete("hi")
    assert "wrong" not in str(caught.value)
    with (RelayClient(guarded.url, transport=transport, token=TOKEN) as client,
          client.stream(controls(chunks=3, gate=gate, hold_after=1)) as first):
        read_through(first, 0)
        with pytest.raises(TooManyStreams) as refused:
            client.stream("a second one")
        assert refused.value.code == "too_many_streams"
        fake_upstream.open_gate(gate)
        assert first.read() == "w0 w1 w2 "


def cut(client: RelayClient, reply: Reply) -> None:
    """Break the reply's connection under the client, as a network does (no close handshake)."""
    if client.transport == "socketio":
        sock = client._sio.sio.eio.ws.sock  # type: ignore[union-attr]  # websocket-client's socket
    else:
        sock = reply._source._response.raw._connection.sock  # type: ignore[attr-defined]  # urllib3's
    sock.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_dropped_connection_resumes_from_the_cursor(guarded: LiveServer, transport: str, gate: str,
                                                      fake_upstream: FakeUpstream) -> None:
    aborted = fake_upstream.aborted
    with (RelayClient(guarded.url, transport=transport, token=TOKEN) as client,
          client.stream(controls(chunks=10, gate=gate, hold_after=4, heartbeat=0.3)) as reply):
        seen = read_through(reply, 3)
        cut(client, reply)
        fake_upstream.open_gate(gate)
        seen += [(chunk.seq, chunk.text) for chunk in reply.chunks()]
    assert reply.done is not None and reply.done.finish_reason == "stop"
    check_cursor(seen, words(10), {"chunks": reply.done.chunks})  # no gap, no repeat, across two connections
    assert reply.text == "".join(words(10))
    assert fake_upstream.aborted == aborted  # the upstream never stopped


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_resume_by_hand_on_another_client(guarded: LiveServer, transport: str, gate: str,
                                          fake_upstream: FakeUpstream) -> None:
    with RelayClient(guarded.url, transport=transport, token=TOKEN) as first:
        reply = first.stream(controls(chunks=8, gate=gate, hold_after=3, heartbeat=0.3))
        seen = read_through(reply, 2)
        stream_id, token, cursor = reply.stream_id, reply.resume_token, reply.cursor
        assert token is not None and token not in repr(reply)
        with RelayClient(guarded.url, transport=transport, token=TOKEN) as second:
            with second.resume(stream_id, token, after_seq=cursor) as rest:
                fake_upstream.open_gate(gate)
                seen += [(chunk.seq, chunk.text) for chunk in rest.chunks()]
            assert rest.done is not None
            check_cursor(seen, words(8), {"chunks": rest.done.chunks})
            with second.resume(stream_id, token) as replay:  # ended: replayed whole within RESUME_TTL
                assert replay.read() == "".join(words(8)) and replay.done == rest.done
            with pytest.raises(InvalidRequest):
                second.resume(stream_id, "not-the-token")
