"""How a parallel run (`pytest -n N --dist loadscope`, pytest-xdist) cuts the suite into units and orders them.

Why: with whole modules as units, the run ends when the longest module ends, and a module that runs its tests in
both async modes, each against its own server, keeps the two halves in one process one after the other. Here a
unit is the smallest set of tests that must share a process: the tests that use one instance of a module-, class-
or package-scoped fixture (one started server, say, one per parameter of a parametrized fixture) form one unit, so
each server still starts once and no test runs beside its own server's other users. A test that shares no such
fixture is a unit of its own when it is long (SPLIT_AT); the short ones of a module stay together, since a unit
costs a message to the worker. Session-scoped fixtures (`live_server`, `fake_upstream`) start once per process
that uses them, as before.

The units then go out longest first (the `long` mark first of all), by the durations of the tests measured in an
earlier run (tests/durations.json; `--record-durations tests/durations.json` rewrites it), so the run does not end
on a long unit started last. A test missing from the file counts as short when its module is in the file (it was
measured short), else at its tier's typical length. Durations are only a hint for the order: a stale file makes
the run longer, never wrong.

The workers compute the units (only they collect) and write them to a file the controller's scheduler reads:
`pytest_configure_node` tells each worker where. Every worker sorts its items alike, as xdist requires. (xdist's
own `loadgroup` would need an `xdist_group` mark kept by hand on each test, and pytest 9.2's structured node ids
make xdist 3.8 ignore those marks: pytest-xdist#1386.)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
DURATIONS = TESTS / "durations.json"
SPLIT_AT = 5.0  # s: a test that shares no fixture and is at least this long is a unit of its own
# The typical length of a test of a module that is not in DURATIONS yet (a new module), by tier.
UNMEASURED = {"unit": 0.05, "live": 1.0, "e2e": 3.0}
MEASURED_SHORT = 0.05  # a test missing from DURATIONS in a module that is there: measured under a tenth
SHARED_SCOPES = ("class", "module", "package")
UNITS_KEY = "test_units_file"  # workerinput: where the workers write the units


def shared_instances(item: pytest.Item) -> set[tuple[str, str, int]]:
    """The instances of class-, module- or package-scoped fixtures the test uses: tests that share one of them must
    run in one process, or the fixture would be set up again in another. A parametrized fixture has an instance
    per parameter. (A fixture of those scopes that depends on a parametrized one is taken as one instance: that
    only joins units, which is always safe.)"""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return set()
    indices: dict[str, int] = getattr(getattr(item, "callspec", None), "indices", {})
    shared = set()
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name)
        if definitions and definitions[-1].scope in SHARED_SCOPES:
            shared.add((definitions[-1].baseid, name, indices.get(name, -1)))
    return shared


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


class Durations:
    """Each test's measured duration (setup, call and teardown), with the estimates for the ones not measured."""

    def __init__(self, measured: dict[str, float]) -> None:
        self.measured = measured
        self.modules = {module_of(nodeid) for nodeid in measured}

    @classmethod
    def load(cls, path: Path = DURATIONS) -> Durations:
        try:
            return cls(json.loads(path.read_text()))
        except (OSError, ValueError):
            return cls({})

    def of(self, nodeid: str) -> float:
        if nodeid in self.measured:
            return self.measured[nodeid]
        module = module_of(nodeid)
        if module in self.modules:
            return MEASURED_SHORT
        tier = module.split("/")[1] if module.count("/") >= 2 else ""
        return UNMEASURED.get(tier, 1.0)


def units_of(items: Iterable[pytest.Item], durations: Durations) -> dict[str, str]:
    """Each test's unit, named after its module: the tests joined by a shared fixture instance (union-find)."""
    parent: dict[Any, Any] = {}

    def root(key: Any) -> Any:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    items = list(items)
    for item in items:
        module = module_of(item.nodeid)
        links: set[Any] = {(module, *instance) for instance in shared_instances(item)}
        if not links and durations.of(item.nodeid) < SPLIT_AT:
            links = {(module, "short tests")}
        for link in links:
            parent[root(link)] = root(("test", item.nodeid))
    names: dict[Any, str] = {}
    units = {}
    for item in items:
        module = module_of(item.nodeid)
        key = root(("test", item.nodeid))
        if key not in names:
            names[key] = f"{module}::unit-{sum(1 for name in names.values() if module_of(name) == module)}"
        units[item.nodeid] = names[key]
    return units


def longest_first(items: list[pytest.Item], units: dict[str, str], durations: Durations) -> None:
    """Sort the items unit by unit: units with a `long` test first, then by their length, the longest first; the
    tests of a unit keep their order. Stable, so every worker sorts alike."""
    length: dict[str, float] = {}
    long_units = set()
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        unit = units[item.nodeid]
        length[unit] = length.get(unit, 0.0) + durations.of(item.nodeid)
        first.setdefault(unit, index)
        if item.get_closest_marker("long") is not None:
            long_units.add(unit)
    items.sort(key=lambda item: (units[item.nodeid] not in long_units, -length[units[item.nodeid]],
                                 first[units[item.nodeid]]))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--record-durations", metavar="PATH", default=None,
                     help="write each test's duration to PATH (tests/durations.json is the parallel runs' order hint)")


def parallel_by_units(config: pytest.Config) -> bool:
    return config.getoption("dist", "no") == "loadscope" and bool(config.getoption("numprocesses", None))


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and parallel_by_units(config):  # the controller
        config.stash[units_dir] = Path(tempfile.mkdtemp(prefix="test-units-"))
    if config.getoption("record_durations") and not hasattr(config, "workerinput"):
        config.stash[recorded] = {}  # the controller (or a plain run) gets every test's reports


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(units_dir, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each worker where to write the units (xdist's hook, run in the controller)."""
    folder = node.config.stash.get(units_dir, None)
    if folder is not None:
        node.workerinput[UNITS_KEY] = str(folder / "units.json")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.stash.get(units_dir, None) is None:
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        """loadscope, with this module's units as the scopes (the workers already sent them in order)."""

        units: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.units is None:
                path = config.stash[units_dir] / "units.json"
                self.units = json.loads(path.read_text()) if path.exists() else {}
            return self.units.get(nodeid) or super()._split_scope(nodeid)

    config.option.loadscopereorder = False  # the workers' order is longest first: xdist's reorder by size would undo it
    return UnitScheduling(config, log)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or UNITS_KEY not in workerinput:
        return  # a plain run keeps the files' order
    durations = Durations.load()
    units = units_of(items, durations)
    longest_first(items, units, durations)
    target = Path(workerinput[UNITS_KEY])
    partial = target.with_name(f"{target.name}.{os.getpid()}")  # every worker writes the same; never half a file
    partial.write_text(json.dumps(units))
    os.replace(partial, target)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up each test's phases, for --record-durations (in the controller, which gets every worker's reports)."""
    if _recording is not None:
        _recording[report.nodeid] = _recording.get(report.nodeid, 0.0) + report.duration


def pytest_sessionstart(session: pytest.Session) -> None:
    global _recording
    _recording = session.config.stash.get(recorded, None)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _recording:
        # Tenths, and only tests of a tenth or more: a test missing from a measured module counts as short.
        measured = {nodeid: round(seconds, 1) for nodeid, seconds in sorted(_recording.items()) if seconds >= 0.1}
        Path(session.config.getoption("record_durations")).write_text(json.dumps(measured, indent=0) + "\n")


units_dir = pytest.StashKey[Path]()
recorded = pytest.StashKey[dict[str, float]]()
_recording: dict[str, float] | None = None
