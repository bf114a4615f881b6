"""The suite's tiers and its parallel run: each test's tier comes from its folder, and under pytest-xdist the
tests that share a server run on one worker, with the longest ones first.

- `tests/unit/`: starts nothing (no server process, no browser, no external service); seconds in all.
- `tests/live/`: real relay servers, started as users start them, against the fake upstream on loopback.
- `tests/e2e/`: a browser, nginx, Redis or the local model besides the relay.

Each folder is a marker (pytest.ini), so `-m "not e2e"` selects by tier, and a new test gets its tier from the
folder it is put in; a test outside them is a usage error, so none can go unmarked.

`make test` runs the suite with `-n <workers> --dist loadgroup --no-loadscope-reorder` (pytest-xdist). Every test
already takes its own free ports and temporary folders, so they can run side by side; what is arranged here:

- A test that uses a module-scoped fixture (a module's own servers, the local model) is in its module's xdist
  group, so those are started once, on one worker, rather than once on each worker that runs one of its tests.
  The session's `live_server` is started once per worker that needs it, which costs a second or two.
- Tests marked `long` (minutes on their own, such as the fuzz) are sent first, so the rest runs beside them
  instead of after them. The order changes only on xdist workers: a plain run keeps the files' order.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TIERS = ("unit", "live", "e2e")
TESTS = Path(__file__).resolve().parent
SHARED_SCOPES = ("class", "module", "package")


def tier_of(item: pytest.Item) -> str:
    """The tier folder the test is in; a test outside them is refused, since it would have no tier."""
    folder = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
    if folder not in TIERS:
        raise pytest.UsageError(f"{item.nodeid}: a test belongs in one of tests/{{{','.join(TIERS)}}}/, by its tier")
    return folder


def shares_a_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a fixture kept for more than one test but less than the session (e.g. a module's
    server)."""
    info = getattr(item, "_fixtureinfo", None)  # doctests and other non-function items have none
    if info is None:
        return False
    return any(defs and defs[-1].scope in SHARED_SCOPES for defs in info.name2fixturedefs.values())


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the xdist_group marks into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(item))
        if shares_a_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.path.relative_to(TESTS).as_posix()))
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts alike, as xdist requires; stable: files' order
        items.sort(key=lambda item: item.get_closest_marker("long") is None)
