"""Retention (DESIGN §6): when each copy of a payload may be kept until, and the purge job.

Municipalities and mayors keep what they received until ``retention_after_release_days`` after the
subject's release date (default six months), or ``retention_without_release_days`` after delivery when
no release date is known. Every other copy (the sender's, probation's, a prison's) follows
``sender_retention_days`` of its party kind. The ciphertext is destroyed once every copy is purged."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import func, update
from sqlmodel import select

from gateway.audit.record import Activity
from gateway.db.models import Delivery, Message, SubjectRecord
from gateway.outbox.events import retention_purged
from gateway.services import SYSTEM, Services
from gateway.settings import Settings
from gateway.statuses import DeliveryState


def delivery_purge_due(settings: Settings, recipient_kind: str, delivered_at: datetime, release_date: date | None) -> datetime:
    if recipient_kind in settings.retention_after_release_days:
        if release_date is not None:
            start = datetime.combine(release_date, time.min, tzinfo=timezone.utc)
            return start + timedelta(days=settings.retention_after_release_days[recipient_kind])
        return delivered_at + timedelta(days=settings.retention_without_release_days.get(recipient_kind, 365))
    return own_copy_due(settings, recipient_kind, delivered_at)


def own_copy_due(settings: Settings, party_kind: str, created_at: datetime) -> datetime:
    return created_at + timedelta(days=settings.sender_retention_days.get(party_kind, 3650))


def is_purged(purged_at: datetime | None, due: datetime | None, now: datetime) -> bool:
    return purged_at is not None or (due is not None and due <= now)


async def reschedule_for_release(session, settings: Settings, subject_id: str, release_date: date) -> None:
    """A (new) release date moves the purge date of every copy held by a retention-scheduled kind."""
    await session.exec(update(SubjectRecord).where(SubjectRecord.id == subject_id).values(release_date=release_date))
    rows = (await session.exec(
        select(Delivery).join(Message, Message.id == Delivery.message_id).where(
            Message.subject_id == subject_id, Delivery.purged_at.is_(None),
            Delivery.recipient_kind.in_(list(settings.retention_after_release_days)),
        )
    )).all()
    for d in rows:
        d.purge_due_at = delivery_purge_due(settings, d.recipient_kind, d.created_at, release_date)
        session.add(d)


async def purge_due(services: Services, batch: int = 500) -> int:
    """Purge every copy whose time has come; returns how many copies were purged."""
    purged = 0
    while True:
        async with services.unit_of_work(SYSTEM) as uow:
            now = uow.now
            rows = (await uow.session.exec(
                select(Delivery, Message).join(Message, Message.id == Delivery.message_id)
                .where(Delivery.purged_at.is_(None), Delivery.purge_due_at <= now).limit(batch)
                .with_for_update(of=Delivery, skip_locked=True)  # two purge jobs take disjoint copies, each once
            )).all()
            for delivery, message in rows:
                delivery.purged_at, delivery.status = now, DeliveryState.PURGED
                uow.session.add(delivery)
                uow.audit(Activity.PURGE, "purged", counterparty_oin=delivery.recipient_oin, subject_id=message.subject_id,
                          message_id=message.id, detail=f"retention for {delivery.recipient_kind}")
                uow.emit(retention_purged(message, delivery))
            senders = (await uow.session.exec(
                select(Message).where(Message.purged_at.is_(None), Message.sender_purge_due_at <= now).limit(batch)
                .with_for_update(skip_locked=True)
            )).all()
            for message in senders:
                message.purged_at = now
                uow.session.add(message)
                uow.audit(Activity.PURGE, "purged", subject_id=message.subject_id, message_id=message.id,
                          detail="retention of the sender's own copy")
            await uow.session.flush()
            # destroy ciphertexts no copy needs any more
            open_copies = select(func.count()).select_from(Delivery).where(
                Delivery.message_id == Message.id, Delivery.purged_at.is_(None)).scalar_subquery()
            await uow.session.exec(
                update(Message).where(Message.purged_at.is_not(None), Message.payload_ciphertext.is_not(None), open_copies == 0)
                .values(payload_ciphertext=None, wrapped_key=None, salts_ciphertext=None, salts_wrapped_key=None)
            )
        purged += len(rows) + len(senders)
        if len(rows) < batch and len(senders) < batch:
            return purged
