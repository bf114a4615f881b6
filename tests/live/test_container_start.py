"""The relay as the container starts it, with no upstream: one message that says what to set, and nothing about
`make run`, which a container (no Makefile, no local model) cannot do.

No container engine here: the image's layout is rebuilt in a folder from the Dockerfile's own COPY lines.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, free_port

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ASYNC_MODE", "PYTHONPATH"))}


def image_tree(target: Path) -> Path:
    """The files the Dockerfile copies from the checkout (COPY lines without --from), where it copies them."""
    for source, _ in re.findall(r"^COPY (?!--)(\S+) (\S+)$", (ROOT / "Dockerfile").read_text(), flags=re.M):
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, target / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, target / source)
    return target


def start_without_upstream(cwd: Path) -> subprocess.CompletedProcess:
    env = {**CLEAN_ENV, "HOST": "127.0.0.1", "PORT": str(free_port())}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    return subprocess.run([str(gunicorn), "-c", "gunicorn.conf.py"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def test_the_container_says_what_to_set_and_not_make_run(tmp_path: Path) -> None:
    tree = image_tree(tmp_path / "srv")
    assert (tree / "app").is_dir() and not (tree / "Makefile").exists()
    result = start_without_upstream(tree)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "No upstream is configured. Set OPENAI_API_KEY" in output, output
    assert "make run" not in output, output


def test_a_checkout_still_points_at_make_run() -> None:
    result = start_without_upstream(ROOT)
    assert result.returncode != 0
    assert "`make run`, which serves a small local model" in result.stdout + result.stderr
