"""Starting the server as a user does: the refusals and messages a misconfigured start gets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import BIN, ROOT

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ASYNC_MODE"))}


def run(command: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env={**CLEAN_ENV, "PORT": "0", **env}, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("command", [[str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"], [sys.executable, "-m", "app"]])
def test_refuses_to_start_without_an_upstream(command: list[str], tmp_path) -> None:
    if (ROOT / ".env").exists():
        pytest.skip("a .env file in the checkout configures an upstream")
    result = run(command)
    assert result.returncode != 0
    assert "OPENAI_API_KEY" in result.stderr and "OPENAI_BASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_gunicorn_points_eventlet_mode_to_python_m_app() -> None:
    result = run([str(BIN / "gunicorn"), "-c", "gunicorn.conf.py"], ASYNC_MODE="eventlet", OPENAI_API_KEY="k")
    assert result.returncode != 0
    assert "python -m app" in result.stderr and "Traceback" not in result.stderr


def test_eventlet_mode_sends_small_writes_at_once() -> None:
    """eventlet's server, unlike gunicorn, leaves Nagle's algorithm on: then a small write (a stop's terminal event,
    right after its ack) waits for the client's delayed ACK, up to 40 ms. The connections it accepts must not."""
    check = (
        "import socket\n"
        "from app.__main__ import eventlet_listener\n"
        "listener = eventlet_listener('127.0.0.1', 0)\n"
        "client = socket.create_connection(listener.getsockname())\n"
        "accepted, _ = listener.accept()\n"
        "print(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))\n"
    )
    result = run([sys.executable, "-c", check], ASYNC_MODE="eventlet")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) != 0
