"""Back-pressure for slow readers (docs/security.md, "Slow readers"), against the real server in both modes.

A client that starts a long reply and reads nothing: the relay stops reading the upstream once it holds
MAX_BUFFERED_BYTES for it (the fake's writes block: what it has written stays far below the reply), its memory does
not grow by the reply, and when the client reads again the reply arrives whole, in order, with one terminal event.
A reader stuck past STALLED_READER_TIMEOUT ends its stream as `stalled_reader`. Unread streams keep counting
against MAX_STREAMS_PER_CLIENT. Each client here controls its reading itself: a raw websocket or a raw HTTP
request on a socket with a tiny receive buffer, read only when the test says so.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import websocket
from prometheus_client.parser import text_string_to_metric_families

from tests.clients import SioProbe
from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.tcp_queues import in_flight

BOUND = 256 * 1024  # MAX_BUFFERED_BYTES of the servers here
TOKENS = ("token-slow", "token-other", "token-limits-socketio", "token-limits-http", "token-gone")  # a client each
PAD = 16_000  # bytes of one piece: large pieces keep the fake's SSE framing small beside the text
# The reply, 32 MB, is far larger than the bound and than every kernel buffer between the fake, the relay and
# the client (loopback's autotuned buffers reach a few MB): pausing or not cannot be mistaken.
PIECES = 2_000
SNDBUF = 64 * 1024  # the fake's send buffer for these replies


def reply(pieces: int = PIECES) -> str:
    return "".join(f"w{i}{'.' * PAD} " for i in range(pieces))


def long_prompt(tag: str, pieces: int = PIECES) -> str:
    return controls(chunks=pieces, pad=PAD, tag=tag, sndbuf=SNDBUF)


def paced_env(fake: FakeUpstream, stall_after: float) -> dict[str, str]:
    return {**upstream_env(fake), "MAX_BUFFERED_BYTES": str(BOUND), "STALLED_READER_TIMEOUT": str(stall_after),
            "AUTH_TOKENS": ",".join(TOKENS), "MAX_STREAMS_PER_CLIENT": "4"}


@pytest.fixture(scope="module", params=MODES)
def paced(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    """A server with a small MAX_BUFFERED_BYTES, whose readers may pause for long."""
    # A stream whose client has gone waits a minute for a resume; the streams left so at the end are cut at once.
    env = {**paced_env(fake_upstream, 300), "RESUME_GRACE": "60", "SHUTDOWN_GRACE": "1"}
    server = start_server(request.param, env, tmp_path_factory.mktemp(f"paced-{request.param}") / "server.log")
    warm_up(server)
    yield server
    stop_server(server)


@pytest.fixture(params=MODES)
def stalling(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose readers may take nothing for 2 s at most."""
    server = start_server(request.param, paced_env(fake_upstream, 2), tmp_path / "server.log")
    yield server
    stop_server(server)


def warm_up(server: LiveServer) -> None:
    """A stream over each transport, so that what a first stream allocates once is not taken for a reply's growth."""
    probe = SioProbe(server.url, auth={"token": TOKENS[1]})
    try:
        ack = probe.start({"prompt": controls(chunks=20, pad=PAD), "stream_id": "warm"})
        assert "error" not in ack
        probe.wait_terminal("warm")
    finally:
        probe.close()
    answer = requests.post(f"{server.url}/message/stream", json={"prompt": controls(chunks=20, pad=PAD)},
                           headers={"Authorization": f"Bearer {TOKENS[1]}"}, timeout=30)
    assert answer.status_code == 200


# Clients that read only when told.


class RawSocketIO:
    """A Socket.IO client on a websocket whose receive buffer is 4 KB, reading nothing unless asked."""

    def __init__(self, server: LiveServer, token: str) -> None:
        url = server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(url, timeout=60, sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
        assert self.ws.recv().startswith("0{")  # engine.io open
        self.ws.send("40" + json.dumps({"token": token}))  # Socket.IO connect, with the token
        assert self.ws.recv().startswith("40"), "connect refused"

    def start(self, prompt: str, stream_id: str) -> dict:
        """Ask for a stream, and read its ack (which comes before any chunk), then nothing more."""
        self.ws.send("420" + json.dumps(["chatgpt_description", {"prompt": prompt, "stream_id": stream_id}]))
        while True:
            message = self._next()
            if message.startswith("430"):
                return json.loads(message[3:])[0]

    def read_to_end(self) -> tuple[list[tuple[int, str]], list[tuple[str, dict]]]:
        """Read until a terminal event: the chunks (seq, text) and the terminal events (name, payload)."""
        chunks: list[tuple[int, str]] = []
        terminals: list[tuple[str, dict]] = []
        while not terminals:
            message = self._next()
            if not message.startswith("42"):
                continue
            name, *args = json.loads(message[2:])
            if name == "chatgpt_description_chunk":
                chunks.append((args[1]["seq"], args[0]))
            else:
                terminals.append((name, args[0]))
        return chunks, terminals

    def settle(self) -> list[tuple[str, dict]]:
        """After a terminal: a round trip through the server, collecting any further terminal event meanwhile."""
        self.ws.send("421" + json.dumps(["chatgpt_description_stop", {"stream_id": "barrier"}]))
        extra = []
        while not (message := self._next()).startswith("431"):
            if message.startswith("42"):
                extra.append(tuple(json.loads(message[2:])[:2]))
        return extra

    def handed_to_kernel(self) -> int:
        """Bytes the server has written to this connection that this client has not read (the kernel has them)."""
        client_port, server_port = self.ws.sock.getsockname()[1], self.ws.sock.getpeername()[1]
        return in_flight(server_port, client_port)

    def _next(self) -> str:
        message = self.ws.recv()
        while message == "2":  # engine.io ping
            self.ws.send("3")
            message = self.ws.recv()
        return message

    def close(self) -> None:
        self.ws.close()


class RawHttp:
    """`POST /message/stream` (NDJSON) on a socket whose receive buffer is 4 KB; reads the status and headers,
    then nothing unless asked."""

    def __init__(self, server: LiveServer, token: str, prompt: str) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(60)
        self.sock.connect((host, int(port)))
        body = json.dumps({"prompt": prompt}).encode()
        self.sock.sendall(
            f"POST /message/stream HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nAccept: application/x-ndjson\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode() + body)
        self.response = http.client.HTTPResponse(self.sock, method="POST")
        self.response.begin()
        self.status = self.response.status

    def handed_to_kernel(self) -> int:
        client_port, server_port = self.sock.getsockname()[1], self.sock.getpeername()[1]
        return in_flight(server_port, client_port)

    def read_to_end(self) -> tuple[list[tuple[int, str]], list[tuple[str, dict]]]:
        chunks: list[tuple[int, str]] = []
        terminals: list[tuple[str, dict]] = []
        for line in self.response.read().decode().splitlines():
            event = json.loads(line)
            if event["type"] == "chunk":
                chunks.append((event["seq"], event["text"]))
            else:
                terminals.append((event["type"], event))
        return chunks, terminals

    def close(self) -> None:
        self.response.close()
        self.sock.close()


# What the test watches.


def settled_pull(fake: FakeUpstream, tag: str, timeout: float = 60) -> int:
    """Bytes the fake has written for `tag`, once they stop growing: the relay has paused its upstream read (or
    read the reply to its end). Stopped means no growth for a full second, which no running pull would show."""
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = fake.written_for(tag)
        if now != last:
            last, since = now, time.monotonic()
        elif now > 0 and time.monotonic() - since >= 1.0:
            return now
        time.sleep(0.05)  # sampling a counter for stillness: there is no event for "nothing happened"
    raise AssertionError(f"the fake's writes for {tag} never stopped: {fake.written_for(tag)} bytes")


def metric(server: LiveServer, name: str, **labels: str) -> float:
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def rss(server: LiveServer) -> float:
    return metric(server, "process_resident_memory_bytes")


def check_whole(chunks: list[tuple[int, str]], terminals: list[tuple[str, dict]], text: str, pieces: int) -> None:
    """The reply as a user checks it: all of it, in order, once, then exactly one `done`."""
    assert "".join(part for _, part in chunks) == text
    seqs = [seq for seq, _ in chunks]
    assert seqs == sorted(set(seqs)) and seqs[-1] == pieces - 1
    assert [(name.removeprefix("chatgpt_description_"), payload["finish_reason"])
            for name, payload in terminals] == [("done", "stop")]


def open_reader(transport: str, server: LiveServer, token: str, prompt: str, stream_id: str) -> RawSocketIO | RawHttp:
    if transport == "socketio":
        client = RawSocketIO(server, token)
        assert "error" not in client.start(prompt, stream_id)
        return client
    http_client = RawHttp(server, token, prompt)
    assert http_client.status == 200
    return http_client


def admitted_soon(probe: SioProbe, timeout: float = 30) -> None:
    """A new stream of this client's is let in within `timeout`: its last slot is given back after its reader's
    last bytes are out, which the reader may see a moment before the server has counted it."""
    deadline = time.monotonic() + timeout
    for attempt in range(10_000):
        ack = probe.start({"prompt": controls(chunks=3), "stream_id": f"again-{attempt}"})
        if "error" not in ack:
            probe.wait_terminal(ack["stream_id"])
            return
        assert ack["error"]["code"] == "too_many_streams" and time.monotonic() < deadline, ack
        time.sleep(0.05)  # retrying a refused request, as a client would


TRANSPORTS = ["socketio", "http"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_reader_that_reads_nothing_pauses_the_upstream(
    paced: LiveServer, fake_upstream: FakeUpstream, transport: str
) -> None:
    tag = f"paused-{paced.mode}-{transport}"
    text = reply()
    before = rss(paced)
    reader = open_reader(transport, paced, TOKENS[0], long_prompt(tag), "long")
    try:
        settled_pull(fake_upstream, tag)
        # What the relay has read from the upstream's socket, and, of that, what it still holds itself: not yet
        # in its socket to the client (the kernel's buffers on both sides are left out; loopback's are large).
        pulled = fake_upstream.pulled_for(tag)
        held = pulled - reader.handed_to_kernel()
        assert pulled < len(text) / 4, f"the relay pulled {pulled} bytes for a reader that read none"
        # The bound in its log, at most as much in the chunk its transport is writing, the SSE framing of that.
        assert held < 3 * BOUND, f"the relay holds {held} bytes for a reader that read none"
        grown = rss(paced) - before
        assert grown < len(text) / 4, f"the server grew by {grown / 1e6:.1f} MB for an unread reply"
        assert fake_upstream.in_flight_with(tag) == 1  # paused, not ended

        # Meanwhile another client's stream is served as usual.
        other = SioProbe(paced.url, auth={"token": TOKENS[1]})
        try:
            ack = other.start({"prompt": controls(chunks=50), "stream_id": "meanwhile"})
            assert "error" not in ack
            name, done = other.wait_terminal("meanwhile", timeout=30)
            assert "".join(part for _, part in other.chunks("meanwhile")) == "".join(f"w{i} " for i in range(50))
            assert name.endswith("_done") and done["finish_reason"] == "stop"
        finally:
            other.close()

        chunks, terminals = reader.read_to_end()
        check_whole(chunks, terminals, text, PIECES)
        if isinstance(reader, RawSocketIO):
            assert reader.settle() == []  # no second terminal event
    finally:
        reader.close()
    assert fake_upstream.written_for(tag) > len(text)  # and the upstream was read to its end


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stalled_reader_ends_its_stream(stalling: LiveServer, fake_upstream: FakeUpstream, transport: str) -> None:
    tag = f"stalled-{stalling.mode}-{transport}-{time.monotonic_ns()}"
    reader = open_reader(transport, stalling, TOKENS[0], long_prompt(tag), "stuck")
    try:
        stalling.wait_log("cause=stalled_reader", timeout=60)
        # The upstream request is closed, not left paused.
        assert fake_upstream.wait_for(lambda f: f.in_flight_with(tag) == 0, timeout=20)
        assert metric(stalling, "relay_streams_ended_total", transport=transport, cause="stalled_reader") == 1

        # The reader comes back: what was held for it, in order, then one terminal event, the error.
        chunks, terminals = reader.read_to_end()
        text = "".join(part for _, part in chunks)
        assert text and reply().startswith(text)
        assert [seq for seq, _ in chunks] == sorted({seq for seq, _ in chunks})
        assert [(name.removeprefix("chatgpt_description_"), payload["code"]) for name, payload in terminals] == [
            ("error", "stalled_reader")]
        assert terminals[0][1]["stream_id"] == "stuck" or transport == "http"
        if isinstance(reader, RawSocketIO):
            assert reader.settle() == []
    finally:
        reader.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unread_streams_count_against_the_limit(paced: LiveServer, fake_upstream: FakeUpstream, transport: str) -> None:
    """MAX_STREAMS_PER_CLIENT=4: four streams that nobody reads hold all four slots, however long they wait."""
    tag = f"limits-{paced.mode}-{transport}-{time.monotonic_ns()}"
    token = TOKENS[2] if transport == "socketio" else TOKENS[3]
    pieces = 500  # 8 MB each: still far beyond the bound and the buffers
    readers: list[RawSocketIO | RawHttp] = []
    try:
        for n in range(4):
            readers.append(open_reader(transport, paced, token, long_prompt(f"{tag}-{n}", pieces), f"s{n}"))
        for n in range(4):  # each has pulled all it will while unread (without back-pressure: all of it)
            settled_pull(fake_upstream, f"{tag}-{n}")
        if transport == "socketio":
            fifth = RawSocketIO(paced, token)
            try:
                ack = fifth.start(long_prompt(f"{tag}-4", pieces), "s4")
            finally:
                fifth.close()
            assert ack["error"]["code"] == "too_many_streams"
        else:
            refused = requests.post(f"{paced.url}/message/stream", json={"prompt": long_prompt(f"{tag}-4", pieces)},
                                    headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_streams"

        # Once one reader has had its reply, its slot is free again.
        chunks, terminals = readers[0].read_to_end()
        check_whole(chunks, terminals, reply(pieces), pieces)
        probe = SioProbe(paced.url, auth={"token": token})
        try:
            admitted_soon(probe)
        finally:
            probe.close()
    finally:
        for reader in readers:
            reader.close()


def test_a_stream_whose_client_left_is_bounded_until_resumed(paced: LiveServer, fake_upstream: FakeUpstream) -> None:
    """Within RESUME_GRACE a stream runs on without a reader, up to MAX_BUFFERED_BYTES past what its reader took;
    a resume then gets the whole reply, exactly."""
    tag = f"detached-{paced.mode}-{time.monotonic_ns()}"
    text = reply()
    gone = RawSocketIO(paced, TOKENS[4])
    ack = gone.start(long_prompt(tag), "left")
    gone.close()
    settled_pull(fake_upstream, tag)
    pulled = fake_upstream.pulled_for(tag)
    assert pulled < len(text) / 4, f"the relay pulled {pulled} bytes for a stream nobody reads"
    assert fake_upstream.in_flight_with(tag) == 1  # waiting for a resume, not ended

    probe = SioProbe(paced.url, auth={"token": TOKENS[4]})
    try:
        assert probe.resume("left", -1, ack["resume_token"]) == {"stream_id": "left"}
        name, done = probe.wait_terminal("left", timeout=120)
        chunks = probe.chunks("left")
        check_whole(chunks, [(name, done)], text, PIECES)
        probe.settle()
        assert len(probe.terminals("left")) == 1
    finally:
        probe.close()
