"""The webhook dispatcher.

1. A Kafka consumer in group ``brb-webhooks`` turns each event into one pending delivery per matching
   subscription (only organisations the event concerns: ``data.parties``), then commits its offset. A
   redelivered event adds nothing (unique subscription + event id).
2. A sender posts pending deliveries, signed (Standard Webhooks: ``webhook-id`` = event id,
   ``webhook-timestamp``, ``webhook-signature``), retrying with exponential backoff and jitter; after
   ``webhook_max_attempts`` failures a delivery becomes a dead letter an admin can replay."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from standardwebhooks import Webhook

from gateway.backoff import exponential_jitter
from gateway.db.models import Subscription, WebhookDelivery
from gateway.metrics import WEBHOOK_ATTEMPTS
from gateway.outbox.cloudevent import from_kafka
from gateway.outbox.events import CE_TYPE_PREFIX
from gateway.services import Services
from gateway.webhooks.subscriptions import non_public_address, secret_of

log = logging.getLogger("brb.dispatcher")
GROUP = "brb-webhooks"


async def enqueue(services: Services, event_id: str, event_type: str, parties: list[str], body: str) -> int:
    """Pending deliveries for every live subscription of a party that wants this type."""
    async with services.db.write() as session:
        subs = (await session.exec(select(Subscription).where(
            col(Subscription.oin).in_(parties), Subscription.deleted_at.is_(None)))).all()
        wanted = [s for s in subs if event_type in s.event_types]
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        now = services.clock.now()
        for sub in wanted:
            await session.exec(insert(WebhookDelivery).values(
                subscription_id=sub.id, event_id=event_id, event_type=event_type, body=body, status="pending",
                attempts=0, next_attempt_at=now, created_at=now).on_conflict_do_nothing())
    return len(wanted)


class Dispatcher:
    def __init__(self, services: Services, client: httpx.AsyncClient | None = None):
        self.services = services
        self.client = client or httpx.AsyncClient(timeout=services.settings.webhook_timeout_seconds)
        s = services.settings
        self._wait = exponential_jitter(s.webhook_backoff_base_seconds, s.webhook_backoff_max_seconds, s.webhook_backoff_base_seconds)
        self._broker_wait = exponential_jitter(0.5, s.broker_backoff_max_seconds, 0.5)

    async def consume(self, stop: asyncio.Event) -> None:
        settings = self.services.settings
        attempt = 0
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                settings.events_topic, bootstrap_servers=settings.kafka_bootstrap_servers, group_id=GROUP,
                enable_auto_commit=False, auto_offset_reset="earliest", client_id="brb-dispatcher",
                metadata_max_age_ms=3000,  # notice a topic created after we subscribed (first event) within seconds
            )
            try:
                await consumer.start()
                attempt = 0
                while not stop.is_set():
                    batches = await consumer.getmany(timeout_ms=500, max_records=200)
                    for records in batches.values():
                        for record in records:
                            event = from_kafka(record.value, record.key)
                            data = event.get_data() or {}
                            event_type = event.get_type().removeprefix(CE_TYPE_PREFIX)
                            await enqueue(self.services, event.get_id(), event_type, list(data.get("parties", [])),
                                          record.value.decode())
                    if batches:
                        await consumer.commit()
            except (KafkaError, OSError) as exc:
                attempt += 1
                delay = self._broker_wait(attempt)
                log.warning("dispatcher: broker not reachable (%s); retrying in %.1f s", exc.__class__.__name__, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass
            finally:
                try:
                    await asyncio.wait_for(consumer.stop(), 5)
                except Exception:  # noqa: BLE001 - the consumer is discarded anyway
                    pass

    async def _claim_due(self, limit: int = 50) -> list[tuple[WebhookDelivery, Subscription]]:
        async with self.services.db.write() as session:
            now = self.services.clock.now()
            rows = (await session.exec(
                select(WebhookDelivery, Subscription).join(Subscription, Subscription.id == WebhookDelivery.subscription_id)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id)).limit(limit)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            )).all()
            lease = now + timedelta(seconds=2 * self.services.settings.webhook_timeout_seconds)
            for delivery, _sub in rows:
                delivery.next_attempt_at = lease  # a lease: no other sender takes it meanwhile
                session.add(delivery)
        return list(rows)

    async def _attempt(self, delivery: WebhookDelivery, sub: Subscription) -> None:
        now = self.services.clock.now()
        webhook = Webhook(secret_of(self.services, sub))
        headers = {
            "webhook-id": delivery.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": webhook.sign(delivery.event_id, now, delivery.body),
            "content-type": "application/cloudevents+json",
        }
        error = await self._refused_target(sub.callback_url)
        if error is None:
            try:
                response = await self.client.post(sub.callback_url, content=delivery.body.encode(), headers=headers)
                if not 200 <= response.status_code < 300:
                    error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = f"{exc.__class__.__name__}: {exc}"[:500]
        async with self.services.db.write() as session:
            row = await session.get(WebhookDelivery, delivery.id)
            row.attempts += 1
            if error is None:
                row.status, row.delivered_at, row.last_error = "delivered", self.services.clock.now(), None
                WEBHOOK_ATTEMPTS.labels("delivered").inc()
            elif row.attempts >= self.services.settings.webhook_max_attempts:
                row.status, row.last_error = "dead", error
                WEBHOOK_ATTEMPTS.labels("dead").inc()
            else:
                row.last_error = error
                row.next_attempt_at = self.services.clock.now() + timedelta(seconds=self._wait(row.attempts))
                WEBHOOK_ATTEMPTS.labels("failed").inc()
            session.add(row)

    async def _refused_target(self, url: str) -> str | None:
        """Resolve again before each attempt: a name that was public at subscription time may point
        into our own network now (DNS rebinding). Then nothing is sent."""
        settings = self.services.settings
        if settings.allow_insecure_loopback_webhooks:
            return None
        found = await non_public_address(url, settings.webhook_timeout_seconds)
        return None if found is None else f"target resolves to a private address ({found})"

    async def send_due(self) -> int:
        due = await self._claim_due()
        await asyncio.gather(*(self._attempt(d, s) for d, s in due))
        return len(due)

    async def deliver(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            sent = await self.send_due()
            if not sent:
                try:
                    await asyncio.wait_for(stop.wait(), 0.2)
                except asyncio.TimeoutError:
                    pass

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.gather(self.consume(stop), self.deliver(stop))
        finally:
            await self.client.aclose()

