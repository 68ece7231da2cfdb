"""Webhook subscriptions and the dead-letter list."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from contracts.parties import Scope
from gateway.api.common import PageSize, Svc, caller_with
from gateway.api.params import MAX_INT, Cursor, DeadLetterId, SubscriptionId
from gateway.auth.dependencies import require
from gateway.statuses import WebhookState
from gateway.webhooks import deliveries as own
from gateway.webhooks import subscriptions as subs

router = APIRouter(tags=["subscriptions"])
Subscriber = caller_with(Scope.SUBSCRIPTIONS_WRITE)
DeliveryId = Annotated[int, Path(ge=1, le=MAX_INT, description="webhook delivery id")]


@router.post("/subscriptions", status_code=201, summary="Register a webhook subscription", name="create_subscription")
async def create(body: subs.SubscriptionRequest, caller: Subscriber, svc: Svc) -> subs.SubscriptionView:
    """Register a callback URL for event types. Callbacks are signed the Standard Webhooks way with your secret (generated and returned once when you send none)."""
    return await subs.create(svc, caller, body)


@router.get("/subscriptions", summary="Your subscriptions", name="list_subscriptions")
async def list_own(caller: Subscriber, svc: Svc) -> subs.SubscriptionList:
    """Your organisation's subscriptions (secrets are never shown again)."""
    return await subs.list_own(svc, caller)


@router.delete("/subscriptions/{subscription_id}", status_code=204, summary="Delete a subscription", name="delete_subscription")
async def delete(subscription_id: SubscriptionId, caller: Subscriber, svc: Svc) -> Response:
    """Stop a subscription."""
    await subs.delete(svc, caller, subscription_id)
    return Response(status_code=204)


@router.get("/webhook-dead-letters", summary="Webhook deliveries that failed every attempt", name="list_dead_letters",
            dependencies=[Depends(require(Scope.ADMIN))])
async def dead_letters(svc: Svc) -> subs.DeadLetterList:
    """Webhook deliveries that failed every attempt."""
    return await subs.dead_letters(svc)


@router.post("/webhook-dead-letters/{dead_letter_id}/replay", status_code=201, summary="Try a dead letter again", name="replay_dead_letter",
             dependencies=[Depends(require(Scope.ADMIN))])
async def replay(dead_letter_id: DeadLetterId, svc: Svc) -> subs.DeadLetter:
    """Queue a dead letter for delivery again."""
    return await subs.replay(svc, dead_letter_id)


@router.get("/subscriptions/{subscription_id}/deliveries", summary="Your subscription's webhook deliveries")
async def list_subscription_deliveries(
    subscription_id: SubscriptionId, caller: Subscriber, svc: Svc, size: PageSize, cursor: Cursor = None,
    status: Annotated[WebhookState | None, Query(description="only deliveries in this state")] = None,
) -> own.WebhookDeliveryPage:
    """The events queued for your subscription, oldest first: event id and type, status, attempts and the last error (never the body). Page with `cursor`; `status=dead` lists your dead letters."""
    return await own.list_own(svc, caller, subscription_id, status, cursor, size)


@router.post("/subscriptions/{subscription_id}/deliveries/{delivery_id}/replay", status_code=201,
             summary="Try one of your dead letters again")
async def replay_subscription_delivery(subscription_id: SubscriptionId, delivery_id: DeliveryId, caller: Subscriber,
                                       svc: Svc) -> own.WebhookDeliveryView:
    """Queue a dead delivery of your subscription for delivery again, with a fresh count of attempts. A delivery that is not dead is a 409."""
    return await own.replay_own(svc, caller, subscription_id, delivery_id)


@router.post("/subscriptions/{subscription_id}/ping", status_code=201, summary="Send a signed test event to your callback")
async def ping_subscription(subscription_id: SubscriptionId, caller: Subscriber, svc: Svc) -> own.PingOutcome:
    """Send a `nl.brb.webhook.ping` CloudEvent to the callback now, signed with the subscription's secret like every delivery, and answer what came back (the HTTP status, or the error). Nothing is retried or queued."""
    return await own.ping(svc, caller, subscription_id)


@router.post("/subscriptions/{subscription_id}/secret-rotation", status_code=201, summary="Rotate your subscription's secret")
async def rotate_subscription_secret(subscription_id: SubscriptionId, body: subs.SecretRotationRequest, caller: Subscriber,
                                     svc: Svc) -> subs.SubscriptionView:
    """Give the subscription a new secret (yours, or generated and answered once). For `overlapHours` (default 24) every call is signed with both the new and the previous secret, one signature each in `webhook-signature`, so you switch your verification without missing a delivery."""
    return await subs.rotate_secret(svc, caller, subscription_id, body)
