"""`make dev` restarts the relay when a file in a subfolder of app/ is saved, in both async modes.

The dev server runs from a copy of the tree (never the real one, which other tests serve from), started as
`make dev` starts it: `python -m app.serving.launch --dev` with an upstream configured.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from app.serving import dev_reload
from tests.conftest import MODES, ROOT, LiveServer, free_port, stop_server
from tests.fake_upstream import FakeUpstream

CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("OPENAI_", "ASYNC_MODE", "LOCAL_MODEL_", "PYTHONPATH"))}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key="sk-right-key") as upstream:
        yield upstream


def copy_tree(target: Path) -> Path:
    """What the dev server needs from the checkout: the watched folders and gunicorn's config."""
    for name in dev_reload.WATCHED:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "gunicorn.conf.py", target / "gunicorn.conf.py")
    return target


def start_dev(tree: Path, env: dict[str, str], log_path: Path) -> LiveServer:
    """`make dev`'s command, run from the copy, as conftest.launch runs servers from the checkout."""
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "app.serving.launch", "--dev"], cwd=tree, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    return LiveServer("dev", f"http://127.0.0.1:{env['PORT']}", process, log_path)


def relay_pids(watcher_pid: int) -> set[int]:
    """The processes watchmedo runs (the relay), from /proc: each of its threads may have started one."""
    pids: set[int] = set()
    for task in Path(f"/proc/{watcher_pid}/task").iterdir():
        try:
            pids.update(int(pid) for pid in (task / "children").read_text().split())
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return pids


def wait_for_new_relay(server: LiveServer, old: set[int], timeout: float) -> int:
    """Wait until watchmedo runs a relay other than `old` and it answers /healthz; return its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.process.poll() is None, f"the dev server exited:\n{server.log()}"
        now = relay_pids(server.process.pid)
        if now and not now & old:
            try:
                requests.get(f"{server.url}/healthz", timeout=1).raise_for_status()
                return now.pop()
            except requests.RequestException:
                pass  # the new relay is still starting
        time.sleep(0.05)  # polling /proc and a port: neither offers an event to wait on
    raise AssertionError(f"no restart within {timeout} s (relay pids {old} -> {relay_pids(server.process.pid)}):\n"
                         f"{server.log()[-3000:]}")


@pytest.mark.parametrize("mode", MODES)
def test_saving_a_file_in_a_subfolder_restarts_the_relay(mode: str, fake: FakeUpstream, tmp_path: Path) -> None:
    tree = copy_tree(tmp_path / "tree")
    port = free_port()
    env = {**CLEAN_ENV, "HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": mode, "OPENAI_BASE_URL": fake.url,
           "OPENAI_API_KEY": "sk-right-key", "OPENAI_MODEL": "fake-model", "RUN_DIR": str(tmp_path / "run")}
    server = start_dev(tree, env, tmp_path / "dev.log")
    try:
        first = wait_for_new_relay(server, set(), timeout=60)
        routes = tree / "chat_relay" / "transports" / "http_routes.py"
        routes.write_text(routes.read_text() + "\n# saved by test_dev_reload\n")  # an editor's save
        second = wait_for_new_relay(server, {first}, timeout=30)
        # The restarted relay runs the code just saved: one more save, in a deeper file, restarts it again.
        deeper = next(p for p in sorted((tree / "app").glob("*/*.py")) if p.parent.name != "transports")
        deeper.write_text(deeper.read_text() + "\n# saved again\n")
        wait_for_new_relay(server, {second}, timeout=30)
    finally:
        stop_server(server)
    assert "Traceback" not in server.log(), server.log()
