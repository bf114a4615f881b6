"""Every module of the library and the app imports: a renamed module that another still imports by its old name
fails here at once (mypy's --ignore-missing-imports would let it pass)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import app
import chat_relay

# app.wsgi builds the app at import, which needs an upstream; app.__main__ serves.
SKIP = {"app.wsgi", "app.__main__"}
MODULES = sorted(m.name for pkg in (chat_relay, app) for m in pkgutil.walk_packages(pkg.__path__, f"{pkg.__name__}.")
                 if m.name not in SKIP)


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name: str) -> None:
    importlib.import_module(name)
