"""Acknowledgements: a recipient says received / accepted / rejected (with a reason); the sender hears of it.
The reason is free text about a person, so it is sealed at rest like a payload and stays out of the
audit record, the events and the logs: only the sender and the recipient see it, through the API.
The answer carries the gateway's signed receipt of the acknowledgement (gateway/receipts.py), reason left out.

``accepted`` and ``rejected`` are final. Two of them racing for one delivery (two clerks, two gateway
processes) must not both win, so the acknowledgement is written by one conditional UPDATE that only
matches while the delivery is still open; the database's row lock lets exactly one through."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update

from gateway.audit.record import Activity
from gateway.auth.tokens import Caller
from gateway.db.models import ACKNOWLEDGEMENT_REASON, Delivery
from gateway.exchange.read import load_visible
from gateway.exchange.retention import is_purged
from gateway.exchange.views import ack_reason_aad, delivery_status
from gateway.outbox.events import message_acknowledged
from gateway.problems import Problem, field_detail
from gateway.receipts import acknowledgement_claims
from gateway.schemas import AcknowledgementReceipt, AcknowledgementRequest
from gateway.services import Services
from gateway.statuses import FINAL_ACKNOWLEDGEMENTS, Acknowledgement, DeliveryState


async def acknowledge(services: Services, caller: Caller, message_id: str, body: AcknowledgementRequest) -> AcknowledgementReceipt:
    said = Acknowledgement(body.status)
    if said is Acknowledgement.REJECTED and not body.reason:
        raise Problem("validation-failed", field_detail([("/reason", "a rejection needs a reason")]))
    async with services.unit_of_work(caller.actor) as uow:
        message, delivery = await load_visible(uow.session, caller, message_id)
        if delivery is None:
            raise Problem("forbidden", "only a recipient acknowledges a message")
        if (refusal := _refusal(delivery, uow.now)) is not None:
            raise refusal
        reason = ACKNOWLEDGEMENT_REASON.sealed_values(services.keyring, body.reason,
                                                      ack_reason_aad(delivery.message_id, delivery.recipient_oin))
        if not await _record_if_open(uow.session, delivery, said, reason, uow.now):
            await uow.session.refresh(delivery)  # another acknowledgement (or the purge) got there first
            raise _refusal(delivery, uow.now) or Problem("conflict", "this delivery changed meanwhile")
        uow.audit(Activity.ACKNOWLEDGE, said.value, counterparty_oin=message.sender_oin, subject_id=message.subject_id,
                  message_id=message.id, purpose=message.purpose, detail=f"{said}, with a reason" if body.reason else None)
        uow.emit(message_acknowledged(message, delivery))
        receipt = services.receipts.sign(acknowledgement_claims(
            message_id=message.id, recipient_oin=delivery.recipient_oin, sender_oin=message.sender_oin, status=said,
            acknowledged_at=delivery.acknowledged_at, payload_digest=message.payload_digest), now=uow.now)
        return AcknowledgementReceipt(**dict(delivery_status(delivery, services.keyring)), signed_receipt=receipt)


def _refusal(delivery: Delivery, now: datetime) -> Problem | None:
    """Why this delivery takes no acknowledgement any more, if it does not."""
    if is_purged(delivery.purged_at, delivery.purge_due_at, now):
        return Problem("gone", "this delivery was purged under the retention schedule")
    if delivery.acknowledgement in FINAL_ACKNOWLEDGEMENTS:
        return Problem("conflict", f"this message was already {delivery.acknowledgement}")
    return None


async def _record_if_open(session, delivery: Delivery, said: Acknowledgement, reason: dict, now: datetime) -> bool:
    """Write the acknowledgement only while no final one is stored and the copy is not purged; False
    when a concurrent request changed that first. The loaded ``delivery`` takes the new values."""
    won = await session.exec(
        update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.purged_at.is_(None),
               or_(Delivery.acknowledgement.is_(None), Delivery.acknowledgement.not_in(FINAL_ACKNOWLEDGEMENTS)))
        .values(acknowledgement=said.value, acknowledged_at=now, status=DeliveryState(said.value).value, **reason)
        .returning(Delivery.id)
        .execution_options(synchronize_session="fetch"))
    return won.first() is not None

