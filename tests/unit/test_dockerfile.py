"""The Dockerfile installs and starts the relay with the same commands as the Makefile, the README and the tests.

It cannot be built here (no container engine): `make lint` runs hadolint on it, and this keeps its commands from
drifting away from the ones that are run and tested.
"""

from __future__ import annotations

import json
import re

from tests.conftest import ROOT, server_command

DOCKERFILE = (ROOT / "Dockerfile").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every `NAME ...` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(f"{name} ")]


def test_it_starts_gunicorn_as_users_and_tests_do() -> None:
    entrypoint = json.loads(instructions("ENTRYPOINT")[-1])
    gunicorn, *args = server_command("gevent")  # how tests/conftest.py starts the gevent server
    assert entrypoint == [gunicorn.rsplit("/", 1)[-1], *args] == ["gunicorn", "-c", "gunicorn.conf.py"]
    assert "gunicorn -c gunicorn.conf.py" in (ROOT / "README.md").read_text()


def test_it_installs_what_make_installs() -> None:
    assert "pip install -r requirements.txt" in instructions("RUN")
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()  # what make installs
    for command in ("npm ci --no-audit --no-fund", "npm run build"):  # `make build`
        assert command in MAKEFILE and command in instructions("RUN")


def test_a_slim_python_image_and_a_user_that_is_not_root() -> None:
    final_stage = instructions("FROM")[-1]
    assert re.fullmatch(r"python:3\.1[1-9]-slim", final_stage), final_stage
    user = instructions("USER")[-1]
    assert user.split(":")[0] not in ("0", "root")


def test_make_lint_runs_hadolint() -> None:
    lint = MAKEFILE.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "hadolint Dockerfile" in lint


def test_the_example_docker_run_gives_stop_the_time_to_drain() -> None:
    """SIGTERM drains for SHUTDOWN_GRACE (20 s by default); `docker stop` kills after 10 s unless told more."""
    from chat_relay.config import Settings

    run_line = next(line for line in DOCKERFILE.splitlines() if "docker run" in line)
    timeout = re.search(r"--stop-timeout (\d+)", run_line)
    assert timeout, run_line
    assert int(timeout.group(1)) > Settings.model_fields["shutdown_grace"].default, run_line
