"""The page's server side through Flask's test client: /, its assets, GET /models, and the not-built message."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from app import create_app
from chat_relay.config import Settings
from chat_relay.transports import page_routes as page


@pytest.fixture
def app() -> Flask:
    settings = Settings(openai_base_url="http://127.0.0.1:9/v1", openai_model="m1", allowed_models=["m2", "m3"],
                        async_mode="threading", _env_file=None)
    return create_app(settings)


@pytest.fixture
def dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "assets").mkdir()
    monkeypatch.setattr(page, "DIST", tmp_path)
    return tmp_path


def test_models_lists_the_allowed_models_and_the_default(app: Flask) -> None:
    response = app.test_client().get("/models")
    assert response.status_code == 200
    assert response.get_json() == {"models": ["m1", "m2", "m3"], "default": "m1"}


def test_the_built_page_is_served_at_the_root_with_its_assets(app: Flask, dist: Path) -> None:
    (dist / "index.html").write_text('<div id="root"></div><script src="/assets/index-abc.js"></script>')
    (dist / "assets" / "index-abc.js").write_text("console.log(1)")
    client = app.test_client()
    index = client.get("/")
    assert index.status_code == 200 and index.mimetype == "text/html"
    assert index.headers["Cache-Control"] == "no-cache"
    asset = client.get("/assets/index-abc.js")
    assert asset.status_code == 200 and asset.text == "console.log(1)"
    assert "max-age=31536000" in asset.headers["Cache-Control"]


def test_paths_outside_the_build_are_refused(app: Flask, dist: Path) -> None:
    (dist.parent / "secret.txt").write_text("no")
    response = app.test_client().get("/assets/../../secret.txt")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_without_a_build_the_root_says_how_to_build(app: Flask, dist: Path) -> None:
    response = app.test_client().get("/")
    assert response.status_code == 503
    assert "make build" in response.text


def test_a_missing_asset_is_a_json_404(app: Flask, dist: Path) -> None:
    response = app.test_client().get("/assets/nope.js")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "invalid_request"
