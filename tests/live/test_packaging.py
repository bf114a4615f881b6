"""The distributions: chat_relay built as a wheel and installed in a fresh virtual environment, where the import
and the embedding example run from the installed library (not this checkout); relay_client's own wheel; and the
library's dependencies kept the same as requirements.txt's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import API_KEY, ROOT, LiveServer, free_port, stop_server, upstream_env
from tests.fake_upstream import FakeUpstream, controls
from tests.outcomes import run_http

PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]


def requirement_lines(path: Path) -> dict[str, str]:
    """name -> the requirement as written (without its comment), for a requirements file."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {re.split(r"[\[<>=!~ ]", line, maxsplit=1)[0].lower().replace("_", "-"): line
            for line in lines if line and not line.startswith("-")}


def test_the_library_depends_on_what_requirements_txt_installs_with_the_same_bounds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = requirement_lines(ROOT / "requirements.txt")
    for dependency in project["dependencies"]:
        name = re.split(r"[\[<>=!~ ]", dependency, maxsplit=1)[0].lower().replace("_", "-")
        assert required.get(name, "").replace(" ", "") == dependency.replace(" ", ""), dependency


def build_wheel(source: Path, out: Path) -> Path:
    """`pip wheel` of `source`, a copy: setuptools leaves a build folder where it builds."""
    subprocess.run([*PIP, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out),
                    str(source)], check=True, capture_output=True, timeout=120)
    return next(out.glob("*.whl"))


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new virtual environment with chat_relay's wheel installed, offline.

    Its dependencies come from this venv's site-packages (a .pth file puts them on the path), so pip installs
    the wheel with --no-index and then finds every dependency already satisfied."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "chat_relay", source / "chat_relay", ignore=shutil.ignore_patterns("__pycache__"))
    wheel = build_wheel(source, tmp / "dist")

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    into = [*PIP, "--python", str(python), "install", "--no-index", "--find-links", str(wheel.parent)]
    subprocess.run([*into, "--no-deps", "--ignore-installed", str(wheel)], check=True, capture_output=True,
                   timeout=120)
    resolved = subprocess.run([*into, "chat-relay"], capture_output=True, text=True, timeout=120)
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr  # every dependency is there
    yield venv


def test_the_installed_library_imports_from_its_own_name(fresh_venv: Path, tmp_path: Path) -> None:
    code = ("import chat_relay, pathlib; from chat_relay import ChatRelay, Settings, create_app, load_settings; "
            "print(pathlib.Path(chat_relay.__file__).resolve()); print(sorted(chat_relay.__all__)); "
            "print((pathlib.Path(chat_relay.__file__).parent / 'py.typed').exists())")
    result = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    where, names, typed = result.stdout.splitlines()
    assert Path(where).is_relative_to(fresh_venv.resolve()), where  # the installed copy, not this checkout
    assert {"ChatRelay", "create_app", "Settings", "load_settings"} <= set(eval(names))
    assert typed == "True"


def test_the_embedding_example_runs_from_the_installed_library(fresh_venv: Path, fake_upstream: FakeUpstream,
                                                                tmp_path: Path) -> None:
    team = tmp_path / "team"  # the team's own folder: the example file, and no chat_relay beside it
    team.mkdir()
    shutil.copy(ROOT / "examples" / "embed_app.py", team / "embed_app.py")
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **upstream_env(fake_upstream),
           "HOST": "127.0.0.1", "PORT": str(port), "ASYNC_MODE": "eventlet"}
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([str(fresh_venv / "bin" / "python"), "embed_app.py"], cwd=team, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer("embed-installed", f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:  # until the team's /healthz answers, or the process dies
            assert process.poll() is None, server.log()
            assert time.monotonic() < deadline, server.log()
            try:
                requests.get(f"{server.url}/healthz", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.05)  # polling a readiness condition; there is no event to wait on
        outcome = run_http(f"{server.url}/ai", {"prompt": controls(chunks=5), "stream_id": "w1"})
        assert outcome.status == 200
        assert outcome.text == "".join(f"w{i} " for i in range(5))
        assert outcome.terminal["type"] == "done"
    finally:
        stop_server(server)
    assert API_KEY not in server.log()


def test_relay_client_installs_on_its_own(tmp_path: Path) -> None:
    """Its wheel holds the client alone, and asks for its own two dependencies, not the server's."""
    source = tmp_path / "relay_client"
    shutil.copytree(ROOT / "relay_client", source, ignore=shutil.ignore_patterns("__pycache__", "build"))
    wheel = build_wheel(source, tmp_path / "dist")
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert {n.split("/")[0] for n in names if not n.startswith("chat_relay_client-")} == {"relay_client"}
    requires = sorted(re.split(r"[\[<>=!~ ]", line[len("Requires-Dist: "):], maxsplit=1)[0]
                      for line in metadata.splitlines() if line.startswith("Requires-Dist: "))
    assert requires == ["python-socketio", "requests"]
