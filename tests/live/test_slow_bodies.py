"""Slow bodies and the HTTP connection cap, against the real server in both modes, over raw sockets: a body that
drips is cut at REQUEST_BODY_TIMEOUT with a 408 while others are served, and one address holds at most
MAX_CONNECTIONS_PER_CLIENT HTTP requests in progress, the rest refused at once with 429 too_many_connections."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import MODES, LiveServer, start_server, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import run_http

CAP = 5
DEADLINE = 2


@pytest.fixture(scope="module", params=MODES)
def server(request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[LiveServer]:
    env = {**upstream_env(fake_upstream), "REQUEST_BODY_TIMEOUT": str(DEADLINE), "TRUSTED_PROXIES": "1",
           "MAX_CONNECTIONS_PER_CLIENT": str(CAP)}
    live = start_server(request.param, env, tmp_path_factory.mktemp(f"bodies-{request.param}") / "server.log")
    yield live
    stop_server(live)


def body_of(prompt: str) -> bytes:
    return json.dumps({"prompt": prompt}).encode()


def open_request(server: LiveServer, body: bytes, address: str) -> socket.socket:
    """A POST /message/stream whose headers announce `body` and which has sent none of it yet."""
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"POST /message/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                 f"Accept: application/x-ndjson\r\nX-Forwarded-For: {address}\r\nConnection: close\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode())
    return sock


def read_response(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout` passes)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def status_and_error(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"] if status != 200 else {}


def test_a_dripping_body_is_cut_at_the_deadline_while_others_are_served(server: LiveServer) -> None:
    body = body_of("drip")
    sock = open_request(server, body, "198.51.100.50")
    stop = threading.Event()

    def drip() -> None:  # one byte every half second: the whole body would take many times the deadline
        for byte in body[:-1]:
            if stop.wait(0.5):
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        other = run_http(server.url, {"prompt": controls(chunks=3)})  # while the drip holds its connection
        assert other.status == 200 and other.text == "w0 w1 w2 "
        started = time.monotonic()
        response = read_response(sock, timeout=len(body) * 0.5)
        waited = time.monotonic() - started
    finally:
        stop.set()
        dripper.join()
        sock.close()
    assert response, "the server neither answered nor closed the connection"
    status, error = status_and_error(response)
    assert status == 408 and error["code"] == "invalid_request" and f"{DEADLINE} seconds" in error["message"]
    assert waited < len(body) * 0.5 / 2, "held for about as long as the client dripped"


def test_one_address_holds_at_most_the_cap_of_http_requests(server: LiveServer) -> None:
    address = f"203.0.113.{60 + MODES.index(server.mode)}"
    body = body_of(controls(chunks=1))
    burst = 3 * CAP
    sockets: list[socket.socket] = [None] * burst  # type: ignore[list-item]
    barrier = threading.Barrier(burst)

    def connect(index: int) -> None:
        barrier.wait(30)
        sockets[index] = open_request(server, body, address)
        sockets[index].sendall(body[:-1])  # all but the last byte: held in the body read

    threads = [threading.Thread(target=connect, args=(i,)) for i in range(burst)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        answers: list[bytes | None] = [None] * burst
        refused = threading.Semaphore(0)

        def read(index: int) -> None:
            answers[index] = read_response(sockets[index], timeout=30)
            refused.release()

        readers = [threading.Thread(target=read, args=(i,)) for i in range(burst)]
        for reader in readers:
            reader.start()
        for _ in range(burst - CAP):  # the refusals come at once, before any body is complete
            assert refused.acquire(timeout=10), f"fewer than {burst - CAP} answers: {answers}"
        other = run_http(server.url, {"prompt": controls(chunks=1)}, headers={"X-Forwarded-For": "203.0.113.99"})
        assert other.status == 200, "another address is served meanwhile"
        for sock, answer in zip(sockets, answers, strict=True):
            if answer is None:
                sock.sendall(body[-1:])  # the held ones complete their bodies and are streamed
        for reader in readers:
            reader.join(30)
    finally:
        for sock in sockets:
            sock.close()
    outcomes = [status_and_error(answer) for answer in answers if answer]
    refusals = [error for status, error in outcomes if status == 429]
    assert len(refusals) == burst - CAP and len(outcomes) == burst, outcomes
    assert all(error["code"] == "too_many_connections" for error in refusals)
    # The held ones streamed once their bodies were complete (or, on a machine too loaded to complete them within
    # REQUEST_BODY_TIMEOUT, got its 408): held, either way, not refused.
    assert all(status in (200, 408) for status, _ in outcomes if status != 429), outcomes


def test_an_idle_keep_alive_connection_is_closed(server: LiveServer) -> None:
    """Between requests a keep-alive connection is held by nobody's request, so no cap counts it: the server's
    keep-alive timeout (5 s, both modes) is what bounds it."""
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: keep-alive\r\n\r\n".encode())
        sock.settimeout(15)
        received = b""
        while b'"status"' not in received:
            received += sock.recv(65536)
        assert received.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        try:  # then nothing more from the client: the server must end the connection
            while sock.recv(65536):
                pass
            closed = True
        except TimeoutError:
            closed = False
        assert closed, f"an idle keep-alive connection was still open after {time.monotonic() - started:.0f} s"
