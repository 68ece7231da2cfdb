"""Subscriptions: an organisation registers a callback URL, the event types it wants and a secret.
Callbacks are signed the Standard Webhooks way with that secret, which is kept encrypted at rest.
A callback goes to public addresses only (no SSRF into the gateway's own network): checked when the
subscription is made and again before every delivery attempt (``non_public_address``)."""
from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import os
import re
import socket
import uuid
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field
from sqlalchemy import update
from sqlmodel import col, select

from contracts.registry import MESSAGE_TYPES
from gateway.auth.tokens import Caller
from gateway.db.models import PREVIOUS_SUBSCRIPTION_SECRET, SUBSCRIPTION_SECRET, Subscription, WebhookDelivery
from gateway.logs import bound
from gateway.outbox.events import EVENT_TYPES
from gateway.problems import Problem, field_detail
from gateway.schemas import Inbound, Wire
from gateway.services import Services
from gateway.statuses import WebhookState

log = logging.getLogger("brb.webhooks")

SUBSCRIBABLE = sorted(t for t, spec in EVENT_TYPES.items() if spec.stream == "events")
# a message type of the contract registry; the OpenAPI document lists them (checked in ``_check``)
MessageTypeName = Annotated[str, Field(max_length=40, json_schema_extra={"enum": sorted(MESSAGE_TYPES)})]
MESSAGE_TYPES_DESCRIPTION = ("only events about these message types (and events about no message, such as consent "
                             "events); left out or null: every message type")


class SubscriptionRequest(Inbound):
    callback_url: Annotated[str, Field(max_length=2000)]
    event_types: Annotated[list[str], Field(min_length=1, max_length=20, description=f"any of {', '.join(SUBSCRIBABLE)}")]
    message_types: Annotated[list[MessageTypeName], Field(min_length=1, max_length=20, description=MESSAGE_TYPES_DESCRIPTION)] | None = None
    secret: Annotated[str, Field(description=SECRET_DESCRIPTION)] | None = None


SECRET_DESCRIPTION = "Standard Webhooks secret 'whsec_<base64>' of at least 24 bytes; generated when left out"
MAX_OVERLAP_HOURS = 168


class SecretRotationRequest(Inbound):
    secret: Annotated[str, Field(description=SECRET_DESCRIPTION)] | None = None
    overlap_hours: Annotated[int, Field(ge=0, le=MAX_OVERLAP_HOURS, description=(
        "how long the old secret keeps signing beside the new one (each call then carries both signatures), "
        "so you can switch your verification without missing a delivery; 0: the old secret stops at once"))] = 24


class SubscriptionView(Wire):
    id: str
    callback_url: str
    event_types: list[str]
    message_types: list[str] | None = Field(None, description=MESSAGE_TYPES_DESCRIPTION)
    created_at: datetime
    previous_secret_valid_until: datetime | None = Field(
        None, description="after a secret rotation: until when calls are signed with the previous secret as well")
    secret: str | None = Field(None, description="only in the answer that created or rotated it, and only when the gateway generated it")


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


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
_REST = r"([/?#]([A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)?"
# an absolute https URL (RFC 3986) with a DNS name or an IPv4 address as host (no IPv6 literals); the
# OpenAPI document declares this same pattern
CALLBACK_URL_PATTERN = rf"^https://({_LABEL}\.)*{_LABEL}{_PORT}{_REST}$"


def _check(services: Services, body: SubscriptionRequest) -> bytes:
    problems = []
    try:
        url = urlsplit(body.callback_url)
    except ValueError:  # e.g. a bracketed host that is no IPv6 address
        raise Problem("validation-failed", field_detail([("/callbackUrl", "not an absolute https URL")])) from None
    loopback = False
    try:
        loopback = url.hostname == "localhost" or ipaddress.ip_address(url.hostname or "").is_loopback
    except ValueError:
        pass
    if url.scheme == "http" and not (loopback and services.settings.allow_insecure_loopback_webhooks):
        problems.append(("/callbackUrl", "use https"))
    elif url.scheme == "https" and not re.fullmatch(CALLBACK_URL_PATTERN, body.callback_url):
        problems.append(("/callbackUrl", "not an absolute https URL (RFC 3986, with a DNS name or an IP address)"))
    elif url.scheme not in ("https", "http") or not url.hostname:
        problems.append(("/callbackUrl", "not an absolute https URL"))
    problems += [(f"/eventTypes/{i}", f"unknown event type {t!r}") for i, t in enumerate(body.event_types) if t not in SUBSCRIBABLE]
    problems += [(f"/messageTypes/{i}", f"unknown message type {t!r} (one of {', '.join(sorted(MESSAGE_TYPES))})")
                 for i, t in enumerate(body.message_types or []) if t not in MESSAGE_TYPES]
    secret, problem = _secret_bytes(body.secret)
    problems += [("/secret", problem)] if problem else []
    if problems:
        raise Problem("validation-failed", field_detail(problems))
    return secret


def _secret_bytes(value: str | None) -> tuple[bytes, str | None]:
    """A caller's ``whsec_<base64>`` secret as bytes (empty: none given), or what is wrong with it."""
    if value is None:
        return b"", None
    try:
        secret = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except ValueError:
        return b"", "not whsec_<base64>"
    return (secret, None) if len(secret) >= 24 else (b"", "at least 24 bytes of entropy")


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for: IPv4-mapped, 6to4 or NAT64."""
    if ip.version != 6:
        return None
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast: nothing of the gateway's own network, whatever form it is written in."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return is_public(embedded)
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


async def non_public_address(url: str, timeout: float) -> str | None:
    """The first address the URL's host resolves to that is private, loopback, link-local, multicast,
    reserved or unspecified (also IPv4-mapped), or None. A name that does not resolve is no target."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(parts.hostname or "", port, type=socket.SOCK_STREAM), timeout)
    except (OSError, ValueError, asyncio.TimeoutError):
        return None
    for *_rest, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if not is_public(ip):
            return str(ip)
    return None


async def _check_target(services: Services, url: str) -> None:
    """422 for a callback into a private network (the demo and the tests allow it by setting)."""
    if services.settings.allow_insecure_loopback_webhooks:
        return
    found = await non_public_address(url, services.settings.webhook_timeout_seconds)
    if found is not None:
        message = f"the host resolves to a private, loopback or link-local address ({found}): callbacks go to public addresses only"
        raise Problem("validation-failed", field_detail([("/callbackUrl", message)]))


def _whsec(raw: bytes) -> str:
    return "whsec_" + base64.b64encode(raw).decode()


def signing_secrets(services: Services, sub: Subscription) -> list[str]:
    """The secrets a call to this subscription is signed with now: its secret, and during the overlap
    after a rotation the previous one too (Standard Webhooks: one signature each, in one header)."""
    secrets = [_whsec(services.keyring.open(SUBSCRIPTION_SECRET.get(sub), aad=sub.id.encode()))]
    previous = PREVIOUS_SUBSCRIPTION_SECRET.get(sub)
    if previous is not None and sub.previous_secret_until and services.clock.now() < sub.previous_secret_until:
        secrets.append(_whsec(services.keyring.open(previous, aad=sub.id.encode())))
    return secrets


async def rotate_secret(services: Services, caller: Caller, sub_id: str, body: SecretRotationRequest) -> SubscriptionView:
    """A new secret (the caller's, or generated and shown once); the current one signs beside it for
    ``overlapHours``. A second rotation within the overlap ends the first one's old secret."""
    secret, problem = _secret_bytes(body.secret)
    if problem:
        raise Problem("validation-failed", field_detail([("/secret", problem)]))
    generated = not secret
    secret = secret or os.urandom(32)
    now = services.clock.now()
    async with services.db.write() as session:
        sub = await own_subscription(session, caller, sub_id)
        PREVIOUS_SUBSCRIPTION_SECRET.put(sub, SUBSCRIPTION_SECRET.get(sub) if body.overlap_hours else None)
        sub.previous_secret_until = now + timedelta(hours=body.overlap_hours) if body.overlap_hours else None
        SUBSCRIPTION_SECRET.put(sub, services.keyring.seal(secret, aad=sub.id.encode()))
        session.add(sub)
        view = view_of(sub)
    with bound(subscription_id=sub.id, subscriber_oin=sub.oin):
        log.info("webhook.secret-rotated", extra={"overlap_hours": body.overlap_hours})
    if generated:
        view.secret = _whsec(secret)
    return view


async def create(services: Services, caller: Caller, body: SubscriptionRequest) -> SubscriptionView:
    secret = _check(services, body)
    await _check_target(services, body.callback_url)
    generated = not secret
    secret = secret or os.urandom(32)
    sub_id = str(uuid.uuid4())
    sealed = services.keyring.seal(secret, aad=sub_id.encode())
    async with services.db.write() as session:
        sub = Subscription(id=sub_id, oin=caller.oin, callback_url=body.callback_url, event_types=sorted(set(body.event_types)),
                           message_types=None if body.message_types is None else sorted(set(body.message_types)),
                           secret_ciphertext=sealed.ciphertext, secret_wrapped_key=sealed.wrapped_key,
                           secret_key_id=sealed.key_id, created_at=services.clock.now())
        session.add(sub)
    view = view_of(sub)
    if generated:
        view.secret = _whsec(secret)
    return view


async def list_own(services: Services, caller: Caller) -> SubscriptionList:
    async with services.db.read() as session:
        rows = (await session.exec(select(Subscription).where(Subscription.oin == caller.oin, Subscription.deleted_at.is_(None))
                                   .order_by(col(Subscription.created_at)))).all()
    return SubscriptionList(items=[view_of(s) for s in rows])


def view_of(sub: Subscription) -> SubscriptionView:
    return SubscriptionView(id=sub.id, callback_url=sub.callback_url, event_types=sub.event_types,
                            message_types=sub.message_types, created_at=sub.created_at,
                            previous_secret_valid_until=sub.previous_secret_until)


async def own_subscription(session, caller: Caller, sub_id: str) -> Subscription:
    """The caller's live subscription; another organisation's, a deleted or an unknown one is a 404."""
    sub = await session.get(Subscription, sub_id)
    if sub is None or sub.oin != caller.oin or sub.deleted_at is not None:
        raise Problem("not-found", "no such subscription")
    return sub


async def delete(services: Services, caller: Caller, sub_id: str) -> None:
    async with services.db.write() as session:
        sub = await own_subscription(session, caller, sub_id)
        sub.deleted_at = services.clock.now()
        session.add(sub)
        # what had not gone out yet does not go out any more (in the same transaction)
        await session.exec(update(WebhookDelivery).where(
            WebhookDelivery.subscription_id == sub.id, WebhookDelivery.status == WebhookState.PENDING,
        ).values(status=WebhookState.CANCELLED))


async def dead_letters(services: Services) -> DeadLetterList:
    async with services.db.read() as session:
        rows = (await session.exec(select(WebhookDelivery).where(WebhookDelivery.status == WebhookState.DEAD)
                                   .order_by(col(WebhookDelivery.id)).limit(1000))).all()
    return DeadLetterList(items=[DeadLetter.model_validate(r, from_attributes=True) for r in rows])


async def replay(services: Services, dead_letter_id: int) -> DeadLetter:
    """The operator's replay of any dead letter."""
    async with services.db.write() as session:
        row = await session.get(WebhookDelivery, dead_letter_id)
        if row is None or row.status != WebhookState.DEAD:
            raise Problem("not-found", "no such dead letter")
        requeue(services, row)
        session.add(row)
        return DeadLetter.model_validate(row, from_attributes=True)


def requeue(services: Services, row: WebhookDelivery) -> None:
    """A dead letter pending again, due now, with a fresh count of attempts (the one way to replay)."""
    row.status, row.attempts, row.next_attempt_at, row.last_error = WebhookState.PENDING, 0, services.clock.now(), None
