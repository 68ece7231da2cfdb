"""Is this process ready to serve: its database answers, its broker accepts connections, and none of its
workers is stuck. The gateway's embedded workers (``BRB_RUN_WORKERS``) and a worker process's own worker
are reported beside the checks (state, last finished round, last error): a worker that is restarting after
a crash, or that set an item aside, is shown but keeps the process in service; a worker with no finished
round within its window (``gateway.workers.WorkerHealth.stuck``) takes it out (503)."""
from __future__ import annotations

import asyncio

from sqlalchemy import text

from gateway.services import Services


async def broker_reachable(bootstrap: str) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), 2)
            writer.close()
            return True
        except (OSError, asyncio.TimeoutError, ValueError):
            continue
    return False


async def checks(services: Services, broker: bool = True) -> dict[str, str]:
    """Each dependency, "up" or "down" (the broker only when ``broker``: retention needs none)."""
    result = {"database": "up"} | ({"broker": "up"} if broker else {})
    try:
        async with services.db.read() as session:
            await session.exec(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means not ready
        result["database"] = "down"
    if broker and not await broker_reachable(services.settings.kafka_bootstrap_servers):
        result["broker"] = "down"
    return result


async def report(services: Services, broker: bool = True) -> tuple[int, dict]:
    """The readiness answer, (HTTP status, body), for the gateway and for a worker process alike:
    ``{"status", "checks", "workers"?}``; 503 when a check is down or a worker is stuck."""
    result = await checks(services, broker)
    workers = {name: health.view() for name, health in services.workers.items()}
    ok = all(v == "up" for v in result.values()) and all(w["state"] != "stuck" for w in workers.values())
    body = {"status": "up" if ok else "down", "checks": result} | ({"workers": workers} if workers else {}) | {"keys": keys(services)}
    return (200 if ok else 503), body


def keys(services: Services) -> dict:
    """The payload ring keys this process holds and the one it seals with (gateway/keyrotation.py)."""
    return {"held": services.keyring.held, "current": services.keyring.current_id}
