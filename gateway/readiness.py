"""Is this gateway ready to serve: its database answers and its broker accepts connections. The
embedded workers (``BRB_RUN_WORKERS``) are reported beside the checks: a worker that is restarting after
a crash is shown, but does not take the gateway out of service (its API still works)."""
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


async def checks(services: Services) -> dict[str, str]:
    """Each dependency, "up" or "down"."""
    result = {"database": "up", "broker": "up"}
    try:
        async with services.db.read() as session:
            await session.exec(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any failure means not ready
        result["database"] = "down"
    if not await broker_reachable(services.settings.kafka_bootstrap_servers):
        result["broker"] = "down"
    return result
