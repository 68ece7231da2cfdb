"""Inbox and sent lists: keyset (cursor) pagination, oldest first, so a connector can poll onwards
from the last cursor it saw. Filters: type, status, subject pseudonym, time range, open requests."""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_
from sqlmodel import col, select

from gateway.api.params import MAX_INT, UUID_PATTERN
from gateway.auth.tokens import Caller
from gateway.db.models import Delivery, Message
from gateway.exchange.read import load_visible
from gateway.exchange.views import delivery_status, message_summary
from gateway.problems import Problem, field_detail
from gateway.schemas import DeliveryStatus, MessagePage
from gateway.services import Services


@dataclass(frozen=True)
class ListFilter:
    type: str | None = None
    status: str | None = None
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    open_requests: bool = False


def encode_cursor(created_at: datetime, ident) -> str:
    raw = json.dumps([created_at.isoformat(), ident]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, ident_type: type) -> tuple[datetime, int | str]:
    """A cursor as this API gave it out: [aware created-at, id]; anything else is a 400, never a 500."""
    try:
        created, ident = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        created = datetime.fromisoformat(created)
        if created.tzinfo is None or type(ident) is not ident_type:
            raise ValueError("wrong shape")
        if ident_type is int and not 0 <= ident <= MAX_INT:
            raise ValueError("id out of range")
        if ident_type is str and not re.fullmatch(UUID_PATTERN, ident):
            raise ValueError("not a message id")
        return created, ident
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise Problem("invalid-request", field_detail([("query:cursor", f"not a cursor this API gave out ({exc.__class__.__name__})")])) from None


def _common(query, f: ListFilter):
    if f.type:
        query = query.where(Message.type == f.type)
    if f.subject_id:
        query = query.where(Message.subject_id == f.subject_id)
    if f.since:
        query = query.where(Message.created_at >= f.since)
    if f.until:
        query = query.where(Message.created_at < f.until)
    return query


async def inbox(services: Services, caller: Caller, f: ListFilter, cursor: str | None, size: int) -> MessagePage:
    query = _common(select(Delivery, Message).join(Message, Message.id == Delivery.message_id)
                    .where(Delivery.recipient_oin == caller.oin), f)
    if f.status:
        query = query.where(Delivery.status == f.status)
    if f.open_requests:
        query = query.where(Message.type == "information-request", Delivery.replied_at.is_(None))
    if cursor:
        _, last_id = decode_cursor(cursor, int)
        query = query.where(Delivery.id > last_id)
    async with services.db.read() as session:
        rows = (await session.exec(query.order_by(col(Delivery.id)).limit(size + 1))).all()
    more = len(rows) > size
    rows = rows[:size]
    items = [message_summary(m, [d], services.keyring) for d, m in rows]
    next_cursor = encode_cursor(rows[-1][0].created_at, rows[-1][0].id) if more else None
    return MessagePage(items=items, next_cursor=next_cursor)


async def sent(services: Services, caller: Caller, f: ListFilter, cursor: str | None, size: int) -> MessagePage:
    query = _common(select(Message).where(Message.sender_oin == caller.oin), f)
    if f.status or f.open_requests:
        wanted = select(Delivery.message_id)
        if f.status:
            wanted = wanted.where(Delivery.status == f.status)
        if f.open_requests:
            wanted = wanted.where(Delivery.replied_at.is_(None))
            query = query.where(Message.type == "information-request")
        query = query.where(col(Message.id).in_(wanted))
    if cursor:
        created, last_id = decode_cursor(cursor, str)
        query = query.where(or_(Message.created_at > created, and_(Message.created_at == created, Message.id > last_id)))
    async with services.db.read() as session:
        messages = (await session.exec(query.order_by(col(Message.created_at), col(Message.id)).limit(size + 1))).all()
        more = len(messages) > size
        messages = messages[:size]
        deliveries = (await session.exec(
            select(Delivery).where(col(Delivery.message_id).in_([m.id for m in messages])).order_by(col(Delivery.id))
        )).all() if messages else []
    by_message: dict[str, list[Delivery]] = {}
    for d in deliveries:
        by_message.setdefault(d.message_id, []).append(d)
    items = [message_summary(m, by_message.get(m.id, []), services.keyring) for m in messages]
    next_cursor = encode_cursor(messages[-1].created_at, messages[-1].id) if more else None
    return MessagePage(items=items, next_cursor=next_cursor)


async def deliveries(services: Services, caller: Caller, message_id: str) -> list[DeliveryStatus]:
    """The sender's view of every recipient's delivery; a recipient or anyone else gets 404."""
    async with services.db.read() as session:
        message, _own = await load_visible(session, caller, message_id)
        if message.sender_oin != caller.oin:
            raise Problem("not-found", "no such message")
        rows = (await session.exec(select(Delivery).where(Delivery.message_id == message_id).order_by(col(Delivery.id)))).all()
    return [delivery_status(d, services.keyring) for d in rows]
