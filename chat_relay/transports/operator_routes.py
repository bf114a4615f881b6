"""What operators' tools ask, beside `/healthz` (liveness, in http_routes.py): `GET /readyz` for load balancers and
`GET /metrics` for Prometheus (docs/protocol.md, "Operations")."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, request

from ..wiring import current_services

bp = Blueprint("operations", __name__)


@bp.get("/readyz")
def readyz() -> Response:
    """200 while this instance should get new streams; 503, with the reasons, while it drains or Redis is away."""
    reasons = current_services().readiness.reasons()
    if reasons:
        response = jsonify(status="not_ready", reasons=reasons)
        response.status_code = 503
        return response
    return jsonify(status="ready")


@bp.get("/metrics")
def metrics() -> Response:
    """The metrics, for a scraper METRICS_ALLOW permits (chat_relay/access/metrics_access.py); a 404 for anyone else."""
    services = current_services()
    if not services.metrics_access.allowed(request.environ):
        abort(404)
    body, content_type = services.metrics.exposition(request.headers.get("Accept"))
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
