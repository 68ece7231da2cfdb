"""The outbox relay: publishes outbox rows to Kafka, at least once.

A row is marked published only after the broker acknowledged it. Several relays may run: each claims a
batch under a lease (claims are taken one relay at a time, a PostgreSQL advisory lock or SQLite's single
writer), and skips rows whose subject has an earlier row leased to another relay, so events of one
subject keep their order. A relay that dies leaves its lease to expire; another takes the rows over
(consumers deduplicate by event id). The producer needs neither idempotence nor transactions, so the
same settings work on Apache Kafka and on the loopback Tansu broker."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import and_, delete, exists, or_, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from gateway.backoff import exponential_jitter
from gateway.db.models import OutboxEvent
from gateway.metrics import EVENTS_PUBLISHED, RELAY_ERRORS
from gateway.outbox.cloudevent import to_kafka
from gateway.services import Services
from gateway.workers import wait_or_stop

log = logging.getLogger("brb.relay")
CLAIM_LOCK = 7_340_118  # advisory lock id for claiming outbox rows
PRUNE_BATCH = 5_000  # outbox rows deleted per transaction by prune_published


def producer_for(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5,
        request_timeout_ms=10_000, retry_backoff_ms=200, client_id="brb-relay",
    )


class Relay:
    def __init__(self, services: Services, name: str | None = None):
        self.services = services
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._producer: AIOKafkaProducer | None = None
        self._wait = exponential_jitter(0.5, services.settings.broker_backoff_max_seconds, 0.5)

    async def claim(self) -> list[OutboxEvent]:
        settings = self.services.settings
        async with self.services.db.write() as session:
            if session.bind.dialect.name == "postgresql":
                await session.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=CLAIM_LOCK))
            now = self.services.clock.now()
            earlier = aliased(OutboxEvent)
            held_elsewhere = exists().where(
                earlier.key == OutboxEvent.key, earlier.id < OutboxEvent.id, earlier.published_at.is_(None),
                earlier.claimed_until >= now, earlier.claimed_by != self.name,
            )
            rows = (await session.exec(
                select(OutboxEvent).where(
                    OutboxEvent.published_at.is_(None),
                    or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until < now, OutboxEvent.claimed_by == self.name),
                    ~held_elsewhere,
                ).order_by(col(OutboxEvent.id)).limit(settings.relay_batch_size)
            )).all()
            until = now + timedelta(seconds=settings.relay_lease_seconds)
            if rows:  # one statement for the whole batch
                await session.exec(update(OutboxEvent).where(col(OutboxEvent.id).in_([r.id for r in rows]))
                                   .values(claimed_by=self.name, claimed_until=until, attempts=OutboxEvent.attempts + 1))
        return list(rows)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = producer_for(self.services.settings.kafka_bootstrap_servers)
            try:
                await producer.start()
                # learn both topics first: a batch that makes the broker create one topic while it sends to
                # another lost its first record for a whole request timeout (10 s) on the loopback broker
                for topic in self.services.topics.values():
                    await producer.partitions_for(topic)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception:  # noqa: BLE001 - a broken producer may fail to stop; it is discarded anyway
                pass

    async def publish_once(self) -> int:
        """Claim one batch and publish it; returns how many rows were confirmed by the broker."""
        rows = await self.claim()
        if not rows:
            return 0
        producer = await self._ensure_producer()
        futures = []
        for row in rows:
            msg = to_kafka(row)
            futures.append(await producer.send(row.topic, value=msg.value, key=msg.key, headers=list(msg.headers.items())))
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed_keys: set[str] = set()
        confirmed: list[int] = []
        for row, result in zip(rows, results):
            if isinstance(result, BaseException) or row.key in failed_keys:
                failed_keys.add(row.key)  # keep per-subject order: nothing after a failure counts
                continue
            confirmed.append(row.id)
        if confirmed:
            async with self.services.db.write() as session:
                await session.exec(
                    update(OutboxEvent).where(and_(col(OutboxEvent.id).in_(confirmed), OutboxEvent.claimed_by == self.name))
                    .values(published_at=self.services.clock.now(), claimed_until=None)
                )
            EVENTS_PUBLISHED.inc(len(confirmed))
        if failed_keys:
            raise KafkaError(f"{len(rows) - len(confirmed)} event(s) not acknowledged by the broker")
        return len(confirmed)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop``. A failed round (broker away, database error) is logged and retried
        after a backoff; it never ends the relay."""
        attempt = 0
        while not stop.is_set():
            try:
                published = await self.publish_once()
                attempt = 0
                delay = 0 if published else self.services.settings.relay_idle_seconds
            except Exception as exc:  # noqa: BLE001 - every failure is a failed round; the next one may work
                attempt += 1
                delay = self._wait(attempt)
                cause = _cause(exc)
                if cause != "database":  # the producer may be broken: start a new one next round
                    RELAY_ERRORS.inc()
                    await self._drop_producer()
                log.warning("relay.round-failed", exc_info=cause in ("database", "unexpected"),  # not for a network outage
                            extra={"cause": cause, "exc_type": exc.__class__.__name__, "attempt": attempt,
                                   "retry_in_seconds": round(delay, 2)})
            await wait_or_stop(stop, delay)
        await self._drop_producer()


def _cause(exc: Exception) -> str:
    if isinstance(exc, SQLAlchemyError):
        return "database"
    if isinstance(exc, (KafkaError, asyncio.TimeoutError)):
        return "broker"
    return "network" if isinstance(exc, OSError) else "unexpected"


async def prune_published(services: Services, older_than: timedelta = timedelta(days=7), batch: int = PRUNE_BATCH) -> int:
    """Delete outbox rows Kafka confirmed long ago (Kafka and the audit log keep what matters), at most
    ``batch`` rows a transaction, so a large backlog never becomes one huge transaction."""
    cutoff, pruned = services.clock.now() - older_than, 0
    while True:
        async with services.db.write() as session:
            due = select(OutboxEvent.id).where(OutboxEvent.published_at < cutoff).order_by(col(OutboxEvent.id)).limit(batch)
            deleted = (await session.exec(delete(OutboxEvent).where(col(OutboxEvent.id).in_(due)))).rowcount or 0
        pruned += deleted
        if deleted < batch:
            return pruned
