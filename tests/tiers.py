"""The suite's tiers and its parallel run: each test's tier comes from its folder, and under pytest-xdist the
longest tests start first.

- `tests/unit/`: starts nothing (no server process, no browser, no external service); seconds in all.
- `tests/live/`: real relay servers, started as users start them, against the fake upstream on loopback.
- `tests/e2e/`: a browser, nginx, Redis or the local model besides the relay.

Each folder is a marker (pytest.ini), so `-m "not e2e"` selects by tier, and a new test gets its tier from the
folder it is put in; a test outside them is a usage error, so none can go unmarked.

`make test` runs the suite with `-n 4 --dist loadscope --no-loadscope-reorder` (pytest-xdist). Every test takes
its own free ports and temporary folders, so they can run side by side. `loadscope` sends each module whole to
one worker, so a module's own servers (its module-scoped fixtures) start once, not once per worker; the session's
`live_server` starts once per worker that needs it, a second or two. (`loadgroup` with `xdist_group` marks would
group more finely, but pytest 9.2's structured node ids make xdist 3.8 ignore the marks: pytest-xdist#1386.)
Modules are sent in file order, and a test marked `long` (minutes on its own, such as the fuzz) is moved to the
front, so the rest runs beside it instead of after it. Only xdist workers reorder: a plain run keeps the files'
order.
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(item))
    if hasattr(config, "workerinput"):  # an xdist worker: each sorts alike, as xdist requires; stable: files' order
        items.sort(key=lambda item: item.get_closest_marker("long") is None)
