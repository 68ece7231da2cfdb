"""Liveness, readiness (database and broker reachable) and Prometheus metrics. Outside /api/v1."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

router = APIRouter(include_in_schema=False)


@router.get("/health/live")
async def live() -> dict:
    return {"status": "up"}


async def _broker_reachable(bootstrap: str) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), 2)
            writer.close()
            return True
        except (OSError, asyncio.TimeoutError, ValueError):
            continue
    return False


@router.get("/health/ready")
async def ready(request: Request) -> Response:
    services = request.app.state.services
    checks = {"database": "up", "broker": "up"}
    try:
        async with services.db.read() as session:
            await session.exec(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means not ready
        checks["database"] = "down"
    if not await _broker_reachable(services.settings.kafka_bootstrap_servers):
        checks["broker"] = "down"
    ok = all(v == "up" for v in checks.values())
    return JSONResponse({"status": "up" if ok else "down", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
