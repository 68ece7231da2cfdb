"""Background workers for the embedded mode (``BRB_RUN_WORKERS=true``): relay, dispatcher, retention (which
also runs the deadline job of gateway/trajectory/monitor.py and the triage's review of gateway/triage/review.py).
In production each runs as its own process (``brb relay``, ``brb dispatcher``, ``brb retention``).
Each runs under ``supervise()``: a worker that raises is logged (``worker.crashed``) and restarted after a
bounded backoff, so a worker never ends silently while the process lives on. Each reports its rounds to a
``WorkerHealth`` (``round_done()``, ``round_failed()``, ``item_failed()``): readiness shows when it last
finished one, and a worker with no finished round for ``stuck_after`` seconds is ``stuck`` (readiness 503),
which a crash-and-restart loop or a hung round cannot hide.
The retention loop also writes the audit chain's signed checkpoints when ``BRB_AUDIT_CHECKPOINT_FILE`` is
set (every ``BRB_AUDIT_CHECKPOINT_INTERVAL_SECONDS``); ``brb audit checkpoint`` writes one on demand."""
from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.backoff import exponential_jitter
from gateway.clock import Clock
from gateway.logs import bound
from gateway.metrics import WORKER_FAILURES, WORKER_LAST_SUCCESS
from gateway.services import Services

log = logging.getLogger("brb.workers")
HEALTHY_AFTER_SECONDS = 60.0  # a worker that ran this long before crashing starts its backoff afresh
DISPATCHER_INTERVAL_SECONDS = 1.0  # a dispatcher round: one poll of the consumer (0.5 s) and one send round


@dataclass
class WorkerHealth:
    """What readiness says about one worker: its supervisor's state, when it last finished a round (of
    every one of its ``parts``: the dispatcher's consumer and sender each), and its last error (a short
    reason, never data). Times come from ``clock`` (tests move it)."""

    name: str
    stuck_after: float  # seconds without a finished round before the worker counts as stuck
    clock: Clock = field(default_factory=Clock)
    parts: tuple[str, ...] = ("round",)
    state: str = "running"
    since: datetime | None = None  # when it was registered: the window of a worker that never finished a round
    successes: dict[str, datetime] = field(default_factory=dict)
    last_error: str | None = None
    item_failures: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.since = self.since or self.clock.now()

    @property
    def last_success(self) -> datetime | None:
        """When every part last finished a round (the oldest of them); None before each finished one."""
        if any(p not in self.successes for p in self.parts):
            return None
        return min(self.successes[p] for p in self.parts)

    def succeeded(self, part: str = "round") -> None:
        self.successes[part] = self.clock.now()
        if (last := self.last_success) is not None:
            WORKER_LAST_SUCCESS.labels(self.name).set(last.timestamp())

    def stuck(self) -> bool:
        since = self.last_success or self.since
        return (self.clock.now() - since).total_seconds() > self.stuck_after

    def view(self) -> dict:
        """The readiness entry: state (``stuck`` overrides the supervisor's), lastSuccessAt, lastError."""
        last = self.last_success
        entry = {"state": "stuck" if self.stuck() else self.state,
                 "lastSuccessAt": last.isoformat().replace("+00:00", "Z") if last else None, "lastError": self.last_error}
        return entry | ({"itemFailures": dict(self.item_failures)} if self.item_failures else {})


def stuck_after(services: Services, interval: float) -> float:
    s = services.settings
    return max(s.worker_stuck_min_seconds, s.worker_stuck_factor * interval)


def register(services: Services, name: str) -> WorkerHealth:
    """The health record of worker ``name`` (relay, dispatcher, retention) in ``services.workers``,
    with a stuck window from its interval."""
    s = services.settings
    intervals = {"relay": s.relay_idle_seconds, "dispatcher": DISPATCHER_INTERVAL_SECONDS,
                 "retention": min([s.retention_interval_seconds, s.deadline_interval_seconds]
                                  + ([s.audit_checkpoint_interval_seconds] if s.audit_checkpoint_file else []))}
    parts = ("consume", "deliver") if name == "dispatcher" else ("round",)
    health = WorkerHealth(name, stuck_after(services, intervals.get(name, 1.0)), services.clock, parts)
    services.workers[name] = health
    return health


_current: contextvars.ContextVar[WorkerHealth | None] = contextvars.ContextVar("brb_worker_health", default=None)


def round_done(part: str = "round") -> None:
    """The running worker finished a round (a no-op outside a supervised worker)."""
    if (health := _current.get()) is not None:
        health.succeeded(part)


def round_failed(reason: str) -> None:
    """The running worker's round failed (``reason``: a cause and an exception type, never a message)."""
    if (health := _current.get()) is not None:
        health.last_error = reason


def item_failed(worker: str, reason: str, detail: str) -> None:
    """One item was set aside (dead-lettered, passed over) and the worker went on: counted by ``reason``
    (a short stable code) and shown by readiness as the worker's last error (``detail``: ids, no data)."""
    WORKER_FAILURES.labels(worker, reason).inc()
    if (health := _current.get()) is not None:
        health.item_failures[reason] = health.item_failures.get(reason, 0) + 1
        health.last_error = f"{reason}: {detail}"


async def wait_or_stop(stop: asyncio.Event, seconds: float, also: asyncio.Event | None = None) -> bool:
    """Wait ``seconds`` unless ``stop`` (or ``also``: there is work) is set first; True when the worker should stop."""
    if seconds <= 0 or (also is not None and also.is_set()):
        await asyncio.sleep(0)
        return stop.is_set()
    waits = [asyncio.ensure_future(e.wait()) for e in (stop, also) if e is not None]
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return stop.is_set()


async def supervise(name: str, run: Callable[[asyncio.Event], Awaitable[None]], stop: asyncio.Event,
                    backoff_initial: float = 0.5, backoff_max: float = 30.0, health: WorkerHealth | None = None) -> None:
    """Run ``run(stop)`` until ``stop`` is set; after a crash (or an end nobody asked for) log it and
    start it again, waiting longer after each crash in a row (at most ``backoff_max`` seconds).
    ``health.state`` says ``running`` or ``restarting`` (shown by /health/ready); the worker reports its
    rounds to ``health`` through ``round_done()`` and friends."""
    wait, loop = exponential_jitter(backoff_initial, backoff_max, backoff_initial), asyncio.get_running_loop()
    health = health or WorkerHealth(name, float("inf"))
    token = _current.set(health)
    try:
        with bound(worker=name):
            await _supervised(run, stop, wait, loop, health)
    finally:
        _current.reset(token)


async def _supervised(run, stop: asyncio.Event, wait, loop, health: WorkerHealth) -> None:
    crashes = 0
    while not stop.is_set():
        started = loop.time()
        health.state = "running"
        try:
            await run(stop)
            if stop.is_set():
                return
            log.error("worker.ended", extra={"reason": "returned without being stopped"})
            health.last_error = "ended: returned without being stopped"
        except Exception as exc:  # noqa: BLE001 - the supervisor is the backstop for every failure
            log.exception("worker.crashed")
            health.last_error = f"crashed: {exc.__class__.__name__}"
        crashes = 1 if loop.time() - started >= HEALTHY_AFTER_SECONDS else crashes + 1
        health.state = "restarting"
        delay = wait(crashes)
        if await wait_or_stop(stop, delay):
            return
        log.warning("worker.restarted", extra={"crashes_in_a_row": crashes, "waited_seconds": round(delay, 2)})


async def retention_round(services: Services) -> tuple[int, int]:
    """One round of housekeeping, the same for the loop and for ``brb retention --once`` (the CronJob):
    purge payload copies that are due, then prune confirmed outbox rows, expired jtis and the audit pages' sessions
    that ended or expired 30 days ago."""
    from gateway.auth.tokens import prune_used_tokens
    from gateway.exchange.retention import purge_due
    from gateway.outbox.relay import prune_published  # here: the relay imports wait_or_stop from this module
    from gateway.pages.officer import prune_sessions

    purged = await purge_due(services)
    pruned = await prune_published(services) + await prune_used_tokens(services) + await prune_sessions(services)
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
    """Retention rounds every ``retention_interval_seconds``, the deadline job and the triage's review by time
    (gateway/triage/review.py) every ``deadline_interval_seconds``
    and, with a checkpoint file configured, audit checkpoints every ``audit_checkpoint_interval_seconds``, each
    when it is due."""
    from gateway.trajectory.monitor import deadline_round
    from gateway.triage.review import triage_round

    settings, loop = services.settings, asyncio.get_running_loop()
    rounds = [(retention_round, lambda: settings.retention_interval_seconds, "retention"),
              (deadline_round, lambda: settings.deadline_interval_seconds, "deadlines"),
              (triage_round, lambda: settings.deadline_interval_seconds, "triage")]
    if settings.audit_checkpoint_file:
        rounds.append((checkpoint_round, lambda: settings.audit_checkpoint_interval_seconds, "audit-checkpoint"))
    due = [loop.time()] * len(rounds)
    while not stop.is_set():
        worked, failed = False, False
        for i, (work, interval, name) in enumerate(rounds):
            if loop.time() >= due[i]:
                worked = True
                try:
                    await work(services)
                except Exception as exc:  # noqa: BLE001 - try again next round
                    failed = True
                    log.warning("retention.round-failed", exc_info=True, extra={"round": name})
                    round_failed(f"{name}: {exc.__class__.__name__}")
                due[i] = loop.time() + interval()
        if worked and not failed:
            round_done()
        await wait_or_stop(stop, max(0.0, min(due) - loop.time()))


def run_worker(services: Services, name: str) -> Callable[[asyncio.Event], Awaitable[None]]:
    """``run(stop)`` of worker ``name``: relay, dispatcher or retention."""
    from gateway.outbox.relay import Relay
    from gateway.webhooks.dispatcher import Dispatcher

    return {
        "relay": lambda s: Relay(services).run(s),
        "dispatcher": lambda s: Dispatcher(services).run(s),
        "retention": lambda s: retention_loop(services, s),
    }[name]


def worker_tasks(services: Services, stop: asyncio.Event) -> list[asyncio.Task]:
    """The three workers of the embedded mode, each supervised and registered in ``services.workers``."""
    backoff_max = services.settings.broker_backoff_max_seconds
    return [asyncio.create_task(supervise(name, run_worker(services, name), stop, backoff_max=backoff_max,
                                          health=register(services, name)), name=name)
            for name in ("relay", "dispatcher", "retention")]
