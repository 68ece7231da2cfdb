"""Webhook subscriptions and the dead-letter list."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from contracts.parties import Scope
from gateway.api.common import Svc, caller_with
from gateway.api.params import DeadLetterId, SubscriptionId
from gateway.auth.dependencies import require
from gateway.webhooks import subscriptions as subs

router = APIRouter(tags=["subscriptions"])
Subscriber = caller_with(Scope.SUBSCRIPTIONS_WRITE)


@router.post("/subscriptions", status_code=201, summary="Register a webhook subscription")
async def create(body: subs.SubscriptionRequest, caller: Subscriber, svc: Svc) -> subs.SubscriptionView:
    """Register a callback URL for event types. Callbacks are signed the Standard Webhooks way with your secret (generated and returned once when you send none)."""
    return await subs.create(svc, caller, body)


@router.get("/subscriptions", summary="Your subscriptions")
async def list_own(caller: Subscriber, svc: Svc) -> subs.SubscriptionList:
    """Your organisation's subscriptions (secrets are never shown again)."""
    return await subs.list_own(svc, caller)


@router.delete("/subscriptions/{subscription_id}", status_code=204, summary="Delete a subscription")
async def delete(subscription_id: SubscriptionId, caller: Subscriber, svc: Svc) -> Response:
    """Stop a subscription."""
    await subs.delete(svc, caller, subscription_id)
    return Response(status_code=204)


@router.get("/webhook-dead-letters", summary="Webhook deliveries that failed every attempt",
            dependencies=[Depends(require(Scope.ADMIN))])
async def dead_letters(svc: Svc) -> subs.DeadLetterList:
    """Webhook deliveries that failed every attempt."""
    return await subs.dead_letters(svc)


@router.post("/webhook-dead-letters/{dead_letter_id}/replay", status_code=201, summary="Try a dead letter again",
             dependencies=[Depends(require(Scope.ADMIN))])
async def replay(dead_letter_id: DeadLetterId, svc: Svc) -> subs.DeadLetter:
    """Queue a dead letter for delivery again."""
    return await subs.replay(svc, dead_letter_id)
