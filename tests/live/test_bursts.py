"""Limits under bursts: requests released together from a barrier, and exactly the allowed number admitted.

Each limit, over both transports and in both async modes (the rate limit in Redis: tests/e2e/test_bursts_redis.py).
Admission must decide and reserve with no switch to another green thread in between (chat_relay/access/admission.py);
a switch there lets a whole burst through. Every burst runs a few rounds, each from fresh client identities, so that
a race cannot pass by luck.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from tests.clients import SioProbe, ndjson_events
from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import TRANSPORTS
from tests.waits import until

BURST = 12
ROUNDS = 4
PER_CLIENT, TOTAL, RATE = 4, 7, 5
# One identity per client per round: a round's streams and rate-limit hits never count against the next.
TOKENS = [f"tok-burst-{i:03d}-9d2e" for i in range(2 * len(TRANSPORTS) * ROUNDS * (BURST + 2))]


@pytest.fixture(scope="module", params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def limited_server(mode: str, fake: FakeUpstream, tmp_path_factory, name: str, limits: dict[str, str]) -> LiveServer:
    env = {**upstream_env(fake), "AUTH_TOKENS": ",".join(TOKENS), **limits}
    return start_server(mode, env, tmp_path_factory.mktemp(f"{name}-{mode}") / "server.log")


@pytest.fixture(scope="module")
def capped(mode: str, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    """Concurrency caps that bind, with a roomy rate limit that is on: its bookkeeping runs on every admission."""
    server = limited_server(mode, fake_upstream, tmp_path_factory, "capped", {
        "MAX_STREAMS_PER_CLIENT": str(PER_CLIENT), "MAX_STREAMS_TOTAL": str(TOTAL), "RATE_LIMIT": "100000/minute"})
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def rated(mode: str, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    """A rate limit that binds, with caps that do not."""
    server = limited_server(mode, fake_upstream, tmp_path_factory, "rated", {
        "MAX_STREAMS_PER_CLIENT": "100", "MAX_STREAMS_TOTAL": "100", "RATE_LIMIT": f"{RATE}/minute"})
    yield server
    stop_server(server)


class Tokens:
    """Hands out each token once across the module's tests, so no two rounds share an identity."""

    def __init__(self) -> None:
        self._next = 0

    def take(self, count: int) -> list[str]:
        taken = TOKENS[self._next:self._next + count]
        assert len(taken) == count, "TOKENS is too short for the rounds"
        self._next += count
        return taken


@pytest.fixture(scope="module")
def tokens(mode: str) -> Tokens:
    return Tokens()


def burst(calls: list[Callable[[], bool]]) -> int:
    """Run every call in its own thread, all released at once by a barrier; how many were admitted."""
    barrier = threading.Barrier(len(calls))
    results: list[bool | BaseException] = [False] * len(calls)

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # reported below, in the test's thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    return sum(1 for r in results if r is True)


def held(gate: str) -> str:
    """A prompt whose stream stays running until its gate opens, so the admitted streams overlap."""
    return controls(chunks=2, gate=gate, hold_after=1, heartbeat=0.3)


def socketio_round(servers: list[LiveServer], fake: FakeUpstream, clients: list[str], gate: str) -> int:
    """One Socket.IO connection per request (already connected, to the servers in turn), the requests sent
    together."""
    probes = [SioProbe(servers[i % len(servers)].url, auth={"token": token}) for i, token in enumerate(clients)]
    try:
        acks: list[dict] = [{}] * len(probes)

        def call(i: int) -> Callable[[], bool]:
            def send() -> bool:
                acks[i] = probes[i].start({"prompt": held(gate), "stream_id": "burst"})
                return "stream_id" in acks[i]
            return send

        admitted = burst([call(i) for i in range(len(probes))])
        for ack in acks:
            assert "stream_id" in ack or ack["error"]["code"] in ("too_many_streams", "rate_limited"), ack
        fake.open_gate(gate)
        for probe, ack in zip(probes, acks, strict=True):
            if "stream_id" in ack:
                assert probe.wait_terminal("burst")[1]["finish_reason"] == "stop"
    finally:
        fake.open_gate(gate)
        for probe in probes:
            probe.close()
    return admitted


def http_round(servers: list[LiveServer], fake: FakeUpstream, clients: list[str], gate: str) -> int:
    """One POST per request (to the servers in turn), sent together; an admitted one is read to its end once the
    gate opens."""
    responses: list[requests.Response | None] = [None] * len(clients)

    def call(i: int) -> Callable[[], bool]:
        def send() -> bool:
            response = requests.post(
                f"{servers[i % len(servers)].url}/message/stream", json={"prompt": held(gate)}, stream=True, timeout=20,
                headers={"Accept": "application/x-ndjson", "Authorization": f"Bearer {clients[i]}"})
            responses[i] = response
            if response.status_code == 200:
                return True
            assert response.status_code == 429, response.text
            assert response.json()["error"]["code"] in ("too_many_streams", "rate_limited")
            return False
        return send

    try:
        admitted = burst([call(i) for i in range(len(clients))])
        fake.open_gate(gate)
        for response in responses:
            if response is not None and response.status_code == 200:
                assert list(ndjson_events(response))[-1]["type"] == "done"
    finally:
        fake.open_gate(gate)
        for response in responses:
            if response is not None:
                response.close()
    return admitted


ROUND = {"socketio": socketio_round, "http": http_round}


def rounds(server: LiveServer | list[LiveServer], fake: FakeUpstream, transport: str,
           clients_per_round: Callable[[], list[str]], gate_factory: Callable[[], str]) -> list[int]:
    """The admitted count of each round; the servers are idle again between rounds."""
    servers = server if isinstance(server, list) else [server]
    counts = []
    for _ in range(ROUNDS):
        counts.append(ROUND[transport](servers, fake, clients_per_round(), gate_factory()))
        for each in servers:
            assert until(lambda s=each: s.streams() == 0)
    return counts


@pytest.fixture
def gates() -> Callable[[], str]:
    return lambda: f"gate-{uuid.uuid4().hex}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_per_client_cap_holds_under_a_burst(capped: LiveServer, fake_upstream, tokens: Tokens, gates,
                                            transport: str) -> None:
    counts = rounds(capped, fake_upstream, transport, lambda: tokens.take(1) * BURST, gates)
    assert counts == [PER_CLIENT] * ROUNDS


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_wide_cap_holds_under_a_burst(capped: LiveServer, fake_upstream, tokens: Tokens, gates,
                                             transport: str) -> None:
    counts = rounds(capped, fake_upstream, transport, lambda: tokens.take(BURST), gates)
    assert counts == [TOTAL] * ROUNDS


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rate_limit_holds_under_a_burst(rated: LiveServer, fake_upstream, tokens: Tokens, gates,
                                        transport: str) -> None:
    counts = rounds(rated, fake_upstream, transport, lambda: tokens.take(1) * BURST, gates)
    assert counts == [RATE] * ROUNDS
