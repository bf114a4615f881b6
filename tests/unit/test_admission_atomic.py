"""Admission decides and registers with no switch to another green thread in between, in both async modes.

A switch there lets a whole burst of requests pass the same checks (tests/live/test_bursts.py shows the effect);
this test names the cause: it traces greenlet switches while admission runs, in a monkey-patched process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import MODES, ROOT


@pytest.mark.parametrize("mode", MODES)
def test_admission_never_switches_green_threads(mode: str) -> None:
    done = subprocess.run([sys.executable, "-m", "tests.admission_switches", mode], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcomes"] == ["admitted", "admitted", "too_many_streams", "admitted", "too_many_streams",
                                  "admitted", "rate_limited", "admitted", "server_shutdown"]
    assert result["switches"] == [], "admission switched green threads at:\n" + "\n".join(result["switches"])
