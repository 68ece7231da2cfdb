"""Acknowledgements: a recipient says received / accepted / rejected (with a reason); the sender hears of it."""
from __future__ import annotations

from gateway.auth.dependencies import actor
from gateway.auth.tokens import Caller
from gateway.exchange.read import load_visible
from gateway.exchange.retention import is_purged
from gateway.exchange.views import delivery_status
from gateway.problems import Problem, field_detail
from gateway.schemas import AcknowledgementRequest, DeliveryStatus
from gateway.services import Services


async def acknowledge(services: Services, caller: Caller, message_id: str, body: AcknowledgementRequest) -> DeliveryStatus:
    if body.status == "rejected" and not body.reason:
        raise Problem("validation-failed", field_detail([("/reason", "a rejection needs a reason")]))
    async with services.unit_of_work(actor(caller)) as uow:
        message, delivery = await load_visible(uow.session, caller, message_id)
        if delivery is None:
            raise Problem("forbidden", "only a recipient acknowledges a message")
        if is_purged(delivery.purged_at, delivery.purge_due_at, uow.now):
            raise Problem("gone", "this delivery was purged under the retention schedule")
        if delivery.acknowledgement in ("accepted", "rejected"):
            raise Problem("conflict", f"this message was already {delivery.acknowledgement}")
        delivery.acknowledgement, delivery.acknowledgement_reason = body.status, body.reason
        delivery.acknowledged_at, delivery.status = uow.now, body.status
        uow.session.add(delivery)
        uow.audit("acknowledge", body.status, counterparty_oin=message.sender_oin, subject_id=message.subject_id,
                  message_id=message.id, purpose=message.purpose, detail=body.reason)
        uow.emit("message.acknowledged", message.subject_id, {
            "messageId": message.id, "messageType": message.type, "subjectId": message.subject_id,
            "senderOin": message.sender_oin, "recipientOin": caller.oin, "acknowledgement": body.status,
            "parties": sorted({message.sender_oin, caller.oin}),
        })
        return delivery_status(delivery)
