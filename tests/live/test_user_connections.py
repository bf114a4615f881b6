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
import websocket

from tests.clients import SioProbe
from tests.conftest import MODES, LiveServer, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.live.test_connection_cap import raw_session, until_closed
from tests.live.test_hooks import start_hooks_app
from tests.outcomes import run_socketio
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


def refusal_code(answer: str) -> str | None:
    """The code of a refused connect (`44{"message": ..., "data": {"code": ...}}`), or None."""
    return json.loads(answer[2:])["data"]["code"] if answer.startswith("44") else None


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
    """3 x CAP engine.io sessions, half of them each user's, spread over ADDRESSES addresses that carry both users;
    each opened in its own thread, then all their Socket.IO connects sent at once, released by a barrier. What each
    user's connects got: "admitted", or the refusal's code.

    Spoken in the wire protocol, as tests/live/test_connection_cap.py's burst is (python-socketio's client can
    stall after a connect_error). Over several addresses, since one address may have only CAP handshakes waiting
    for their connect, fewer than a user's share of the burst.
    """
    count = 3 * CAP
    barrier = threading.Barrier(count)
    sessions: list[websocket.WebSocket] = []
    answers: list[str | BaseException | None] = [None] * count

    def connect(i: int) -> None:
        try:
            ws = raw_session(server, f"{subnet}.{i % ADDRESSES}")
            sessions.append(ws)
            barrier.wait(timeout=30)
            ws.send("40" + json.dumps({"user": users[i % 2]}))
            answers[i] = ws.recv()
        except Exception as err:  # reported below, with the others' answers
            barrier.abort()  # the others fail at the barrier too, rather than wait out its timeout
            answers[i] = err

    threads = [threading.Thread(target=connect, args=(i,)) for i in range(count)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for ws in sessions:
            ws.close()
    assert all(isinstance(answer, str) for answer in answers), answers
    return {who: ["admitted" if answer.startswith("40") else str(refusal_code(answer))  # type: ignore[union-attr]
                  for i, answer in enumerate(answers) if users[i % 2] == who] for who in users}


def test_a_burst_of_two_users_connections_admits_exactly_the_cap_each(server: LiveServer) -> None:
    for round_ in range(ROUNDS):
        users = (user(), user())
        got = connection_burst(server, users, f"10.8.{round_}")
        for who in users:
            assert sorted(got[who]) == ["admitted"] * CAP + ["too_many_connections"] * (len(got[who]) - CAP), got
        assert until(lambda: server.connections() == 0)
