"""Several relay instances on one Redis behind Debian's real nginx, running deploy/nginx.conf, for the scale-out
tests. All on 127.0.0.1 ports; the config is the production file with only its ports and paths replaced."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.conftest import MODES, ROOT, LiveServer, free_port, free_ports_in_a_row, start_server, stop_server
from tests.redis_server import RedisServer

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SITE = ROOT / "deploy" / "nginx.conf"


def require_nginx() -> None:
    if not Path(NGINX).exists():
        if os.environ.get("CI"):
            pytest.fail("nginx is missing: .ci/run installs it (apt-get install -y nginx)")
        pytest.skip("nginx is missing (apt-get install -y nginx)")


def site_for(ports: list[int], listen: int) -> str:
    """deploy/nginx.conf with these instance ports, this listen port and this checkout's page."""
    site = SITE.read_text()
    servers = "".join(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;\n" for port in ports)
    site, count = re.subn(r"(    server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, site)
    assert count == 2, "deploy/nginx.conf should have two upstream blocks of instances"
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    site = site.replace("root /srv/chat-relay/frontend/dist;", f"root {ROOT / 'frontend' / 'dist'};")
    return site


class Nginx:
    def __init__(self, site: str, listen: int, workdir: Path, worker_connections: int = 1024) -> None:
        self.listen, self.workdir = listen, workdir
        self.url = f"http://127.0.0.1:{listen}"
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o777)  # nginx's workers may run as nobody: their temp files live here
        (workdir / "nginx.conf").write_text(
            f"pid {workdir}/nginx.pid;\nerror_log {workdir}/error.log info;\nworker_processes 1;\n"
            f"events {{ worker_connections {worker_connections}; }}\n"
            f"http {{\n include /etc/nginx/mime.types;\n access_log {workdir}/access.log;\n"
            + "".join(f" {kind}_temp_path {workdir}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi",
                                                                          "uwsgi", "scgi"))
            + site + "\n}\n")
        self.process: subprocess.Popen | None = None

    def test_config(self) -> subprocess.CompletedProcess:
        return subprocess.run([NGINX, "-t", "-p", str(self.workdir), "-c", str(self.workdir / "nginx.conf")],
                              capture_output=True, text=True, timeout=30)

    def start(self) -> Nginx:
        self.process = subprocess.Popen([NGINX, "-p", str(self.workdir), "-c", str(self.workdir / "nginx.conf"),
                                         "-g", "daemon off;"], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.process.stderr.read()}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", self.listen), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.02)  # polling a process that offers no readiness signal
        raise RuntimeError("nginx did not start listening")

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)  # fast shutdown: open connections are cut
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def error_log(self) -> str:
        path = self.workdir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Cluster:
    redis: RedisServer
    env: dict[str, str]
    workdir: Path
    instances: list[LiveServer] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    nginx: Nginx | None = None
    load_test: bool = False  # the benchmark's: one address opens every stream, so nginx's per-address limits go


    @property
    def url(self) -> str:
        assert self.nginx is not None
        return self.nginx.url

    def start(self, count: int) -> Cluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # One run of distinct ports, nginx's last: `free_port` twice can give one port twice (a CI run started both
        # instances on one port), and a killed instance is revived on its own port, outside the ephemeral range.
        base = free_ports_in_a_row(count + 1)
        self.ports = list(range(base, base + count))
        for index in range(count):
            self.instances.append(self._start_instance(index))
        listen = base + count
        site = site_for(self.ports, listen)
        if self.load_test:
            site = re.sub(r"limit_conn relay_conn \d+;", "limit_conn relay_conn 60000;", site)
            site = re.sub(r"limit_req zone=relay_streams [^;]*;", "", site)
        self.nginx = Nginx(site, listen, self.workdir / "nginx", worker_connections=8192 if self.load_test else 1024)
        self.nginx.start()
        return self

    def _start_instance(self, index: int) -> LiveServer:
        env = {**self.env, "PORT": str(self.ports[index]), "REDIS_URL": self.redis.url, "TRUSTED_PROXIES": "1"}
        return start_server("gevent", env, self.workdir / f"instance-{index}.log", port=self.ports[index])

    def producing(self) -> LiveServer:
        """The one instance running a stream now (its /healthz counts it)."""
        busy = [server for server in self.instances if server.process.poll() is None and server.streams()]
        assert len(busy) == 1, [server.url for server in busy]
        return busy[0]

    def kill(self, server: LiveServer) -> None:
        """kill -9 of the instance, gunicorn's worker with its master: no drain, no terminal event, no goodbye."""
        pids = [server.process.pid]
        for pid in pids:  # the tree below the master, breadth first, each frozen first: the master cannot
            with contextlib.suppress(ProcessLookupError):  # see a worker die and fork a new one meanwhile
                os.kill(pid, signal.SIGSTOP)
            for task in Path(f"/proc/{pid}/task").glob("*"):
                with contextlib.suppress(FileNotFoundError):
                    pids += [int(child) for child in (task / "children").read_text().split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.process.wait(10)

    def revive(self, server: LiveServer) -> None:
        index = self.instances.index(server)
        self.instances[index] = self._start_instance(index)

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        for server in self.instances:
            if server.process.poll() is None:
                stop_server(server)

    def healthy(self) -> bool:
        return all(requests.get(f"{s.url}/healthz", timeout=5).ok for s in self.instances)


@contextlib.contextmanager
def running_cluster(env: dict[str, str], workdir: Path, count: int = 2) -> Iterator[Cluster]:
    """`count` instances with `env` on a redis-server of their own, behind nginx; all stopped at the end."""
    from tests.redis_server import RedisServer, require_redis

    require_redis()
    require_nginx()
    store = RedisServer(free_port(), workdir / "redis.log").start()
    cluster = Cluster(store, env, workdir)
    try:
        cluster.start(count)
        yield cluster
    finally:
        cluster.stop()
        store.stop()


@contextlib.contextmanager
def instance_per_mode(env: dict[str, str], workdir: Path) -> Iterator[list[LiveServer]]:
    """One instance per async mode (gevent, eventlet) with `env`, sharing a redis-server of their own, without nginx:
    a stream produced in one mode is resumed in the other. All stopped at the end."""
    from tests.redis_server import RedisServer, require_redis

    require_redis()
    store = RedisServer(free_port(), workdir / "redis.log").start()
    servers: list[LiveServer] = []
    try:
        for index, mode in enumerate(MODES):
            servers.append(start_server(mode, {**env, "REDIS_URL": store.url}, workdir / f"instance-{index}.log"))
        yield servers
    finally:
        for server in servers:
            stop_server(server)
        store.stop()
