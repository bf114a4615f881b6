"""MAX_CONNECTIONS_PER_CLIENT per user, with an `identify` hook (tests/hooks_app.py, started as its docstring says),
in both async modes: two users behind the same address each hold exactly the cap of Socket.IO connections, and
of HTTP stream requests in progress; one more of a user is refused with `too_many_connections` while the other
user, from the same address, connects and streams.

TRUSTED_PROXIES=1 lets each connection claim its address through X-Forwarded-For, so one machine can play
several addresses; the users are tests/hooks_app.py's (the Socket.IO auth `{"user": ...}`, the header X-User).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import pytest
import requests
import websocket

from tests.clients import SioProbe
from tests.conftest import MODES, LiveServer, stop_server, upstream_env
from tests.engineio_sessions import connect_burst, raw_session, refusal_code, until_closed
from tests.fake_upstream import FakeUpstream, controls
from tests.live.test_hooks import start_hooks_app
from tests.outcomes import run_http, run_socketio
from tests.waits import until

CAP = 4
ROUNDS = 3
ADDRESSES = 3  # a burst's handshakes are spread over this many addresses, each carrying both users


@pytest.fixture(scope="module", params=MODES)
def server(request: pytest.FixtureRequest, fake_upstream: FakeUpstream,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # MAX_STREAMS_PER_CLIENT above the cap, so that HTTP requests in progress meet the connection cap first.
    env = {**upstream_env(fake_upstream), "TRUSTED_PROXIES": "1", "MAX_CONNECTIONS_PER_CLIENT": str(CAP),
           "MAX_STREAMS_PER_CLIENT": str(3 * CAP), "SOCKETIO_CONNECT_TIMEOUT": "2"}
    live = start_hooks_app(request.param, env, tmp_path_factory.mktemp(f"user-conns-{request.param}"))
    yield live
    stop_server(live)
    assert "Traceback" not in live.log()


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


def connect_raw(server: LiveServer, who: str, address: str) -> tuple[websocket.WebSocket, str]:
    """An engine.io websocket from `address` that sends `who`'s Socket.IO connect; it and the server's answer."""
    ws = raw_session(server, address)
    ws.send("40" + json.dumps({"user": who}))
    return ws, ws.recv()


# Socket.IO

def test_two_users_behind_one_address_each_hold_the_cap(server: LiveServer) -> None:
    alice, bob, address = user(), user(), "10.7.0.1"
    held: list[SioProbe] = []
    try:
        held += [SioProbe(server.url, auth={"user": alice}, headers={"X-Forwarded-For": address}) for _ in range(CAP)]
        # One more of alice's, from the same address, is refused with the code, and the server closes it.
        ws, answer = connect_raw(server, alice, address)
        assert refusal_code(answer) == "too_many_connections", answer
        assert f"You have {CAP} connections open" in json.loads(answer[2:])["data"]["message"]
        until_closed(ws)

        # bob, behind the same address, has a cap of his own: CAP connections, which stream.
        held += [SioProbe(server.url, auth={"user": bob}, headers={"X-Forwarded-For": address}) for _ in range(CAP)]
        outcome = run_socketio(held[-1], {"prompt": controls(chunks=2), "stream_id": uuid.uuid4().hex})
        assert outcome.terminal["type"] == "done" and outcome.text == "w0 w1 ", outcome
        ws, answer = connect_raw(server, bob, address)
        assert refusal_code(answer) == "too_many_connections", answer
        until_closed(ws)
        assert until(lambda: server.connections() == 2 * CAP)  # the refused ones are gone, once their sockets end

        # alice's own connections still stream; one of them closed, she may open one more.
        outcome = run_socketio(held[0], {"prompt": controls(chunks=1), "stream_id": uuid.uuid4().hex})
        assert outcome.terminal["type"] == "done" and outcome.text == "w0 ", outcome
        held.pop(0).close()
        assert until(lambda: server.connections() == 2 * CAP - 1)
        held.append(SioProbe(server.url, auth={"user": alice}, headers={"X-Forwarded-For": address}))
    finally:
        for probe in held:
            probe.close()
    assert until(lambda: server.connections() == 0)


def connection_burst(server: LiveServer, users: tuple[str, str], subnet: str) -> dict[str, list[str]]:
    """3 x CAP connects, half of them each user's, over ADDRESSES addresses that carry both users, released together
    from a barrier (tests/engineio_sessions.py). What each user's connects got: "admitted", or the refusal's code.
    Over several addresses, since one address may have only CAP handshakes waiting for their connect, fewer than a
    user's share of the burst."""
    connects = [(f"{subnet}.{i % ADDRESSES}", {"user": users[i % 2]}) for i in range(3 * CAP)]
    answers = connect_burst(server, connects)
    return {who: ["admitted" if answer.startswith("40") else str(refusal_code(answer))
                  for answer, (_, auth) in zip(answers, connects, strict=True) if auth["user"] == who] for who in users}


def test_a_burst_of_two_users_connections_admits_exactly_the_cap_each(server: LiveServer) -> None:
    for round_ in range(ROUNDS):
        users = (user(), user())
        got = connection_burst(server, users, f"10.8.{round_}")
        for who in users:
            assert sorted(got[who]) == ["admitted"] * CAP + ["too_many_connections"] * (len(got[who]) - CAP), got
        assert until(lambda: server.connections() == 0)


# HTTP

def post_stream(server: LiveServer, who: str, address: str, gate: str) -> requests.Response:
    """`who`'s stream request from `address`, its response's head read; a stream is held at the fake's gate."""
    payload = {"prompt": controls(chunks=3, gate=gate, hold_after=1, heartbeat=0.3), "stream_id": uuid.uuid4().hex}
    return requests.post(f"{server.url}/message/stream", json=payload, stream=True, timeout=20,
                         headers={"X-User": who, "X-Forwarded-For": address, "Accept": "application/x-ndjson"})


def code_of(response: requests.Response) -> str:
    """"streaming" for a stream under way, else the refusal's code."""
    return "streaming" if response.status_code == 200 else str(response.json()["error"]["code"])


def test_two_users_behind_one_address_each_have_the_cap_of_http_requests(server: LiveServer, gate: str,
                                                                          fake_upstream: FakeUpstream) -> None:
    alice, bob, address = user(), user(), "10.9.0.1"
    held: list[requests.Response] = []
    try:
        held += [post_stream(server, alice, address, gate) for _ in range(CAP)]
        assert [code_of(response) for response in held] == ["streaming"] * CAP
        refused = post_stream(server, alice, address, gate)
        assert refused.status_code == 429 and code_of(refused) == "too_many_connections"
        assert f"You have {CAP} requests in progress" in refused.json()["error"]["message"]
        # bob, from the same address, is not held back by alice's requests.
        outcome = run_http(server.url, {"prompt": controls(chunks=2), "stream_id": uuid.uuid4().hex},
                           headers={"X-User": bob, "X-Forwarded-For": address})
        assert outcome.status == 200 and outcome.text == "w0 w1 ", outcome
    finally:
        fake_upstream.open_gate(gate)
        for response in held:
            response.close()


def http_burst(server: LiveServer, users: tuple[str, str], address: str, gate: str) -> list[requests.Response]:
    """2 x (CAP + 2) stream requests, half of them each user's, all from `address`, sent at once from threads
    released by a barrier; their responses, each with its head read (the admitted ones held at `gate`)."""
    count = 2 * (CAP + 2)
    barrier = threading.Barrier(count)
    responses: list[requests.Response | BaseException | None] = [None] * count

    def send(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            responses[i] = post_stream(server, users[i % 2], address, gate)
        except Exception as err:  # reported below, with the others' answers
            barrier.abort()  # the others fail at the barrier too, rather than wait out its timeout
            responses[i] = err

    threads = [threading.Thread(target=send, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    done = [response for response in responses if isinstance(response, requests.Response)]
    if len(done) < count:
        for response in done:
            response.close()
        raise AssertionError(responses)
    return done


def test_a_burst_of_two_users_http_requests_admits_exactly_the_cap_each(server: LiveServer,
                                                                         fake_upstream: FakeUpstream) -> None:
    for round_ in range(ROUNDS):
        users, gate = (user(), user()), f"gate-{uuid.uuid4().hex}"
        responses = http_burst(server, users, f"10.10.{round_}.1", gate)
        try:
            got = {who: sorted(code_of(response) for i, response in enumerate(responses) if users[i % 2] == who)
                   for who in users}
            for who in users:
                assert got[who] == ["streaming"] * CAP + ["too_many_connections"] * 2, got
        finally:
            fake_upstream.open_gate(gate)
            for response in responses:
                response.close()
        assert until(lambda: server.streams() == 0)
