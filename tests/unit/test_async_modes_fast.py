"""One home for the async modes: only chat_relay/async_drivers/ knows gevent from eventlet (issue 21), and the
server application serves modes from the library's one list."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.serving.servers import GUNICORN, OWN_SERVER, SERVERS, modes_served_by, server_for
from chat_relay.async_drivers import MODES
from chat_relay.config import ConfigError

LIBRARY = Path(__file__).resolve().parents[2] / "chat_relay"
# The drivers are the differences; config.py declares the list of modes (AsyncMode) that MODES reads.
HOMES = {LIBRARY / "async_drivers", LIBRARY / "config.py"}
OTHERS = sorted(path for path in LIBRARY.rglob("*.py") if not any(home in (path, *path.parents) for home in HOMES))


def mode_knowledge(path: Path) -> list[str]:
    """Where `path` imports a mode's library, or names a mode (to compare with or to pick by)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        found += [f"line {node.lineno}: imports {name}" for name in names
                  if name.split(".")[0] in ("gevent", "eventlet")]
        if isinstance(node, ast.Constant) and node.value in MODES:
            found.append(f"line {node.lineno}: names the mode {node.value!r}")
    return found


def test_the_modules_are_found() -> None:
    assert LIBRARY / "transports" / "websocket_limits.py" in OTHERS and len(OTHERS) > 40


@pytest.mark.parametrize("path", OTHERS, ids=lambda path: str(path.relative_to(LIBRARY)))
def test_only_the_drivers_know_the_modes(path: Path) -> None:
    assert mode_knowledge(path) == []


def test_the_served_modes_are_the_librarys() -> None:
    assert set(SERVERS) < set(MODES)
    assert modes_served_by(GUNICORN) == ["gevent"] and server_for("eventlet") == OWN_SERVER
    with pytest.raises(ConfigError, match="ASYNC_MODE=threading is for tests; use gevent or eventlet"):
        server_for("threading")


@pytest.mark.parametrize(("mode", "server"), [("gevent", ["-m", "gunicorn"]), ("eventlet", ["-m", "app"])])
def test_make_run_starts_each_mode_on_its_server(mode: str, server: list[str]) -> None:
    from app.serving.launch import relay_command
    from chat_relay.config import Settings

    command = relay_command(Settings(_env_file=None, async_mode=mode))  # type: ignore[call-arg, arg-type]
    assert command[1:3] == server
