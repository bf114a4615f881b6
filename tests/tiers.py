"""The suite's tiers: each test's tier comes from its folder.

- `tests/unit/`: starts nothing (no server process, no browser, no external service); seconds in all.
- `tests/live/`: real relay servers, started as users start them, against the fake upstream on loopback.
- `tests/e2e/`: a browser, nginx, Redis or the local model besides the relay.

Each folder is a marker (pytest.ini), so `-m "not e2e"` selects by tier, and a new test gets its tier from the
folder it is put in; a test outside them is a usage error, so none can go unmarked.

`make test` runs the suite in parallel (pytest-xdist, `--dist loadscope`); tests/scheduling.py says how it is cut
into units and ordered. Every test takes its own free ports and temporary folders, so they can run side by side.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = ("unit", "live", "e2e")
TESTS = Path(__file__).resolve().parent


def tier_of(item: pytest.Item) -> str:
    """The tier folder the test is in; a test outside them is refused, since it would have no tier."""
    folder = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
    if folder not in TIERS:
        raise pytest.UsageError(f"{item.nodeid}: a test belongs in one of tests/{{{','.join(TIERS)}}}/, by its tier")
    return folder


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(item))
