"""Turn stored rows into the API's views (one place, used by send, read and the lists)."""
from __future__ import annotations

from gateway.crypto import KeyRing
from gateway.db.models import ACKNOWLEDGEMENT_REASON, Delivery, Message
from gateway.schemas import DeliveryStatus, MessageSummary, Redaction, ReleasedSection


def ack_reason_aad(message_id: str, recipient_oin: str) -> bytes:
    """Binds a sealed reason to its delivery: it cannot be moved to another row or pass for a payload."""
    return f"acknowledgement-reason:{message_id}:{recipient_oin}".encode()


def acknowledgement_reason(d: Delivery, keyring: KeyRing | None) -> str | None:
    """The recipient's free text, opened for the parties; without the ring it stays shut (None)."""
    return ACKNOWLEDGEMENT_REASON.open_text(keyring, d, ack_reason_aad(d.message_id, d.recipient_oin))


def delivery_status(d: Delivery, keyring: KeyRing | None = None) -> DeliveryStatus:
    return DeliveryStatus(
        recipient_oin=d.recipient_oin, recipient_kind=d.recipient_kind, status=d.status,
        decision=d.decision["outcome"], rule=d.decision.get("rule"), legal_basis=d.decision.get("legalBasis"),
        redactions=[Redaction.model_validate(r) for r in d.decision.get("redactions", [])],
        released_sections=[ReleasedSection.model_validate(r) for r in d.decision.get("releasedSections", [])],
        delivered_at=d.created_at, first_read_at=d.first_read_at, acknowledgement=d.acknowledgement,
        acknowledgement_reason=acknowledgement_reason(d, keyring), acknowledged_at=d.acknowledged_at,
        replied_at=d.replied_at, purged_at=d.purged_at,
    )


def message_summary(m: Message, deliveries: list[Delivery], keyring: KeyRing | None = None) -> MessageSummary:
    return MessageSummary(
        id=m.id, type=m.type, version=m.version, sender_oin=m.sender_oin, subject_id=m.subject_id,
        purpose=m.purpose, created_at=m.created_at, due_date=m.due_date, in_reply_to=m.in_reply_to,
        deliveries=[delivery_status(d, keyring) for d in deliveries],
    )
