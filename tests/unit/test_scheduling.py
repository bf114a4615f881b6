"""The parallel run's units (tests/scheduling.py): tests that share a fixture instance of module, class or package
scope stay together, a module's halves on two instances of a parametrized fixture are two units, long tests that
share nothing are units of their own, and the units go out longest first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.scheduling import MEASURED_SHORT, UNMEASURED, Durations

# A module shaped like the suite's: a server per async mode (a parametrized module fixture), a module fixture that
# is not parametrized, tests on session fixtures only, and a class with its own fixture.
SAMPLE = '''
import pytest

@pytest.fixture(scope="session")
def shared():
    return 1

@pytest.fixture(scope="module", params=["gevent", "eventlet"])
def server(request):
    return request.param

@pytest.fixture(scope="module")
def model():
    return "model"

@pytest.fixture(scope="module", params=["gevent", "eventlet"])
def relay(request, model):
    return request.param

@pytest.mark.parametrize("transport", ["socketio", "http"])
def test_on_server(server, transport):
    pass

def test_also_on_server(server):
    pass

def test_on_relay(relay):
    pass

def test_on_model(model):
    pass

def test_short_a(shared):
    pass

def test_short_b():
    pass

def test_long_alone(shared):
    pass

@pytest.mark.long
def test_marked_long():
    pass

class TestGrouped:
    @pytest.fixture(scope="class")
    def thing(self):
        return 2

    def test_one(self, thing):
        pass

    def test_two(self, thing):
        pass
'''

# The plugin the run below loads: the units and the order a worker would send, as JSON on stdout.
DUMP = '''
import json
import pytest
from tests.scheduling import Durations, longest_first, units_of

@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    durations = Durations(json.loads(config.getoption("--durations-json", default=None) or "{}"))
    units = units_of(items, durations)
    longest_first(items, units, durations)
    print("UNITS " + json.dumps([[item.name, units[item.nodeid]] for item in items]))

def pytest_addoption(parser):
    parser.addoption("--durations-json")
'''


def units_and_order(tmp_path: Path, durations: dict[str, float]) -> list[tuple[str, str]]:
    """Collect SAMPLE with the units plugin: (test name, unit) in the order a worker would run them."""
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "dump_units.py").write_text(DUMP)
    module = (tmp_path / "test_sample.py").as_posix().lstrip("/")
    measured = {f"{module}::{name}": seconds for name, seconds in durations.items()}
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-s", "-p", "no:cacheprovider",
                             "-p", "dump_units", "--rootdir", "/", "--durations-json", json.dumps(measured),
                             str(tmp_path / "test_sample.py")],
                            cwd=ROOT, env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60)
    line = next((line for line in result.stdout.splitlines() if line.startswith("UNITS ")), None)
    assert line, result.stdout + result.stderr
    return [(name, unit.rsplit("::", 1)[1]) for name, unit in json.loads(line.removeprefix("UNITS "))]


def grouped(order: list[tuple[str, str]]) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for name, unit in order:
        units.setdefault(unit, set()).add(name)
    return units


def test_tests_sharing_a_fixture_instance_are_one_unit_and_each_parameter_is_its_own(tmp_path: Path) -> None:
    units = sorted(grouped(units_and_order(tmp_path, {"test_long_alone": 30.0})).values(), key=sorted)
    assert units == sorted([
        # One server per mode: each with the tests on it, both transports.
        {"test_on_server[gevent-socketio]", "test_on_server[gevent-http]", "test_also_on_server[gevent]"},
        {"test_on_server[eventlet-socketio]", "test_on_server[eventlet-http]", "test_also_on_server[eventlet]"},
        # The relays share the one model: a single unit, or the model would start in two processes.
        {"test_on_relay[gevent]", "test_on_relay[eventlet]", "test_on_model"},
        {"test_long_alone"},  # long, and shares nothing but session fixtures: a unit of its own
        {"test_short_a", "test_short_b", "test_marked_long"},  # short ones stay together
        {"test_one", "test_two"},  # the class's fixture
    ], key=sorted)


def test_units_go_out_longest_first_with_the_long_mark_first_and_stay_whole(tmp_path: Path) -> None:
    order = units_and_order(tmp_path, {"test_long_alone": 30.0, "test_also_on_server[eventlet]": 12.0,
                                       "TestGrouped::test_one": 8.0})
    names = [name for name, _ in order]
    assert names[0] == "test_marked_long" or order[0][1] == dict(order)["test_marked_long"]
    runs = [unit for index, (_, unit) in enumerate(order) if index == 0 or order[index - 1][1] != unit]
    assert len(runs) == len(set(runs)), order  # each unit's tests in a row
    after_long = [unit for unit in runs if unit != dict(order)["test_marked_long"]]
    assert after_long[:3] == [dict(order)["test_long_alone"], dict(order)["test_also_on_server[eventlet]"],
                              dict(order)["test_one"]], order


@pytest.mark.parametrize(("nodeid", "expected"), [
    ("tests/live/test_known.py::test_measured", 7.5),
    ("tests/live/test_known.py::test_new_in_a_measured_module", MEASURED_SHORT),
    ("tests/live/test_new.py::test_x", UNMEASURED["live"]),
    ("tests/e2e/test_new.py::test_x", UNMEASURED["e2e"]),
    ("tests/unit/test_new.py::test_x", UNMEASURED["unit"]),
])
def test_a_test_not_measured_counts_as_short_in_a_measured_module_else_as_its_tier(nodeid: str,
                                                                                  expected: float) -> None:
    assert Durations({"tests/live/test_known.py::test_measured": 7.5}).of(nodeid) == expected


def test_the_durations_file_names_collected_tests() -> None:
    """A hint that names no test of this suite (a renamed folder, say) would order nothing."""
    measured = Durations.load().measured
    assert len(measured) > 300 and all(nodeid.startswith("tests/") and "::" in nodeid for nodeid in measured)
