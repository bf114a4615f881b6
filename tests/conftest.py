"""Fixtures: the fake upstream, the real server started as a user starts it (per async mode), and clients."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.clients import SioProbe
from tests.fake_upstream import FakeUpstream
from tests.redis_server import RedisServer, require_redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# A distinctive key, so a test can prove it never shows up in a response, an event or a log line.
API_KEY = "sk-test-DO-NOT-LEAK-7f3a9c"
MODES = ["gevent", "eventlet"]
pytest_plugins = ["tests.tiers", "tests.scheduling"]  # each test's tier from its folder; a parallel run's units


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=API_KEY) as fake:
        yield fake


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports_in_a_row(count: int) -> int:
    """A base port with `count` free ports from it, below the kernel's ephemeral range.

    Why below: a run of ports inside the ephemeral range (where `free_port` draws) is soon crossed by some
    client's outgoing connection, as `make instances` found in CI ("port ... is taken").
    """
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        base = rng.randrange(20000, 32000 - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {count} free ports in a row below 32000")


def server_command(mode: str) -> list[str]:
    """How a user starts each mode: gunicorn with gunicorn.conf.py, or eventlet's own server."""
    if mode == "gevent":
        return [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"]
    return [sys.executable, "-m", "app"]


@dataclass
class LiveServer:
    mode: str
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 10) -> None:
        """Wait for `text` in the log: access lines are written after the response has gone out."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert time.monotonic() < deadline, f"{text!r} never logged:\n{self.log()[-2000:]}"
            time.sleep(0.02)  # polling a file for a condition; there is no event to wait on

    def streams(self) -> int:
        return requests.get(f"{self.url}/healthz", timeout=5).json()["streams"]

    def connections(self) -> int:
        """Socket.IO (engine.io) connections open, connected or not yet."""
        return requests.get(f"{self.url}/healthz", timeout=5).json()["connections"]


def start_server(mode: str, env: dict[str, str], log_path: Path, port: int | None = None) -> LiveServer:
    """Start the relay in one async mode, as a user does, on a free loopback port (or `port`)."""
    port = port or free_port()
    env = {"HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": mode, **env}
    return launch(mode, server_command(mode), port, env, log_path)


def launch(name: str, command: list[str], port: int, env: dict[str, str], log_path: Path,
           timeout: float = 30, new_session: bool = False) -> LiveServer:
    """Run a server and wait until /healthz answers (or the process dies, which fails at once).

    `new_session`: its own process group, which a test can signal whole, as a terminal's Ctrl-C does.
    """
    log = log_path.open("w")
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=new_session)
    server = LiveServer(name, f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} server exited with {process.returncode}:\n{server.log()}")
            try:
                requests.get(f"{server.url}/healthz", timeout=1).raise_for_status()
                return server
            except requests.RequestException:  # refused, or too slow to answer on a loaded machine
                time.sleep(0.05)  # polling a readiness condition; there is no event to wait on
        raise RuntimeError(f"{name} server did not come up:\n{server.log()}")
    except BaseException:  # never leave a server running behind a failed start
        stop_server(server)
        raise


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def upstream_env(fake: FakeUpstream) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": fake.url,
        "OPENAI_MODEL": "fake-model",
        "ALLOWED_MODELS": "fake-model,fake-model-2,not-on-upstream",
        "UPSTREAM_MAX_RETRIES": "1",
        "UPSTREAM_READ_TIMEOUT": "1.5",
        "UPSTREAM_CONNECT_TIMEOUT": "2",
        # Limits roomy enough for the suite; tests/live/test_limits.py starts servers with tight ones.
        "RATE_LIMIT": "100000/minute",
        "AUTH_FAILURE_LIMIT": "100000/minute",  # tests of wrong tokens all come from 127.0.0.1; test_brute_force.py
        "MAX_STREAMS_PER_CLIENT": "1000",  # bench/ runs 200 streams from one address
        "MAX_CONNECTIONS_PER_CLIENT": "1000",  # and as many Socket.IO connections
        # A disconnect cancels at once, as the tests of stop and disconnect expect; tests/live/test_resume.py starts
        # servers with the default grace period.
        "RESUME_GRACE": "0",
    }


class ServerPerMode:
    """The real server of each async mode, started when a test first asks for it, kept to the session's end."""

    def __init__(self, fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.fake, self.tmp_path_factory = fake, tmp_path_factory
        self.servers: dict[str, LiveServer] = {}

    def get(self, mode: str) -> LiveServer:
        if mode not in self.servers:
            log_path = self.tmp_path_factory.mktemp(f"server-{mode}") / "server.log"
            self.servers[mode] = start_server(mode, upstream_env(self.fake), log_path)
        return self.servers[mode]


@pytest.fixture(scope="session")
def live_servers(fake_upstream: FakeUpstream, tmp_path_factory) -> Iterator[ServerPerMode]:
    """Both modes' servers side by side for the session. (A session fixture parametrized by mode holds one server at
    a time, so it stopped and started again at each switch of mode: dozens of times in a parallel run, whose
    processes take the tests in no order of mode.)"""
    servers = ServerPerMode(fake_upstream, tmp_path_factory)
    yield servers
    for server in servers.servers.values():
        stop_server(server)
    for server in servers.servers.values():
        assert API_KEY not in server.log(), "the API key leaked into the server log"


@pytest.fixture(params=MODES)
def live_server(request: pytest.FixtureRequest, live_servers: ServerPerMode) -> LiveServer:
    """The real server in each async mode, pointed at the fake upstream, started once per session."""
    return live_servers.get(request.param)


@pytest.fixture
def sio_client(live_server: LiveServer) -> Iterator[SioProbe]:
    probe = SioProbe(live_server.url)
    yield probe
    probe.close()


@pytest.fixture
def sio_factory(live_server: LiveServer) -> Iterator:
    """More clients on the same server, closed at the end."""
    probes: list[SioProbe] = []

    def make() -> SioProbe:
        probes.append(SioProbe(live_server.url))
        return probes[-1]

    yield make
    for probe in probes:
        probe.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    """One real redis-server for the session (tests that stop it use their own)."""
    require_redis()
    server = RedisServer(free_port(), tmp_path_factory.mktemp("redis") / "redis.log").start()
    yield server
    server.stop()


@pytest.fixture
def gate() -> str:
    """A fresh gate name for the fake upstream: gates stay open once opened."""
    return f"gate-{uuid.uuid4().hex}"
