"""Subscriptions: an organisation registers a callback URL, the event types it wants and a secret.
Callbacks are signed the Standard Webhooks way with that secret, which is kept encrypted at rest."""
from __future__ import annotations

import base64
import ipaddress
import os
import uuid
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field
from sqlmodel import col, select

from gateway.auth.tokens import Caller
from gateway.crypto import Sealed
from gateway.db.models import Subscription, WebhookDelivery
from gateway.outbox.events import EVENT_TYPES
from gateway.problems import Problem, field_detail
from gateway.schemas import Wire
from gateway.services import Services

SUBSCRIBABLE = sorted(t for t, spec in EVENT_TYPES.items() if spec.stream == "events")


class SubscriptionRequest(Wire):
    callback_url: Annotated[str, Field(max_length=2000)]
    event_types: Annotated[list[str], Field(min_length=1, max_length=20, description=f"any of {', '.join(SUBSCRIBABLE)}")]
    secret: Annotated[str, Field(description="Standard Webhooks secret 'whsec_<base64>' of at least 24 bytes; generated when left out")] | None = None


class SubscriptionView(Wire):
    id: str
    callback_url: str
    event_types: list[str]
    created_at: datetime
    secret: str | None = Field(None, description="only in the answer that created it, and only when the gateway generated it")


class SubscriptionList(Wire):
    items: list[SubscriptionView]


class DeadLetter(Wire):
    id: int
    subscription_id: str
    event_id: str
    event_type: str
    attempts: int
    last_error: str | None
    created_at: datetime


class DeadLetterList(Wire):
    items: list[DeadLetter]


def _check(services: Services, body: SubscriptionRequest) -> bytes:
    problems = []
    url = urlsplit(body.callback_url)
    loopback = False
    try:
        loopback = url.hostname == "localhost" or ipaddress.ip_address(url.hostname or "").is_loopback
    except ValueError:
        pass
    if url.scheme == "http" and not (loopback and services.settings.allow_insecure_loopback_webhooks):
        problems.append(("/callbackUrl", "use https"))
    elif url.scheme not in ("https", "http") or not url.hostname:
        problems.append(("/callbackUrl", "not an absolute https URL"))
    problems += [(f"/eventTypes/{i}", f"unknown event type {t!r}") for i, t in enumerate(body.event_types) if t not in SUBSCRIBABLE]
    secret = b""
    if body.secret is not None:
        try:
            secret = base64.b64decode(body.secret.removeprefix("whsec_"), validate=True)
        except ValueError:
            problems.append(("/secret", "not whsec_<base64>"))
        else:
            if len(secret) < 24:
                problems.append(("/secret", "at least 24 bytes of entropy"))
    if problems:
        raise Problem("validation-failed", field_detail(problems))
    return secret


def secret_of(services: Services, sub: Subscription) -> str:
    raw = services.keyring.open(Sealed(sub.secret_ciphertext, sub.secret_wrapped_key, sub.secret_key_id), aad=sub.id.encode())
    return "whsec_" + base64.b64encode(raw).decode()


async def create(services: Services, caller: Caller, body: SubscriptionRequest) -> SubscriptionView:
    secret = _check(services, body)
    generated = not secret
    secret = secret or os.urandom(32)
    sub_id = str(uuid.uuid4())
    sealed = services.keyring.seal(secret, aad=sub_id.encode())
    async with services.db.write() as session:
        sub = Subscription(id=sub_id, oin=caller.oin, callback_url=body.callback_url, event_types=sorted(set(body.event_types)),
                           secret_ciphertext=sealed.ciphertext, secret_wrapped_key=sealed.wrapped_key,
                           secret_key_id=sealed.key_id, created_at=services.clock.now())
        session.add(sub)
    view = SubscriptionView(id=sub.id, callback_url=sub.callback_url, event_types=sub.event_types, created_at=sub.created_at)
    if generated:
        view.secret = "whsec_" + base64.b64encode(secret).decode()
    return view


async def list_own(services: Services, caller: Caller) -> SubscriptionList:
    async with services.db.read() as session:
        rows = (await session.exec(select(Subscription).where(Subscription.oin == caller.oin, Subscription.deleted_at.is_(None))
                                   .order_by(col(Subscription.created_at)))).all()
    return SubscriptionList(items=[SubscriptionView(id=s.id, callback_url=s.callback_url, event_types=s.event_types,
                                                    created_at=s.created_at) for s in rows])


async def delete(services: Services, caller: Caller, sub_id: str) -> None:
    async with services.db.write() as session:
        sub = await session.get(Subscription, sub_id)
        if sub is None or sub.oin != caller.oin or sub.deleted_at is not None:
            raise Problem("not-found", "no such subscription")
        sub.deleted_at = services.clock.now()
        session.add(sub)


async def dead_letters(services: Services) -> DeadLetterList:
    async with services.db.read() as session:
        rows = (await session.exec(select(WebhookDelivery).where(WebhookDelivery.status == "dead")
                                   .order_by(col(WebhookDelivery.id)).limit(1000))).all()
    return DeadLetterList(items=[DeadLetter.model_validate(r, from_attributes=True) for r in rows])


async def replay(services: Services, dead_letter_id: int) -> DeadLetter:
    async with services.db.write() as session:
        row = await session.get(WebhookDelivery, dead_letter_id)
        if row is None or row.status != "dead":
            raise Problem("not-found", "no such dead letter")
        row.status, row.attempts, row.next_attempt_at, row.last_error = "pending", 0, services.clock.now(), None
        session.add(row)
        return DeadLetter.model_validate(row, from_attributes=True)
