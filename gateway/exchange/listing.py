"""Inbox and sent lists: keyset (cursor) pagination, oldest first, so a connector can poll onwards
from the last cursor it saw. Filters: type, status, subject pseudonym, time range, open requests."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import defer
from sqlmodel import col, select

from contracts.information_request import INFORMATION_REQUEST
from gateway.auth.tokens import Caller
from gateway.db.filters import equals, in_range, narrowed
from gateway.db.models import Delivery, Message
from gateway.db.paging import INSTANT, UUID, Keyset
from gateway.exchange.inbox import INBOX
from gateway.exchange.read import load_visible
from gateway.exchange.views import delivery_status, message_summary
from gateway.problems import Problem
from gateway.schemas import DeliveryStatus, MessagePage
from gateway.services import Services

# a list shows no payload: its sealed bytes stay in the database (raiseload: reaching for them is a bug)
WITHOUT_PAYLOAD = (defer(Message.payload_ciphertext, raiseload=True), defer(Message.wrapped_key, raiseload=True))
SENT = Keyset("sent", ((Message.created_at, INSTANT), (Message.id, UUID)))


@dataclass(frozen=True)
class ListFilter:
    type: str | None = None
    status: str | None = None
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    open_requests: bool = False


def _common(query, f: ListFilter):
    return narrowed(query, equals(Message.type, f.type), equals(Message.subject_id, f.subject_id),
                    in_range(Message.created_at, f.since, f.until))


async def inbox(services: Services, caller: Caller, f: ListFilter, cursor: str | None, size: int) -> MessagePage:
    after = INBOX.decode(cursor)
    query = narrowed(select(Delivery, Message).join(Message, Message.id == Delivery.message_id)
                     .options(*WITHOUT_PAYLOAD).where(Delivery.recipient_oin == caller.oin), equals(Delivery.status, f.status))
    query = _common(query, f)
    if f.open_requests:
        query = query.where(Message.type == INFORMATION_REQUEST, Delivery.replied_at.is_(None))
    async with services.db.read() as session:
        page = await INBOX.page(session, query, after, size)
    items = [message_summary(m, [d], services.keyring) for d, m in page.rows]
    return MessagePage.of(page, items)


async def sent(services: Services, caller: Caller, f: ListFilter, cursor: str | None, size: int) -> MessagePage:
    after = SENT.decode(cursor)
    query = _common(select(Message).options(*WITHOUT_PAYLOAD).where(Message.sender_oin == caller.oin), f)
    if f.status or f.open_requests:
        wanted = narrowed(select(Delivery.message_id), equals(Delivery.status, f.status))
        if f.open_requests:
            wanted = wanted.where(Delivery.replied_at.is_(None))
            query = query.where(Message.type == INFORMATION_REQUEST)
        query = query.where(col(Message.id).in_(wanted))
    async with services.db.read() as session:
        page = await SENT.page(session, query, after, size)
        messages = page.rows
        deliveries = (await session.exec(
            select(Delivery).where(col(Delivery.message_id).in_([m.id for m in messages])).order_by(col(Delivery.id))
        )).all() if messages else []
    by_message: dict[str, list[Delivery]] = {}
    for d in deliveries:
        by_message.setdefault(d.message_id, []).append(d)
    items = [message_summary(m, by_message.get(m.id, []), services.keyring) for m in messages]
    return MessagePage.of(page, items)


async def deliveries(services: Services, caller: Caller, message_id: str) -> list[DeliveryStatus]:
    """The sender's view of every recipient's delivery; a recipient or anyone else gets 404."""
    async with services.db.read() as session:
        message, _own = await load_visible(session, caller, message_id)
        if message.sender_oin != caller.oin:
            raise Problem("not-found", "no such message")
        rows = (await session.exec(select(Delivery).where(Delivery.message_id == message_id).order_by(col(Delivery.id)))).all()
    return [delivery_status(d, services.keyring) for d in rows]
