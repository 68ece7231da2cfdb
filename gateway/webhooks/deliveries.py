"""A subscriber's own view of its webhooks: the deliveries of one of its subscriptions (pending, delivered,
dead; never the body), a replay of its own dead letters, and a ping that sends a signed test event to its
callback at once, so it can test its endpoint and its signature check without waiting for an event.
Another organisation's subscription is a 404, as an unknown one is."""
from __future__ import annotations

import logging
from datetime import datetime

import httpx
from pydantic import Field
from sqlmodel import select

from gateway.auth.tokens import Caller
from gateway.db.filters import equals, narrowed
from gateway.db.models import WebhookDelivery
from gateway.db.paging import INT, Keyset
from gateway.logs import bound
from gateway.outbox.cloudevent import to_kafka
from gateway.outbox.events import CE_TYPE_PREFIX, outbox_row, webhook_ping
from gateway.problems import Problem
from gateway.schemas import Paged, Wire
from gateway.services import Services
from gateway.statuses import WebhookState
from gateway.webhooks.calls import call
from gateway.webhooks.subscriptions import own_subscription, requeue, signing_secrets

log = logging.getLogger("brb.webhooks")
OWN_DELIVERIES = Keyset("webhook-deliveries", ((WebhookDelivery.id, INT),), start=(0,))


class WebhookDeliveryView(Wire):
    id: int = Field(description="the delivery id (for a replay)")
    event_id: str = Field(description="the CloudEvent id, sent as webhook-id")
    event_type: str
    status: WebhookState
    attempts: int
    last_error: str | None = Field(description="the last failed attempt's HTTP status or connection error")
    next_attempt_at: datetime | None = Field(description="when a pending delivery is tried next")
    created_at: datetime
    delivered_at: datetime | None


class WebhookDeliveryPage(Paged):
    items: list[WebhookDeliveryView]


class PingOutcome(Wire):
    event_id: str = Field(description="the test event's id, sent as webhook-id")
    event_type: str = Field(description="the CloudEvent type", examples=[CE_TYPE_PREFIX + "webhook.ping"])
    delivered: bool = Field(description="the callback answered 2xx")
    status_code: int | None = Field(description="the HTTP status the callback answered; null when it gave no answer")
    error: str | None = Field(description="why it counts as not delivered: the status, a connection error, a refused target")


def _view(row: WebhookDelivery) -> WebhookDeliveryView:
    return WebhookDeliveryView(
        id=row.id, event_id=row.event_id, event_type=row.event_type, status=row.status, attempts=row.attempts,
        last_error=row.last_error, next_attempt_at=row.next_attempt_at if row.status == WebhookState.PENDING else None,
        created_at=row.created_at, delivered_at=row.delivered_at)


async def list_own(services: Services, caller: Caller, sub_id: str, status: WebhookState | None,
                   cursor: str | None, size: int) -> WebhookDeliveryPage:
    """The subscription's deliveries, oldest first, optionally of one status."""
    after = OWN_DELIVERIES.decode(cursor)
    async with services.db.read() as session:
        sub = await own_subscription(session, caller, sub_id)
        query = narrowed(select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id),
                         equals(WebhookDelivery.status, status))
        page = await OWN_DELIVERIES.page(session, query, after, size)
    return WebhookDeliveryPage.of(page, [_view(r) for r in page.rows])


async def replay_own(services: Services, caller: Caller, sub_id: str, delivery_id: int) -> WebhookDeliveryView:
    """Queue one of the subscription's dead letters again; a delivery that is not dead is a 409."""
    async with services.db.write() as session:
        sub = await own_subscription(session, caller, sub_id)
        row = await session.get(WebhookDelivery, delivery_id)
        if row is None or row.subscription_id != sub.id:
            raise Problem("not-found", "no such delivery of this subscription")
        if row.status != WebhookState.DEAD:
            raise Problem("conflict", f"only a dead delivery can be replayed; this one is {row.status}")
        requeue(services, row)
        session.add(row)
        view = _view(row)
    with bound(subscription_id=sub.id, event_id=row.event_id, delivery_id=row.id):
        log.info("webhook.replayed", extra={"by": "subscriber"})
    return view


async def ping(services: Services, caller: Caller, sub_id: str, client: httpx.AsyncClient | None = None) -> PingOutcome:
    """Send a signed ``webhook.ping`` CloudEvent to the subscription's callback now, the way every
    delivery is sent (``calls.call``: SSRF check, signature, User-Agent), and say what came back."""
    async with services.db.read() as session:
        sub = await own_subscription(session, caller, sub_id)
        secrets = signing_secrets(services, sub)
    event = webhook_ping(sub.id, sub.oin)
    row = outbox_row(event, services.clock.now(), {"direct": "none"})  # never stored: it only names the event
    body = to_kafka(row).value.decode()  # the CloudEvent exactly as the relay would put it on Kafka
    own_client = client is None
    client = client or httpx.AsyncClient(timeout=services.settings.webhook_timeout_seconds)
    try:
        outcome = await call(services, client, sub.callback_url, secrets, row.event_id, body)
    finally:
        if own_client:
            await client.aclose()
    with bound(subscription_id=sub.id, subscriber_oin=sub.oin, event_id=row.event_id, event_type=event.type):
        log.info("webhook.pinged", extra={"delivered": outcome.delivered, "status_code": outcome.status_code,
                                          "error": outcome.error})
    return PingOutcome(event_id=row.event_id, event_type=CE_TYPE_PREFIX + event.type, delivered=outcome.delivered,
                       status_code=outcome.status_code, error=outcome.error)
