"""Liveness, readiness (database and broker reachable) and Prometheus metrics. Outside /api/v1."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import readiness

router = APIRouter(include_in_schema=False)


@router.get("/health/live")
async def live() -> dict:
    return {"status": "up"}


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    services = request.app.state.services
    checks = await readiness.checks(services)
    ok = all(v == "up" for v in checks.values())
    body = {"status": "up" if ok else "down", "checks": checks} | ({"workers": dict(services.workers)} if services.workers else {})
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
