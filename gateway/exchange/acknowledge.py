"""Acknowledgements: a recipient says received / accepted / rejected (with a reason); the sender hears of it.
The reason is free text about a person, so it is sealed at rest like a payload and stays out of the
audit record, the events and the logs: only the sender and the recipient see it, through the API."""
from __future__ import annotations

from gateway.auth.dependencies import actor
from gateway.auth.tokens import Caller
from gateway.db.models import Delivery
from gateway.exchange.read import load_visible
from gateway.exchange.retention import is_purged
from gateway.exchange.views import ack_reason_aad, delivery_status
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
        delivery.acknowledgement, delivery.acknowledged_at, delivery.status = body.status, uow.now, body.status
        _keep_reason(services, delivery, body.reason)
        uow.session.add(delivery)
        uow.audit("acknowledge", body.status, counterparty_oin=message.sender_oin, subject_id=message.subject_id,
                  message_id=message.id, purpose=message.purpose, detail=f"{body.status}, with a reason" if body.reason else None)
        uow.emit("message.acknowledged", message.subject_id, {
            "messageId": message.id, "messageType": message.type, "subjectId": message.subject_id,
            "senderOin": message.sender_oin, "recipientOin": caller.oin, "acknowledgement": body.status,
            "parties": sorted({message.sender_oin, caller.oin}),
        })
        return delivery_status(delivery, services.keyring)


def _keep_reason(services: Services, delivery: Delivery, reason: str | None) -> None:
    """Seal the reason into the delivery (or clear it: each acknowledgement states its own)."""
    aad = ack_reason_aad(delivery.message_id, delivery.recipient_oin)
    sealed = services.keyring.seal(reason.encode(), aad=aad) if reason else None
    delivery.acknowledgement_reason = None  # never plain text again, also where migration 0003 left one
    delivery.acknowledgement_reason_ciphertext = sealed.ciphertext if sealed else None
    delivery.acknowledgement_reason_wrapped_key = sealed.wrapped_key if sealed else None
    delivery.acknowledgement_reason_key_id = sealed.key_id if sealed else None
