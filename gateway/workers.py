"""Background workers for the embedded mode (``BRB_RUN_WORKERS=true``): relay, dispatcher, retention.
In production each runs as its own process (``brb relay``, ``brb dispatcher``, ``brb retention``)."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.auth.tokens import prune_used_tokens
from gateway.exchange.retention import purge_due
from gateway.outbox.relay import Relay, prune_published
from gateway.services import Services
from gateway.webhooks.dispatcher import Dispatcher

log = logging.getLogger("brb.workers")


async def retention_round(services: Services) -> tuple[int, int]:
    """One round of housekeeping, the same for the loop and for ``brb retention --once`` (the CronJob):
    purge payload copies that are due, then prune confirmed outbox rows and expired jtis."""
    purged = await purge_due(services)
    pruned = await prune_published(services) + await prune_used_tokens(services)
    if purged or pruned:
        log.info("retention: purged %d cop(ies), pruned %d outbox row(s) and expired jti(s)", purged, pruned)
    return purged, pruned


async def retention_loop(services: Services, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await retention_round(services)
        except Exception as exc:  # noqa: BLE001 - try again next round
            log.warning("retention round failed: %s", exc.__class__.__name__)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), services.settings.retention_interval_seconds)


def worker_tasks(services: Services, stop: asyncio.Event) -> list[asyncio.Task]:
    return [
        asyncio.create_task(Relay(services).run(stop), name="relay"),
        asyncio.create_task(Dispatcher(services).run(stop), name="dispatcher"),
        asyncio.create_task(retention_loop(services, stop), name="retention"),
    ]
