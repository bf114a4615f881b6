"""The tiers (tests/tiers.py): a test's tier is its folder, a test outside the tier folders is refused rather than
left unmarked, and `make test-fast` runs the unit folder, not a list of files kept by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT
from tests.tiers import TESTS, tier_of


@pytest.mark.parametrize("tier", ["unit", "live", "e2e"])
def test_the_tier_is_the_folder(tier: str) -> None:
    item = SimpleNamespace(path=TESTS / tier / "test_anything.py", nodeid=f"tests/{tier}/test_anything.py::test_x")
    assert tier_of(item) == tier  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [TESTS / "test_at_the_root.py", TESTS / "other" / "test_x.py",
                                  Path("/elsewhere/test_x.py")])
def test_a_test_outside_the_tier_folders_is_refused(path: Path) -> None:
    with pytest.raises(pytest.UsageError, match=r"tests/\{unit,live,e2e\}/"):
        tier_of(SimpleNamespace(path=path, nodeid=f"{path.name}::test_x"))  # type: ignore[arg-type]


def test_pytest_stops_on_a_test_outside_the_tiers(tmp_path: Path) -> None:
    """The whole run stops, saying where the test belongs: a test with no tier would run in no tier's command."""
    (tmp_path / "test_stray.py").write_text("def test_stray():\n    pass\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.tiers", "-p", "no:cacheprovider",
                             "--rootdir", str(tmp_path), str(tmp_path / "test_stray.py")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, result.stdout
    assert "test_stray.py::test_stray: a test belongs in one of tests/{unit,live,e2e}/" in result.stderr, result


def test_make_test_fast_runs_the_unit_folder_and_make_test_runs_in_parallel() -> None:
    commands = {target: subprocess.run(["make", "-n", target, "-o", ".venv/.installed", "-o", ".venv/.local-installed",
                                        "-o", "frontend/dist/index.html"], cwd=ROOT, capture_output=True, text=True,
                                       timeout=60).stdout for target in ("test-fast", "test")}
    assert "-m pytest -q tests/unit\n" in commands["test-fast"], commands["test-fast"]
    assert "-m pytest -n 4 --dist loadscope" in commands["test"], commands["test"]


def test_the_folders_tier_selects_its_tests() -> None:
    """`-m unit` over a unit and a live file collects the unit file's tests only: the mark comes from the folder."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             "-m", "unit", "tests/unit/test_formats.py", "tests/live/test_limits.py"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    selected = [line for line in result.stdout.splitlines() if "::" in line]
    assert selected and all(line.startswith("tests/unit/test_formats.py::") for line in selected), result.stdout
