"""A real redis-server from Debian's package, on a 127.0.0.1 port, for the tests that share streams through Redis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


def require_redis() -> None:
    """Skip without redis-server, except in CI (`CI` set), where .ci/run installs it and a skip would hide a gap."""
    if not Path(REDIS).exists():
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing: .ci/run installs it (apt-get install -y redis-server)")
        pytest.skip("redis-server is missing (apt-get install -y redis-server)")


class RedisServer:
    """redis-server without persistence, on a fixed port so that a restart keeps the same URL."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [REDIS, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--protected-mode", "yes"], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)  # polling a process that offers no readiness signal
        raise RuntimeError(f"redis-server did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
