"""What a request needs, built once per app from the settings: database, keys, catalogue, clock."""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

import consent
from contracts.parties import SYSTEM_OIN
from consent.catalogue import Catalogue
from gateway import telemetry
from gateway.audit.chain import AuditChain
from gateway.audit.record import Activity, AuditEntry
from gateway.clock import Clock
from gateway.crypto import KeyRing, ring_from_settings
from gateway.db.engine import Database, core, create_engine
from gateway.db.models import OutboxEvent
from gateway.outbox.events import Event, audit_recorded, outbox_values
from gateway.pseudonym import Pseudonymizer
from gateway.receipts import ReceiptSigner
from gateway.settings import Settings
from gateway.trajectory.norms import Norms, load as load_norms
from gateway.triage.evaluator import Rules, load as load_som


@dataclass
class Actor:
    """Who is acting in a unit of work: the calling organisation and its token, or the system."""

    oin: str
    kind: str
    token_id: str | None = None
    scope: str | None = None
    jti_claim: Any = None  # gateway.auth.tokens.JtiClaim: the token's jti, recorded inside this unit of work


SYSTEM = Actor(oin=SYSTEM_OIN, kind="system")

# An explicit trace id, bound by hand (a test, a job without a span); normally unset, and the trace id
# is the OpenTelemetry one of the current span (gateway/telemetry.py): for a request, the caller's W3C
# `traceparent` when it sends a valid one (so its own Logboek can be joined with ours), otherwise new.
# Every log line and every audit record of the request carries it: one trace id, not two.
current_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_trace_id", default=None)


def active_trace_id() -> str | None:
    return current_trace_id.get() or telemetry.trace_id()


@dataclass
class Services:
    settings: Settings
    db: Database
    keyring: KeyRing
    pseudonyms: Pseudonymizer
    audit: AuditChain
    catalogue: Catalogue
    receipts: ReceiptSigner  # the gateway's signature on its receipts (gateway/receipts.py)
    norms: Norms = field(default_factory=load_norms)  # the chain's process norms (gateway/trajectory/norms.yaml)
    som: Rules = field(default_factory=load_som)  # the SOM triage's criteria (gateway/triage/som.yaml)
    clock: Clock = field(default_factory=Clock)
    workers: dict[str, Any] = field(default_factory=dict)  # name -> gateway.workers.WorkerHealth (readiness)
    key_cache: Any = None  # gateway.auth.keycache.KeyCache, made on first use
    # set when a unit of work committed outbox rows: a relay in this process (BRB_RUN_WORKERS) publishes them at
    # once instead of at its next idle poll (gateway/outbox/relay.py); a relay process of its own polls
    outbox_written: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Services":
        settings.require_secrets()
        telemetry.configure(settings.otel_exporter_otlp_endpoint, settings.otel_service_name)
        return cls(
            settings=settings,
            db=Database(create_engine(settings.database_url, settings.database_schema)),
            keyring=ring_from_settings(settings),
            pseudonyms=Pseudonymizer(settings.pseudonym_key.get_secret_value().encode()),
            audit=AuditChain(settings.audit_chain_key.get_secret_value().encode()),
            catalogue=consent.load(),
            receipts=ReceiptSigner.from_settings(settings),
            norms=load_norms(days=settings.deadline_days),
        )

    @property
    def topics(self) -> dict[str, str]:
        return {"events": self.settings.events_topic, "audit": self.settings.audit_topic}

    @contextlib.asynccontextmanager
    async def unit_of_work(self, actor: Actor, trace_id: str | None = None) -> AsyncIterator["UnitOfWork"]:
        """ONE transaction: the caller's token (its jti, when the request defers it here), the caller's
        rows, then its audit records and outbox rows, then commit."""
        claim = actor.jti_claim
        async with self.db.write() as session:
            if claim is not None and not claim.consumed:
                from gateway.auth.tokens import consume_jti  # the replay guard, in this transaction

                await consume_jti(session, claim)
            uow = UnitOfWork(self, session, await core(session), actor, trace_id or active_trace_id() or uuid.uuid4().hex)
            yield uow
            await uow.seal()
        if claim is not None:
            claim.consumed = True  # committed: the token's jti is spent
        if uow.wrote_events:
            self.outbox_written.set()


_INSERT_OUTBOX = insert(OutboxEvent.__table__)


class UnitOfWork:
    """What one state-changing request writes, in its one transaction. Audit records and outbox rows are
    collected and written at the end, each kind in one statement: the audit chain's head row is locked
    only for those last statements, and a send with three recipients costs no more round trips than one."""

    def __init__(self, services: Services, session: AsyncSession, connection: AsyncConnection, actor: Actor, trace_id: str):
        self.services = services
        self.session = session  # for ORM objects the work changes; they are flushed at commit
        self.connection = connection  # the same transaction, for Core statements (gateway/db/engine.py core)
        self.actor = actor
        self.trace_id = trace_id
        self.now = services.clock.now()
        self._audit: list[AuditEntry] = []
        self._outbox: list[dict] = []

    def audit(self, activity: Activity, outcome: str, **kwargs) -> None:
        self._audit.append(AuditEntry(activity=Activity(activity).value, actor_oin=self.actor.oin, outcome=outcome, **kwargs))

    def emit(self, event: Event) -> None:
        """Publish ``event`` (built by its function in gateway/outbox/events.py) with this transaction;
        the current trace context goes with it (the CloudEvent's distributed-tracing extension)."""
        self._outbox.append(outbox_values(event, self.now, self.services.topics, telemetry.traceparent()))

    @property
    def wrote_events(self) -> bool:
        return bool(self._outbox)

    async def seal(self) -> None:
        records = await self.services.audit.append(
            self.connection, self._audit, trace_id=self.trace_id, token_id=self.actor.token_id,
            scope=self.actor.scope, now=self.now,
        )
        for r in records:
            self.emit(audit_recorded(r))
        if self._outbox:
            await self.connection.execute(_INSERT_OUTBOX, self._outbox)  # one executemany


async def in_batches(services: Services, query, params: dict, act, batch: int) -> int:
    """A job's rows a batch per transaction (the system's unit of work): ``act(uow, rows)`` on what ``query`` finds
    (at most ``batch`` rows, which ``act`` takes out of the query's reach), until a batch comes back short; the sum
    of what ``act`` returns. The deadline job and the triage's review by time run on it."""
    done = 0
    while True:
        async with services.unit_of_work(SYSTEM) as uow:
            rows = (await uow.connection.execute(query, params)).all()
            if rows:
                done += await act(uow, rows)
        if len(rows) < batch:
            return done
