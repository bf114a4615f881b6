"""What each make target installs, read from make's own plan (`make -n`) in an empty copy of the build files.

`make run` installs only what serving needs (requirements.txt, then the local model's packages when it serves
it); the development toolchain (requirements-dev.txt: Playwright, matplotlib, mypy...) comes with the targets
that use it. The copy has no .venv, so make plans every install, and nothing in it can run the real launcher.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

BUILD_FILES = ["Makefile", "pyproject.toml", "requirements.txt", "requirements-dev.txt", "requirements-local.txt"]


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Path:
    for name in BUILD_FILES:
        shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / "frontend" / "src").mkdir(parents=True)
    for name in ("index.html", "vite.config.js", "package.json", "package-lock.json", "src/main.jsx"):
        (tmp_path / "frontend" / name).write_text("")
    return tmp_path


def plan(target: str, cwd: Path) -> str:
    result = subprocess.run(["make", "-n", "--no-print-directory", target], cwd=cwd, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("target", ["run", "instances"])
def test_serving_installs_only_what_serving_needs(target: str, fresh_clone: Path) -> None:
    steps = plan(target, fresh_clone)
    assert "pip install --quiet -r requirements.txt" in steps, steps
    assert "requirements-dev.txt" not in steps, steps


@pytest.mark.parametrize("target", ["dev", "test-fast", "lint"])
def test_development_targets_install_the_toolchain(target: str, fresh_clone: Path) -> None:
    steps = plan(target, fresh_clone)
    assert steps.index("-r requirements.txt") < steps.index("-r requirements-dev.txt"), steps
