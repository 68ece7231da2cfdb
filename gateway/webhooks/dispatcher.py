"""The webhook dispatcher.

1. A Kafka consumer in group ``<prefix>-webhooks`` (``brb-webhooks``) turns each event into one pending
   delivery per matching subscription (only organisations the event concerns: ``data.parties``; only the
   event types it names; and, when it names message types, only events about those or about no message),
   then commits its offset. A redelivered event adds nothing (unique subscription + event id).
2. A sender posts pending deliveries, signed (Standard Webhooks: ``webhook-id`` = event id,
   ``webhook-timestamp``, ``webhook-signature``), retrying with exponential backoff and jitter; after
   ``webhook_max_attempts`` failures a delivery becomes a dead letter that the subscriber (or an admin) can
   replay. Every failed attempt and every dead letter is logged (``webhook.attempt-failed``,
   ``webhook.dead-lettered``: subscription, event, attempt, error; never the body).
3. A record that is no CloudEvent of the gateway names no subscription, so it cannot be a dead letter: it
   is logged (``webhook.unreadable-record`` with topic, partition and offset, never its bytes), counted
   (``brb_webhook_unreadable_records_total``, alert on it) and committed past; Kafka keeps it for its
   retention, where an operator finds it by that offset. A record the database refuses (``DataError``,
   ``IntegrityError``) is passed over the same way (``webhook.unprocessable-record``).
4. One bad delivery never stops the others: a subscription whose secret cannot be decrypted (its ring key
   is not held, or the ciphertext does not authenticate) makes that delivery a dead letter at once, with
   the reason as its ``last_error`` (a key id, never key material), logged and counted
   (``brb_worker_item_failures_total{worker="dispatcher"}``); an unexpected error in one attempt counts as
   a failed attempt of that delivery only.
5. Each round reports to readiness (``gateway.workers.round_done``: the consumer and the sender) and
   refreshes the backlog gauges: pending deliveries, the oldest one's age, dead letters and the consumer's
   lag (high watermark minus position, per assigned partition, as the last fetch saw it)."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from cryptography.exceptions import InvalidTag
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlmodel import col, func, select

from gateway.backoff import exponential_jitter
from gateway.db.dialect import insert_ignoring_duplicates
from gateway.db.models import Subscription, WebhookDelivery
from gateway.logs import bound
from gateway.metrics import (DISPATCHER_LAG, UNREADABLE_RECORDS, WEBHOOK_ATTEMPTS, WEBHOOK_BACKLOG, WEBHOOK_DEAD_LETTERS,
                             WEBHOOK_OLDEST_AGE)
from gateway.outbox.cloudevent import from_kafka
from gateway.outbox.events import CE_TYPE_PREFIX
from gateway.services import Services
from gateway.statuses import WebhookState
from gateway.telemetry import traced
from gateway.webhooks.calls import call
from gateway.webhooks.subscriptions import signing_secrets
from gateway.workers import item_failed, round_done, round_failed, wait_or_stop

log = logging.getLogger("brb.dispatcher")
GAUGES_EVERY_SECONDS = 1.0  # the backlog gauges are refreshed at most this often (cheap, indexed counts)


def group_for(topic_prefix: str) -> str:
    """One consumer group per topic prefix: gateways with their own topics never share offsets (and on the
    loopback broker, whose first generation is 0 so aiokafka never leaves it, a test never waits for the
    previous test's consumer to expire)."""
    return f"{topic_prefix}-webhooks"


def wants(sub: Subscription, event_type: str, message_type: str | None) -> bool:
    """A subscription wants an event of a type it names; with a message-type filter, only an event about
    one of those message types, or about no message at all (a consent event): the filter narrows message
    events, it never hides a consent withdrawal from a subscription that asked for them."""
    if event_type not in sub.event_types:
        return False
    return sub.message_types is None or message_type is None or message_type in sub.message_types


async def enqueue(services: Services, event_id: str, event_type: str, parties: list[str], body: str,
                  message_type: str | None = None) -> int:
    """Pending deliveries for every live subscription of a party that wants this event (``wants``)."""
    async with services.db.write() as session:
        subs = (await session.exec(select(Subscription).where(
            col(Subscription.oin).in_(parties), Subscription.deleted_at.is_(None)))).all()
        wanted = [s for s in subs if wants(s, event_type, message_type)]
        now = services.clock.now()
        for sub in wanted:
            await session.exec(insert_ignoring_duplicates(session, WebhookDelivery).values(
                subscription_id=sub.id, event_id=event_id, event_type=event_type, body=body, status=WebhookState.PENDING,
                attempts=0, next_attempt_at=now, created_at=now))
    return len(wanted)


class Dispatcher:
    def __init__(self, services: Services, client: httpx.AsyncClient | None = None):
        self.services = services
        self.client = client or httpx.AsyncClient(timeout=services.settings.webhook_timeout_seconds)
        s = services.settings
        self._wait = exponential_jitter(s.webhook_backoff_base_seconds, s.webhook_backoff_max_seconds, s.webhook_backoff_base_seconds)
        self._broker_wait = exponential_jitter(0.5, s.broker_backoff_max_seconds, 0.5)
        self._gauges_at: float | None = None

    async def consume(self, stop: asyncio.Event) -> None:
        """Turn events into pending deliveries until ``stop``. A failed round (broker away, database
        error) is logged and the consumer started again from the last committed offset."""
        settings = self.services.settings
        attempt = 0
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                settings.events_topic, bootstrap_servers=settings.kafka_bootstrap_servers, **settings.kafka_options(),
                group_id=group_for(settings.kafka_topic_prefix), enable_auto_commit=False, auto_offset_reset="earliest", client_id="brb-dispatcher",
                metadata_max_age_ms=3000,  # notice a topic created after we subscribed (first event) within seconds
            )
            try:
                await consumer.start()
                attempt = 0
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=500, max_records=200)
                    for records in batches.values():
                        for record in records:
                            await self._take(record)
                    if batches:
                        await consumer.commit()
                    await _observe_lag(consumer)
                    round_done("consume")
            except Exception as exc:  # noqa: BLE001 - retried: nothing was committed past what was taken
                attempt += 1
                delay = self._broker_wait(attempt)
                broker = isinstance(exc, (KafkaError, OSError))
                cause = "broker" if broker else "database" if isinstance(exc, SQLAlchemyError) else "unexpected"
                log.warning("dispatcher.round-failed", exc_info=not broker, extra={
                    "cause": cause, "exc_type": exc.__class__.__name__, "attempt": attempt, "retry_in_seconds": round(delay, 2)})
                round_failed(f"consume: {cause} ({exc.__class__.__name__})")
                await wait_or_stop(stop, delay)
            finally:
                try:
                    await asyncio.wait_for(consumer.stop(), 5)
                except Exception:  # noqa: BLE001 - the consumer is discarded anyway
                    pass

    async def _take(self, record) -> None:
        """Pending deliveries for one record; a record that is no CloudEvent of ours is logged (never its
        body), counted and passed over, so it cannot stop the events after it."""
        try:
            event_id, event_type, parties, message_type = _readable(record.value, record.key)
        except Exception as exc:  # noqa: BLE001 - whatever the bytes are, they are not an event
            UNREADABLE_RECORDS.inc()
            log.error("webhook.unreadable-record", extra={
                "topic": record.topic, "partition": record.partition, "offset": record.offset,
                "exc_type": exc.__class__.__name__, "size_bytes": len(record.value or b"")})
            return
        try:
            await enqueue(self.services, event_id, event_type, parties, record.value.decode(), message_type)
        except (DataError, IntegrityError) as exc:  # this record's values, not the database: never take it again
            where = f"{record.topic}/{record.partition}@{record.offset}"
            log.error("webhook.unprocessable-record", extra={
                "topic": record.topic, "partition": record.partition, "offset": record.offset, "event_id": event_id,
                "exc_type": exc.__class__.__name__})
            item_failed("dispatcher", "unprocessable-record", f"record {where} refused by the database")

    async def _claim_due(self, limit: int = 50) -> list[tuple[WebhookDelivery, Subscription]]:
        async with self.services.db.write() as session:
            now = self.services.clock.now()
            rows = (await session.exec(
                select(WebhookDelivery, Subscription).join(Subscription, Subscription.id == WebhookDelivery.subscription_id)
                .where(WebhookDelivery.status == WebhookState.PENDING, WebhookDelivery.next_attempt_at <= now,
                       Subscription.deleted_at.is_(None))
                .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id)).limit(limit)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            )).all()
            lease = now + timedelta(seconds=2 * self.services.settings.webhook_timeout_seconds)
            for delivery, _sub in rows:
                delivery.next_attempt_at = lease  # a lease: no other sender takes it meanwhile
                session.add(delivery)
        return list(rows)

    @traced("webhook.attempt")
    async def _attempt(self, delivery: WebhookDelivery, sub: Subscription) -> None:
        try:
            secrets = signing_secrets(self.services, sub)
        except (KeyError, InvalidTag, ValueError) as exc:
            await self._set_aside(delivery, sub, _undecryptable(sub, exc))
            return
        try:
            outcome = await call(self.services, self.client, sub.callback_url, secrets, delivery.event_id, delivery.body)
            error = outcome.error
        except Exception as exc:  # noqa: BLE001 - a failed attempt of this delivery only, never of the round
            log.error("webhook.attempt-crashed", exc_info=True, extra={"delivery_id": delivery.id, "subscription_id": sub.id})
            error = f"internal error ({exc.__class__.__name__})"
        retry_in = None
        async with self.services.db.write() as session:
            row = await session.get(WebhookDelivery, delivery.id)
            row.attempts += 1
            if error is None:
                row.status, row.delivered_at, row.last_error = WebhookState.DELIVERED, self.services.clock.now(), None
                WEBHOOK_ATTEMPTS.labels(WebhookState.DELIVERED).inc()
            elif row.attempts >= self.services.settings.webhook_max_attempts:
                row.status, row.last_error = WebhookState.DEAD, error
                WEBHOOK_ATTEMPTS.labels(WebhookState.DEAD).inc()
            else:
                row.last_error = error
                retry_in = self._wait(row.attempts)
                row.next_attempt_at = self.services.clock.now() + timedelta(seconds=retry_in)
                WEBHOOK_ATTEMPTS.labels("failed").inc()
            session.add(row)
            attempts, status = row.attempts, row.status
        if error is not None:
            _log_failure(delivery, sub, attempts, status, error, retry_in)

    async def _set_aside(self, delivery: WebhookDelivery, sub: Subscription, reason: str) -> None:
        """A delivery no attempt can ever make (its secret cannot be opened): a dead letter at once, with
        ``reason`` as its last error, logged and counted; a replay tries it again (after the key is back)."""
        async with self.services.db.write() as session:
            row = await session.get(WebhookDelivery, delivery.id)
            row.status, row.last_error = WebhookState.DEAD, reason
            session.add(row)
        with bound(subscription_id=sub.id, subscriber_oin=sub.oin, event_id=delivery.event_id,
                   event_type=delivery.event_type, delivery_id=delivery.id):
            log.error("webhook.dead-lettered", extra={"attempts": delivery.attempts, "error": reason,
                                                      "reason": "undecryptable-secret"})
        item_failed("dispatcher", "undecryptable-secret", f"subscription {sub.id}: {reason}")

    async def send_due(self) -> int:
        """Attempt every due delivery side by side; one that fails never stops the others (a database
        error is raised after all of them ran: the round failed, their leases expire)."""
        due = await self._claim_due()
        results = await asyncio.gather(*(self._attempt(d, s) for d, s in due), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        return len(due)

    async def observe(self) -> None:
        """Refresh the backlog gauges: pending deliveries, the oldest one's age and dead letters."""
        async with self.services.db.read() as session:
            pending = WebhookDelivery.status == WebhookState.PENDING
            count = (await session.exec(select(func.count()).select_from(WebhookDelivery).where(pending))).one()
            oldest = (await session.exec(select(WebhookDelivery.created_at).where(pending)
                                         .order_by(col(WebhookDelivery.created_at)).limit(1))).first()
            dead = (await session.exec(select(func.count()).select_from(WebhookDelivery)
                                       .where(WebhookDelivery.status == WebhookState.DEAD))).one()
        WEBHOOK_BACKLOG.set(count)
        WEBHOOK_OLDEST_AGE.set(max(0.0, (self.services.clock.now() - oldest).total_seconds()) if oldest else 0)
        WEBHOOK_DEAD_LETTERS.set(dead)

    async def _observe_now(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._gauges_at is None or now - self._gauges_at >= GAUGES_EVERY_SECONDS:
            self._gauges_at = now
            await self.observe()

    async def deliver(self, stop: asyncio.Event) -> None:
        """Send what is due until ``stop``; a failed round is logged and tried again."""
        failures = 0
        while not stop.is_set():
            try:
                sent = await self.send_due()
                await self._observe_now()
                failures = 0
                round_done("deliver")
            except Exception as exc:  # noqa: BLE001 - a claimed delivery's lease expires; it is sent later
                failures += 1
                sent = 0
                log.warning("dispatcher.send-failed", exc_info=True,
                            extra={"exc_type": exc.__class__.__name__, "attempt": failures})
                round_failed(f"deliver: {exc.__class__.__name__}")
            if not sent:
                await wait_or_stop(stop, 0.2 if not failures else self._broker_wait(failures))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and deliver side by side; if either fails, both end (and the client is closed), so
        a supervisor starts a whole dispatcher again instead of one half running on alone."""
        tasks = [asyncio.create_task(self.consume(stop), name="dispatcher-consume"),
                 asyncio.create_task(self.deliver(stop), name="dispatcher-deliver")]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # raises the first failure
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.client.aclose()


def _log_failure(delivery: WebhookDelivery, sub: Subscription, attempt: int, status: str, error: str,
                 retry_in: float | None) -> None:
    """One line per failed attempt, and one more when it made the delivery a dead letter: ids, the
    attempt and the error (a status line or a connection error), never the body."""
    with bound(subscription_id=sub.id, subscriber_oin=sub.oin, event_id=delivery.event_id,
               event_type=delivery.event_type, delivery_id=delivery.id):
        if status == WebhookState.DEAD:
            log.warning("webhook.attempt-failed", extra={"attempt": attempt, "error": error, "final": True})
            log.error("webhook.dead-lettered", extra={"attempts": attempt, "error": error})
        else:
            log.warning("webhook.attempt-failed", extra={"attempt": attempt, "error": error, "final": False,
                                                         "retry_in_seconds": round(retry_in, 2)})


def _undecryptable(sub: Subscription, exc: Exception) -> str:
    """Why a subscription's secret cannot be opened: names the ring key id, never key material."""
    if isinstance(exc, KeyError):
        return f"subscription secret cannot be decrypted: ring key {sub.secret_key_id!r} is not held by this process"
    return (f"subscription secret cannot be decrypted under ring key {sub.secret_key_id!r} "
            f"({exc.__class__.__name__}: tampered, or sealed under another key)")


async def _observe_lag(consumer: AIOKafkaConsumer) -> None:
    """Records of the assigned partitions not consumed yet, from the high watermarks of the last fetch
    (no request to the broker); left as it was while a partition has not been fetched yet."""
    lag = 0
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            return
        try:  # known after a fetch; bounded anyway: a gauge never fails or stalls the round
            position = await asyncio.wait_for(consumer.position(tp), 1)
        except Exception:  # noqa: BLE001 - leave the gauge as it was
            return
        lag += max(0, high - position)
    DISPATCHER_LAG.set(lag)


def _readable(value: bytes | None, key: bytes | None) -> tuple[str, str, list[str], str | None]:
    """(event id, event type, parties, message type or None) of a structured CloudEvent; raises when the
    record is none."""
    event = from_kafka(value, key)
    data = event.get_data()
    data = {} if data is None else data
    if not isinstance(data, dict) or not isinstance(event.get_type(), str):
        raise ValueError("not a CloudEvent of the gateway")
    parties = data.get("parties", [])
    if not isinstance(parties, list) or not all(isinstance(p, str) for p in parties):
        raise ValueError("data.parties is not a list of OINs")
    message_type = data.get("messageType")
    message_type = message_type if isinstance(message_type, str) else None
    return event.get_id(), event.get_type().removeprefix(CE_TYPE_PREFIX), parties, message_type

