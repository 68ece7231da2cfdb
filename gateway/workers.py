"""Background workers for the embedded mode (``BRB_RUN_WORKERS=true``): relay, dispatcher, retention.
In production each runs as its own process (``brb relay``, ``brb dispatcher``, ``brb retention``).
The retention loop also writes the audit chain's signed checkpoints when ``BRB_AUDIT_CHECKPOINT_FILE`` is
set (every ``BRB_AUDIT_CHECKPOINT_INTERVAL_SECONDS``); ``brb audit checkpoint`` writes one on demand."""
from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.audit.checkpoint import CheckpointRefused, write_checkpoint
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


async def checkpoint_round(services: Services) -> None:
    """Write a signed checkpoint of the audit chain if its head moved; a refusal is logged as an error
    (the chain does not extend the last checkpoint: someone cut or rewrote it)."""
    try:
        await write_checkpoint(services)
    except CheckpointRefused as exc:
        log.error("audit checkpoint refused: %s", exc.reason)


async def retention_loop(services: Services, stop: asyncio.Event) -> None:
    """Retention rounds every ``retention_interval_seconds`` and, with a checkpoint file configured,
    audit checkpoints every ``audit_checkpoint_interval_seconds``, each when it is due."""
    settings, loop = services.settings, asyncio.get_running_loop()
    rounds = [(retention_round, lambda: settings.retention_interval_seconds, "retention")]
    if settings.audit_checkpoint_file:
        rounds.append((checkpoint_round, lambda: settings.audit_checkpoint_interval_seconds, "audit checkpoint"))
    due = [loop.time()] * len(rounds)
    while not stop.is_set():
        for i, (work, interval, name) in enumerate(rounds):
            if loop.time() >= due[i]:
                try:
                    await work(services)
                except Exception as exc:  # noqa: BLE001 - try again next round
                    log.warning("%s round failed: %s", name, exc.__class__.__name__, exc_info=True)
                due[i] = loop.time() + interval()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, min(due) - loop.time()))


def worker_tasks(services: Services, stop: asyncio.Event) -> list[asyncio.Task]:
    return [
        asyncio.create_task(Relay(services).run(stop), name="relay"),
        asyncio.create_task(Dispatcher(services).run(stop), name="dispatcher"),
        asyncio.create_task(retention_loop(services, stop), name="retention"),
    ]
