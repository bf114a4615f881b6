"""`python -m app.serving.launch` (what `make run` runs) on bad setups: each gets a message that says what to do.

None of these needs llama-cpp-python: the checks run before anything is compiled or started.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.serving import local_model, processes
from chat_relay.config import Settings
from tests.conftest import ROOT, free_port, launch, stop_server
from tests.fake_upstream import FakeUpstream

# A user's shell with nothing configured: no key, no base URL, no async mode from the test runner.
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("OPENAI_", "ASYNC_MODE", "LOCAL_MODEL_", "CC", "CXX"))}
LAUNCH = [sys.executable, "-m", "app.serving.launch"]
WRONG_KEY = "sk-wrong-key-3b8e1d"


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    merged = {**CLEAN_ENV, "PORT": str(free_port()), "LOCAL_MODEL_PORT": str(free_port()), **env}
    return subprocess.run([*LAUNCH, *args], cwd=ROOT, env=merged, capture_output=True, text=True, timeout=90)


def assert_clear_failure(result: subprocess.CompletedProcess, *words: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture(autouse=True)
def _no_env_file() -> None:
    if (ROOT / ".env").exists():
        pytest.skip("a .env file in the checkout configures the server")


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something already listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key="sk-right-key") as upstream:
        yield upstream


def test_make_run_asks_for_the_local_model_only_without_key_and_base_url() -> None:
    assert run("--wants-local").returncode == 0
    assert run("--wants-local", OPENAI_API_KEY="sk-x").returncode == 1
    assert run("--wants-local", OPENAI_BASE_URL="http://127.0.0.1:9/v1").returncode == 1


def test_local_model_port_taken(listener: int) -> None:
    result = run(LOCAL_MODEL_PORT=str(listener))
    assert_clear_failure(result, "LOCAL_MODEL_PORT", str(listener), "taken")


def test_relay_port_taken(listener: int) -> None:
    result = run(PORT=str(listener))
    assert_clear_failure(result, "set PORT", str(listener))


def test_missing_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.gguf"
    result = run(LOCAL_MODEL_PATH=str(missing))
    assert_clear_failure(result, "LOCAL_MODEL_PATH", "does not exist")


def test_corrupt_model_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "model.gguf"
    corrupt.write_bytes(b"<html>not a model</html>" * 100)
    result = run(LOCAL_MODEL_PATH=str(corrupt))
    assert_clear_failure(result, "LOCAL_MODEL_PATH", "not a GGUF file")


def test_gguf_problem_names_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    assert "does not exist" in (local_model.gguf_problem(path) or "")
    path.write_bytes(b"GGUF" + bytes(100))
    assert local_model.gguf_problem(path) is None
    assert "incomplete" in (local_model.gguf_problem(path, expected_size=1000) or "")
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    assert "not a GGUF file" in (local_model.gguf_problem(path) or "")


def test_unreachable_base_url() -> None:
    closed = free_port()
    result = run(OPENAI_BASE_URL=f"http://127.0.0.1:{closed}/v1", UPSTREAM_MAX_RETRIES="0")
    assert_clear_failure(result, "Cannot reach", "OPENAI_BASE_URL", str(closed))
    assert "To use the local model instead, unset OPENAI_BASE_URL." in result.stderr


def test_the_hint_for_a_base_url_in_dotenv_says_to_remove_it_there(tmp_path: Path) -> None:
    """Unsetting a variable the shell never had would change nothing: the URL is in .env."""
    closed = free_port()
    (tmp_path / ".env").write_text(f"OPENAI_BASE_URL=http://127.0.0.1:{closed}/v1\nUPSTREAM_MAX_RETRIES=0\n")
    env = {**CLEAN_ENV, "PYTHONPATH": str(ROOT), "PORT": str(free_port())}
    result = subprocess.run(LAUNCH, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
    assert_clear_failure(result, "Cannot reach", str(closed), "To use the local model instead, remove "
                         "OPENAI_BASE_URL from .env.")
    assert "unset" not in result.stderr.lower()


def test_credentials_in_the_base_url_are_never_printed() -> None:
    closed = free_port()
    result = run(OPENAI_BASE_URL=f"http://relay:s3cret-pw@127.0.0.1:{closed}/v1", UPSTREAM_MAX_RETRIES="0")
    assert_clear_failure(result, "Cannot reach", f"http://127.0.0.1:{closed}/v1")
    assert "s3cret-pw" not in result.stdout + result.stderr


def test_wrong_key(fake: FakeUpstream) -> None:
    result = run(OPENAI_BASE_URL=fake.url, OPENAI_API_KEY=WRONG_KEY, OPENAI_MODEL="fake-model")
    assert_clear_failure(result, "refused the key", "OPENAI_API_KEY")
    assert WRONG_KEY not in result.stdout + result.stderr


def test_base_url_that_is_not_the_api_root(fake: FakeUpstream) -> None:
    result = run(OPENAI_BASE_URL=fake.url.removesuffix("/v1") + "/api", OPENAI_API_KEY="sk-right-key")
    assert_clear_failure(result, "OPENAI_BASE_URL", "/v1")


def test_with_a_good_upstream_it_starts_the_server(fake: FakeUpstream, tmp_path: Path) -> None:
    """A key and a base URL that work: the launcher checks them and becomes gunicorn, as `make run` did before."""
    port = free_port()
    env = {**CLEAN_ENV, "PORT": str(port), "OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "sk-right-key",
           "OPENAI_MODEL": "not-listed"}
    server = launch("launcher", LAUNCH, port, env, tmp_path / "launch.log")
    try:
        log = server.log()
        assert f"Upstream: {fake.url}, model not-listed" in log
        assert "does not list OPENAI_MODEL=not-listed" in log  # a warning, not a refusal
        assert "Traceback" not in log
    finally:
        stop_server(server)


def _fake_tools(directory: Path, *names: str) -> str:
    directory.mkdir()
    for name in names:
        tool = directory / name
        tool.write_text("#!/bin/sh\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return str(directory)


def test_missing_build_tools_are_named(tmp_path: Path) -> None:
    assert local_model.missing_build_tools(_fake_tools(tmp_path / "all", "cc", "c++", "cmake")) == []
    missing = local_model.missing_build_tools(_fake_tools(tmp_path / "some", "gcc"))
    assert missing == ["a C++ compiler (c++)", "cmake"]


def test_build_tools_check_says_what_to_install(tmp_path: Path) -> None:
    """What `make local` prints before pip would start compiling on a machine without cmake."""
    path = _fake_tools(tmp_path / "bin", "cc", "c++")
    result = subprocess.run([*LAUNCH, "--check-build-tools"], cwd=ROOT, env={**CLEAN_ENV, "PATH": path},
                            capture_output=True, text=True, timeout=60)
    assert_clear_failure(result, "cmake", "apt-get install build-essential cmake", "OPENAI_API_KEY")


def test_local_settings_do_not_need_a_key() -> None:
    settings = Settings(_env_file=None, openai_api_key=None, openai_base_url=None,  # type: ignore[call-arg]
                        local_model_port=9001)
    assert settings.uses_local_model
    command = local_model.server_command(Path("/m.gguf"), settings)
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--chat_format") + 1] == "few-shot-qa"  # app/serving/qa_frame.py
    assert command[command.index("--interrupt_requests") + 1] == "False"


# --- `make dev`: python -m app.serving.launch --dev, the relay under watchdog's watchmedo ---------------------------


def test_make_dev_runs_the_launcher() -> None:
    """`make dev` goes through the launcher, which checks the settings before watchmedo can restart a failure."""
    result = subprocess.run(["make", "-n", "dev"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "-m app.serving.launch --dev" in result.stdout, result.stdout + result.stderr


def test_dev_with_bad_settings_stops_with_the_message() -> None:
    """Once, with what to fix, and a non-zero status: not restarted by watchmedo forever."""
    result = run("--dev", RATE_LIMIT="lots")
    assert_clear_failure(result, "RATE_LIMIT", "60/minute")
    assert result.returncode == 2
    assert result.stderr.count("Invalid settings") == 1


def test_dev_with_an_upstream_serves_under_watchmedo(fake: FakeUpstream, tmp_path: Path) -> None:
    """With a key and a base URL it checks them, then serves under watchmedo, which stops the relay with it."""
    port = free_port()
    env = {**CLEAN_ENV, "PORT": str(port), "OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "sk-right-key",
           "OPENAI_MODEL": "fake-model"}
    server = launch("launcher-dev", [*LAUNCH, "--dev"], port, env, tmp_path / "dev.log")
    try:
        assert b"watchdog.watchmedo" in Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
        assert f"Upstream: {fake.url}, model fake-model" in server.log()
    finally:
        stop_server(server)
    assert processes.port_problem("127.0.0.1", port) is None  # the relay under watchmedo stopped too
    assert "Traceback" not in server.log()


def test_relay_port_equal_to_the_local_model_port() -> None:
    """One line naming both settings, before either server starts (not gunicorn's "Connection in use" for 5 s)."""
    port = str(free_port())
    result = run(PORT=port, LOCAL_MODEL_PORT=port)
    assert_clear_failure(result, "PORT and LOCAL_MODEL_PORT", port)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Connection in use" not in result.stdout + result.stderr


@pytest.mark.parametrize("target", ["run", "dev"])
def test_make_exits_non_zero_when_the_server_cannot_start(target: str, listener: int, fake: FakeUpstream) -> None:
    """`make run` and `make dev` as a user runs them (the venv and the page taken as built): a failed start is
    the launcher's one line and a non-zero status, not a silent success."""
    env = {**CLEAN_ENV, "PORT": str(listener), "OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "sk-right-key",
           "OPENAI_MODEL": "fake-model"}
    taken_as_made = [".venv/.serve-installed", ".venv/.installed", ".venv/.local-installed", "frontend/dist/index.html"]
    result = subprocess.run(["make", "--no-print-directory", target, f"BIN={Path(sys.executable).parent}",
                             *[arg for made in taken_as_made for arg in ("-o", made)]],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0, result.stdout + result.stderr
    assert f"error: The relay's port 127.0.0.1:{listener} is taken" in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
