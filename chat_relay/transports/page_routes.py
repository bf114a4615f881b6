"""The web page: the built React app from frontend/dist at `/`, and `GET /models` for its model picker."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, jsonify, send_from_directory

from ..wiring import current_services

# Built by `make build` (Vite); served from the relay's own origin, so the page needs no CORS.
DIST = Path(__file__).resolve().parents[2] / "frontend" / "dist"
ASSET_MAX_AGE = 365 * 24 * 3600  # Vite puts a content hash in every asset name

bp = Blueprint("page", __name__)

NOT_BUILT = (
    "The web page is not built yet. Run `make build` (or `cd frontend && npm ci && npm run build`), "
    "then reload. The relay itself is running: see docs/protocol.md.\n"
)


@bp.get("/")
def index() -> Response:
    """The page; a plain message naming the build command when it has not been built."""
    if not (DIST / "index.html").is_file():
        return Response(NOT_BUILT, status=503, mimetype="text/plain")
    response = send_from_directory(DIST, "index.html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"  # always revalidate, so a new build is picked up
    return response


@bp.get("/assets/<path:name>")
def asset(name: str) -> Response:
    """The page's scripts and styles; send_from_directory refuses paths that leave the folder."""
    return send_from_directory(DIST / "assets", name, max_age=ASSET_MAX_AGE)


@bp.get("/models")
def models() -> Response:
    """The models a client may ask for, and the one used when it names none."""
    settings = current_services().settings
    return jsonify(models=settings.allowed_models, default=settings.openai_model)
