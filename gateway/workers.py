"""Background workers for the embedded mode (``BRB_RUN_WORKERS=true``): relay, dispatcher, retention.
In production each runs as its own process (``brb relay``, ``brb dispatcher``, ``brb retention``).
Each runs under ``supervise()``: a worker that raises is logged (``worker.crashed``) and restarted after a
bounded backoff, so a worker never ends silently while the process lives on.
The retention loop also writes the audit chain's signed checkpoints when ``BRB_AUDIT_CHECKPOINT_FILE`` is
set (every ``BRB_AUDIT_CHECKPOINT_INTERVAL_SECONDS``); ``brb audit checkpoint`` writes one on demand."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.backoff import exponential_jitter
from gateway.logs import bound
from gateway.services import Services

log = logging.getLogger("brb.workers")
HEALTHY_AFTER_SECONDS = 60.0  # a worker that ran this long before crashing starts its backoff afresh


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` unless ``stop`` is set first; True when the worker should stop."""
    if seconds <= 0:
        await asyncio.sleep(0)
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        pass
    return stop.is_set()


async def supervise(name: str, run: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event,
                    backoff_initial: float = 0.5, backoff_max: float = 30.0, states: dict[str, str] | None = None) -> None:
    """Run ``run(stop)`` until ``stop`` is set; after a crash (or an end nobody asked for) log it and
    start it again, waiting longer after each crash in a row (at most ``backoff_max`` seconds).
    ``states[name]`` says ``running`` or ``restarting`` (shown by /health/ready, ``Services.workers``)."""
    wait, loop, crashes = exponential_jitter(backoff_initial, backoff_max, backoff_initial), asyncio.get_running_loop(), 0
    states = {} if states is None else states
    with bound(worker=name):
        while not stop.is_set():
            started = loop.time()
            states[name] = "running"
            try:
                await run(stop)
                if stop.is_set():
                    return
                log.error("worker.ended", extra={"reason": "returned without being stopped"})
            except Exception:  # noqa: BLE001 - the supervisor is the backstop for every failure
                log.exception("worker.crashed")
            crashes = 1 if loop.time() - started >= HEALTHY_AFTER_SECONDS else crashes + 1
            states[name] = "restarting"
            delay = wait(crashes)
            if await wait_or_stop(stop, delay):
                return
            log.warning("worker.restarted", extra={"crashes_in_a_row": crashes, "waited_seconds": round(delay, 2)})


async def retention_round(services: Services) -> tuple[int, int]:
    """One round of housekeeping, the same for the loop and for ``brb retention --once`` (the CronJob):
    purge payload copies that are due, then prune confirmed outbox rows and expired jtis."""
    from gateway.auth.tokens import prune_used_tokens
    from gateway.exchange.retention import purge_due
    from gateway.outbox.relay import prune_published  # here: the relay imports wait_or_stop from this module

    purged = await purge_due(services)
    pruned = await prune_published(services) + await prune_used_tokens(services)
    if purged or pruned:
        log.info("retention.round-done", extra={"purged_copies": purged, "pruned_rows": pruned})
    return purged, pruned


async def checkpoint_round(services: Services) -> None:
    """Write a signed checkpoint of the audit chain if its head moved; a refusal is logged as an error
    (the chain does not extend the last checkpoint: someone cut or rewrote it)."""
    from gateway.audit.checkpoint import CheckpointRefused, write_checkpoint

    try:
        await write_checkpoint(services)
    except CheckpointRefused as exc:
        log.error("audit.checkpoint-refused", extra={"reason": exc.reason})


async def retention_loop(services: Services, stop: asyncio.Event) -> None:
    """Retention rounds every ``retention_interval_seconds`` and, with a checkpoint file configured,
    audit checkpoints every ``audit_checkpoint_interval_seconds``, each when it is due."""
    settings, loop = services.settings, asyncio.get_running_loop()
    rounds = [(retention_round, lambda: settings.retention_interval_seconds, "retention")]
    if settings.audit_checkpoint_file:
        rounds.append((checkpoint_round, lambda: settings.audit_checkpoint_interval_seconds, "audit-checkpoint"))
    due = [loop.time()] * len(rounds)
    while not stop.is_set():
        for i, (work, interval, name) in enumerate(rounds):
            if loop.time() >= due[i]:
                try:
                    await work(services)
                except Exception:  # noqa: BLE001 - try again next round
                    log.warning("retention.round-failed", exc_info=True, extra={"round": name})
                due[i] = loop.time() + interval()
        await wait_or_stop(stop, max(0.0, min(due) - loop.time()))


def worker_tasks(services: Services, stop: asyncio.Event) -> list[asyncio.Task]:
    """The three workers of the embedded mode, each supervised."""
    from gateway.outbox.relay import Relay
    from gateway.webhooks.dispatcher import Dispatcher

    backoff_max = services.settings.broker_backoff_max_seconds
    workers = {
        "relay": lambda s: Relay(services).run(s),
        "dispatcher": lambda s: Dispatcher(services).run(s),
        "retention": lambda s: retention_loop(services, s),
    }
    return [asyncio.create_task(supervise(name, run, stop, backoff_max=backoff_max, states=services.workers), name=name)
            for name, run in workers.items()]
