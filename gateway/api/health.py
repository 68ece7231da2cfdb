"""Liveness, readiness (database and broker reachable, no embedded worker stuck) and Prometheus metrics.
Outside /api/v1. Worker processes serve the same three on their own port (gateway/worker_health.py)."""
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
    status, body = await readiness.report(request.app.state.services)
    return JSONResponse(body, status_code=status)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
