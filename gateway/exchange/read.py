"""The read path: GET /api/v1/messages/{id}. Policy is decided again, now, for the purpose the reader
states and the consents in force now: a withdrawn consent hides what it had opened, also in older
messages. Only the sender and the recipients can see a message; anyone else gets 404."""
from __future__ import annotations

import json

from sqlalchemy import case, update
from sqlmodel import select

from contracts import redact, sections_present, validate_payload
from gateway.audit.record import Activity
from gateway.auth.tokens import Caller
from gateway.db.models import PAYLOAD, Delivery, Message
from gateway.exchange import competence, policy, signatures
from gateway.exchange.recipients import BY_OINS
from gateway.exchange.retention import is_purged
from gateway.outbox.events import message_read
from gateway.problems import Problem
from gateway.schemas import MessageView
from gateway.services import Services
from gateway.statuses import DeliveryState


async def load_visible(session, caller: Caller, message_id: str) -> tuple[Message, Delivery | None]:
    """The message and the caller's own delivery of it; 404 for anyone who is not a party."""
    message = await session.get(Message, message_id)
    if message is None:
        raise Problem("not-found", "no such message")
    delivery = (await session.exec(
        select(Delivery).where(Delivery.message_id == message_id, Delivery.recipient_oin == caller.oin))).first()
    if delivery is None and message.sender_oin != caller.oin:
        raise Problem("not-found", "no such message")
    return message, delivery


def _open(services: Services, message: Message) -> dict:
    return json.loads(services.keyring.open(PAYLOAD.get(message), aad=message.id.encode()))


async def _own_copy_purposes(session, services: Services, caller: Caller, message: Message) -> list[str]:
    """What a sender may state when it reads its own copy: the purpose it sent it for, or one the
    catalogue rule of the exchange (this sender kind to the kind of each recipient) allows. Any other
    purpose would stand in the audit log as a reason the sender never had."""
    kinds = (await session.exec(select(Delivery.recipient_kind).where(Delivery.message_id == message.id))).all()
    rules = [services.catalogue.rule_for(message.type, caller.kind, kind) for kind in set(kinds)]
    return sorted({message.purpose}.union(*(r.purposes for r in rules if r)))


async def read_message(services: Services, caller: Caller, message_id: str, purpose: str) -> MessageView:
    async with services.unit_of_work(caller.actor) as uow:
        message, delivery = await load_visible(uow.session, caller, message_id)
        if delivery is None:  # the sender reads its own copy
            view, denial = await _own_copy(services, uow, caller, message, purpose)
        else:
            view, denial = await _delivered_copy(services, uow, caller, message, delivery, purpose)
    if denial is not None:  # the denial's audit record is committed with the unit of work; now answer
        raise denial
    return view


async def _own_copy(services: Services, uow, caller: Caller, message: Message, purpose: str) -> tuple[MessageView | None, Problem | None]:
    """The sender's own copy, for a purpose it may have (``_own_copy_purposes``)."""
    base = dict(subject_id=message.subject_id, message_id=message.id, purpose=purpose, counterparty_oin=None)
    allowed = await _own_copy_purposes(uow.session, services, caller, message)
    if purpose not in allowed:
        detail = (f"your own copy is read for the purpose it was sent for, or one its rule allows "
                  f"({', '.join(allowed)}), not {purpose!r}")
        uow.audit(Activity.DENY, "purpose-not-allowed", detail=f"read own copy: {detail}", **base)
        return None, Problem("purpose-not-allowed", detail)
    if is_purged(message.purged_at, message.sender_purge_due_at, uow.now) or message.payload_ciphertext is None:
        raise Problem("gone", "the sender's copy was purged under the retention schedule")
    payload = _open(services, message)
    opened, altered = await _checked(services, uow, message, payload, "read own copy", **base)
    if altered is not None:
        return None, altered
    uow.audit(Activity.READ, "own-copy", **base)
    return _view(message, purpose, payload, [], None, None, [], signatures.proof_for(message, opened)), None


async def _delivered_copy(services: Services, uow, caller: Caller, message: Message, delivery: Delivery,
                          purpose: str) -> tuple[MessageView | None, Problem | None]:
    """A recipient's copy: policy decided again, now, for the stated purpose, consents and competence."""
    conn = uow.connection  # Core rows for what is only read; the message and delivery were loaded by the ORM
    if is_purged(delivery.purged_at, delivery.purge_due_at, uow.now) or message.payload_ciphertext is None:
        raise Problem("gone", "this payload was purged under the retention schedule; only the audit trail remains")
    payload = _open(services, message)
    opened, altered = await _checked(services, uow, message, payload, "read", subject_id=message.subject_id,
                                     message_id=message.id, purpose=purpose, counterparty_oin=message.sender_oin)
    if altered is not None:
        return None, altered
    parties = {o.oin: o for o in (await conn.execute(BY_OINS, {"oins": [message.sender_oin, caller.oin]})).all()}
    sender, me = parties[message.sender_oin], parties[caller.oin]
    contract = validate_payload(message.type, message.version, payload)
    now_competent = await competence.current_competence(conn, message.subject_id)
    decision = policy.counted("read", policy.decide_for(
        services.catalogue, sender_kind=sender.kind, recipient=me, message_type=message.type, purpose=purpose,
        subject_id=message.subject_id, sections=sections_present(message.type, message.version, payload),
        consents=await policy.consents_of(conn, message.subject_id), at=uow.now,
        facts=competence.facts_for(me, now_competent, contract),
    ))
    common = dict(subject_id=message.subject_id, message_id=message.id, purpose=purpose,
                  counterparty_oin=message.sender_oin, legal_basis=decision.basis, rule=decision.rule)
    if not decision.allowed:
        uow.audit(Activity.DENY, decision.deny_reason or "deny", detail=f"read: {decision.explanation}", **common)
        return None, Problem(policy.DENY_PROBLEM[decision.deny_reason], decision.explanation)
    uow.audit(Activity.READ, decision.outcome, detail=policy.bases_detail(decision), **common)
    policy.audit_consent_disclosures(uow, decision, **common)
    for w in decision.withheld:
        uow.audit(Activity.REDACT, "withheld", detail=f"read: section {w.section} ({w.category}): {w.reason}", **common)
    if delivery.first_read_at is None and await _mark_first_read(conn, delivery, uow.now):
        uow.emit(message_read(message, caller.oin, purpose))
    return _view(message, purpose, redact(message.type, message.version, payload, decision.withheld_sections),
                 policy.redactions(decision), decision.basis, decision.rule, policy.released(decision),
                 signatures.proof_for(message, opened, decision.withheld_sections)), None


async def _checked(services: Services, uow, message: Message, payload: dict, where: str,
                   **audited) -> tuple[signatures.Opened | None, Problem | None]:
    """The stored payload's proof, or ``integrity-failed`` with its audit record (committed with the unit of work)."""
    try:
        return await signatures.opened(services, uow.connection, message, payload), None
    except Problem as altered:
        uow.audit(Activity.DENY, "integrity-failed", detail=f"{where}: the stored payload no longer matches its proof", **audited)
        return None, altered


async def _mark_first_read(conn, delivery: Delivery, now) -> bool:
    """Stamp the first read, once: of reads racing for the same copy only the one whose UPDATE still
    finds ``first_read_at`` empty gets True, so the sender is told once. The loaded row is not refreshed."""
    read_if_delivered = case((Delivery.status == DeliveryState.DELIVERED, DeliveryState.READ.value), else_=Delivery.status)
    first = await conn.execute(
        update(Delivery).where(Delivery.id == delivery.id, Delivery.first_read_at.is_(None))
        .values(first_read_at=now, status=read_if_delivered).returning(Delivery.id))
    return first.first() is not None


def _view(message: Message, purpose: str, payload: dict, redactions, basis, rule, released, proof) -> MessageView:
    return MessageView(
        id=message.id, type=message.type, version=message.version, sender_oin=message.sender_oin,
        subject_id=message.subject_id, purpose=message.purpose, read_purpose=purpose, legal_basis=basis, rule=rule,
        created_at=message.created_at, due_date=message.due_date, in_reply_to=message.in_reply_to,
        redactions=redactions, released_sections=released, payload=payload, proof=proof,
    )
