"""The outbox relay: publishes outbox rows to Kafka, at least once.

A row is marked published only after the broker acknowledged it. Several relays may run: each claims a
batch under a lease (claims are taken one relay at a time, a PostgreSQL advisory lock or SQLite's single
writer), and skips rows whose subject has an earlier row leased to another relay, so events of one
subject keep their order. A relay that dies leaves its lease to expire; another takes the rows over
(consumers deduplicate by event id). The producer needs neither idempotence nor transactions, so the
same settings work on Apache Kafka and on the loopback Tansu broker.

An event of stream "events" goes to ``<prefix>.events`` and to ``<prefix>.org.<oin>`` for each OIN in its
``data.parties`` (an organisation is allowed to read only its own topic); the row counts as published
only when the broker confirmed every copy. The relay creates a missing organisation topic the first time
it needs it, like the events topic (its partitions and replication factor). A row that can never be
published (not serialisable, too large, a party that is no OIN) is set aside, counted and logged, and the
relay goes on: ``claimed_by`` becomes ``set-aside:<reason>`` with a lease that never ends."""
from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import uuid
from datetime import datetime, timedelta, timezone

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (CorruptRecordException, InvalidTopicError, KafkaError, MessageSizeTooLargeError,
                             RecordListTooLargeError, RecordTooLargeError, TopicAlreadyExistsError, for_code)
from sqlalchemy import and_, delete, exists, func, or_, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from gateway.backoff import exponential_jitter
from gateway.db.models import OutboxEvent
from gateway.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, RELAY_ERRORS
from gateway.outbox.cloudevent import to_kafka
from gateway.services import Services
from gateway.telemetry import traced
from gateway.workers import item_failed, round_done, round_failed, wait_or_stop

log = logging.getLogger("brb.relay")
CLAIM_LOCK = 7_340_118  # advisory lock id for claiming outbox rows
PRUNE_BATCH = 5_000  # outbox rows deleted per transaction by prune_published
SET_ASIDE = "set-aside:"  # claimed_by of a row the relay gave up on, followed by the reason
NEVER = datetime(9999, 1, 1, tzinfo=timezone.utc)  # the lease of a set-aside row: no relay claims it again
OIN = re.compile(r"[0-9]{20}")
# broker answers that sending the same record again cannot change: the row is set aside
POISON = {MessageSizeTooLargeError: "too-large", RecordTooLargeError: "too-large", RecordListTooLargeError: "too-large",
          InvalidTopicError: "invalid-topic", CorruptRecordException: "corrupt-record"}


class Poison(Exception):
    """A row that can never be published; ``reason`` is a short stable code (a metric label)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def org_topic(prefix: str, oin: str) -> str:
    """The topic of one organisation: only it may read it (docs/events.md)."""
    return f"{prefix}.org.{oin}"


def producer_for(bootstrap: str, **security) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **security, bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5,
        request_timeout_ms=10_000, retry_backoff_ms=200, client_id="brb-relay",
    )


class Relay:
    def __init__(self, services: Services, name: str | None = None):
        self.services = services
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._producer: AIOKafkaProducer | None = None
        self._known: set[str] = set()  # topics the producer has metadata for (created when missing)
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
                ~earlier.claimed_by.startswith(SET_ASIDE),  # a set-aside row holds up nothing after it
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
            producer = producer_for(self.services.settings.kafka_bootstrap_servers, **self.services.settings.kafka_options())
            try:
                await producer.start()
                # learn both topics first: a batch that makes the broker create one topic while it sends to
                # another lost its first record for a whole request timeout (10 s) on the loopback broker
                for topic in self.services.topics.values():
                    await producer.partitions_for(topic)
            except BaseException:
                await producer.stop()
                raise
            self._producer, self._known = producer, set(self.services.topics.values())
        return self._producer

    def copies(self, row: OutboxEvent) -> list[str]:
        """The topics ``row`` goes to: its own, and for the events topic each party's organisation topic."""
        settings = self.services.settings
        if row.topic != settings.events_topic:
            return [row.topic]
        parties = row.data.get("parties") or []
        bad = [p for p in parties if not isinstance(p, str) or not OIN.fullmatch(p)]
        if bad:
            raise Poison("invalid-party", f"{len(bad)} party value(s) that are no OIN")
        return [row.topic, *(org_topic(settings.kafka_topic_prefix, oin) for oin in sorted(set(parties)))]

    async def _ensure_topics(self, producer: AIOKafkaProducer, topics: set[str]) -> None:
        """Create the organisation topics this batch needs and the broker lacks (once per producer), shaped
        like the events topic; a topic someone else created meanwhile is fine. Then learn their partitions
        before sending (see ``_ensure_producer``)."""
        missing = topics - self._known
        if not missing:
            return
        cluster = await producer.client.fetch_all_metadata()
        absent = sorted(t for t in missing if not cluster.partitions_for_topic(t))
        if absent:
            events = cluster._partitions.get(self.services.settings.events_topic) or {}  # noqa: SLF001 - no public view of replicas
            partitions = len(events) or 1
            replicas = max((len(m.replicas) for m in events.values()), default=1)
            admin = AIOKafkaAdminClient(bootstrap_servers=self.services.settings.kafka_bootstrap_servers,
                                        client_id="brb-relay", request_timeout_ms=10_000,
                                        **self.services.settings.kafka_options())
            await admin.start()
            try:
                answer = await admin.create_topics([NewTopic(t, partitions, replicas) for t in absent])
            finally:
                await admin.close()
            for topic, code, *_ in answer.topic_errors:
                if code and for_code(code) is not TopicAlreadyExistsError:
                    raise for_code(code)(f"creating {topic}")
            log.info("relay.topics-created", extra={"topics": absent, "partitions": partitions, "replicas": replicas})
        for topic in sorted(missing):
            await producer.partitions_for(topic)
            self._known.add(topic)

    async def _drop_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer, self._known = self._producer, None, set()
            try:
                await asyncio.wait_for(producer.stop(), 5)
            except Exception:  # noqa: BLE001 - a broken producer may fail to stop; it is discarded anyway
                pass

    async def publish_once(self) -> int:
        """Claim one batch and publish it; returns how many rows were settled: confirmed by the broker
        (every copy) or set aside. Raises when some copy was not acknowledged (those rows are sent again)."""
        rows = await self.claim()
        return await self._publish(rows) if rows else 0

    @traced("relay.publish")  # a span per batch that went out, none for an idle round
    async def _publish(self, rows: list[OutboxEvent]) -> int:
        producer = await self._ensure_producer()
        poison: dict[int, Poison] = {}
        planned: list[tuple[OutboxEvent, list[str], object]] = []
        for row in rows:
            try:
                planned.append((row, self.copies(row), to_kafka(row)))
            except Poison as exc:
                poison[row.id] = exc
            except Exception as exc:  # noqa: BLE001 - whatever cannot be serialised now never will be
                poison[row.id] = Poison("unserialisable", exc.__class__.__name__)
        await self._ensure_topics(producer, {t for _row, topics, _msg in planned for t in topics})
        sent: list[tuple[OutboxEvent, list]] = []
        for row, topics, msg in planned:
            futures = []
            for topic in topics:
                try:
                    futures.append(await producer.send(topic, value=msg.value, key=msg.key, headers=list(msg.headers.items())))
                except Exception as exc:  # noqa: BLE001 - e.g. too large: refused before it is sent
                    futures.append(_failed(exc))
            sent.append((row, futures))
        failed_keys: set[str] = set()
        confirmed: list[int] = []
        for row, futures in sent:
            results = await asyncio.gather(*futures, return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            hopeless = next((POISON[type(e)] for e in errors if type(e) in POISON), None)
            if hopeless:
                poison[row.id] = Poison(hopeless, errors[0].__class__.__name__)
            elif errors or row.key in failed_keys:
                failed_keys.add(row.key)  # keep per-subject order: nothing after a failure counts
            else:
                confirmed.append(row.id)
        if confirmed or poison:
            async with self.services.db.write() as session:
                if confirmed:
                    await session.exec(
                        update(OutboxEvent).where(and_(col(OutboxEvent.id).in_(confirmed), OutboxEvent.claimed_by == self.name))
                        .values(published_at=self.services.clock.now(), claimed_until=None)
                    )
                for row_id, exc in poison.items():
                    await session.exec(
                        update(OutboxEvent).where(and_(OutboxEvent.id == row_id, OutboxEvent.claimed_by == self.name))
                        .values(claimed_by=(SET_ASIDE + exc.reason)[:64], claimed_until=NEVER)
                    )
            EVENTS_PUBLISHED.inc(len(confirmed))
            for row in rows:
                if row.id in poison:
                    self._set_aside(row, poison[row.id])
        if failed_keys:
            raise KafkaError(f"{len(rows) - len(confirmed) - len(poison)} event(s) not acknowledged by the broker")
        return len(confirmed) + len(poison)

    def _set_aside(self, row: OutboxEvent, exc: Poison) -> None:
        item_failed("relay", exc.reason, f"outbox row {row.id} ({row.event_id})")
        log.error("relay.set-aside", extra={"outbox_id": row.id, "event_id": row.event_id, "event_type": row.type,
                                            "reason": exc.reason, "error": str(exc)})

    async def measure(self) -> None:
        """Set the backlog gauges: rows waiting to be published (set-aside rows are not waiting) and the
        age of the oldest. One indexed query."""
        async with self.services.db.read() as session:
            count, oldest = (await session.exec(
                select(func.count(), func.min(OutboxEvent.created_at)).where(
                    OutboxEvent.published_at.is_(None),
                    or_(OutboxEvent.claimed_by.is_(None), ~OutboxEvent.claimed_by.startswith(SET_ASIDE)))
            )).one()
        OUTBOX_BACKLOG.set(count)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=timezone.utc)
        OUTBOX_OLDEST_AGE.set(max(0.0, (self.services.clock.now() - oldest).total_seconds()) if oldest else 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop``. A failed round (broker away, database error) is logged and retried
        after a backoff; it never ends the relay."""
        attempt = 0
        written = self.services.outbox_written
        while not stop.is_set():
            written.clear()  # before the round: a commit during it sets it again, and the wait below ends at once
            try:
                published = await self.publish_once()
                round_done()
                attempt = 0
                delay = 0 if published else self.services.settings.relay_idle_seconds
            except Exception as exc:  # noqa: BLE001 - every failure is a failed round; the next one may work
                attempt += 1
                delay = self._wait(attempt)
                cause = _cause(exc)
                round_failed(f"{cause}: {exc.__class__.__name__}")
                if cause != "database":  # the producer may be broken: start a new one next round
                    RELAY_ERRORS.inc()
                    await self._drop_producer()
                log.warning("relay.round-failed", exc_info=cause in ("database", "unexpected"),  # not for a network outage
                            extra={"cause": cause, "exc_type": exc.__class__.__name__, "attempt": attempt,
                                   "retry_in_seconds": round(delay, 2)})
            try:  # every round, also a failed one: a backlog that grows while the broker is away shows
                await self.measure()
            except SQLAlchemyError:
                pass  # the database is away: the round above said so
            if attempt:  # after a failure: the backoff, whatever is written meanwhile
                await wait_or_stop(stop, delay)
            else:
                await wait_or_stop(stop, delay, also=written)
        await self._drop_producer()


def _failed(exc: BaseException) -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


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
