"""The send transaction: POST /api/v1/messages.

validate the contract -> resolve recipients -> decide policy per recipient -> ONE transaction with the
message, one delivery per recipient, the audit records and the outbox rows -> the receipt. The same
Idempotency-Key with the same body answers the first receipt again; with another body it is a 409."""
from __future__ import annotations

import hashlib
import json
import uuid

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from contracts import ContractError, sections_present, validate_payload
from contracts.common import MessageContract
from contracts.registry import UnknownContract
from gateway.auth.dependencies import actor
from gateway.auth.tokens import Caller
from gateway.db.models import Delivery, IdempotencyKey, Message, SubjectRecord
from gateway.exchange import competence, policy, retention
from gateway.exchange.recipients import resolve
from gateway.exchange.subjects import ensure_subject, subject_for
from gateway.exchange.views import delivery_status
from gateway.problems import Problem, field_detail
from gateway.schemas import MessageReceipt, SendMessageRequest
from gateway.services import Services


async def send_message(services: Services, caller: Caller, body: SendMessageRequest, idempotency_key: str) -> MessageReceipt:
    request_hash = hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
    earlier = await _earlier_answer(services, caller, idempotency_key, request_hash)
    if earlier:
        return earlier

    contract = _validate(body)
    payload = contract.model_dump(mode="json", by_alias=True, exclude_none=True)
    if not services.catalogue.may_send(caller.kind, body.type):
        raise Problem("exchange-not-allowed", f"a {caller.kind} organisation does not send {body.type}")
    sections = sections_present(body.type, body.version, payload)
    bsn, skn = contract.subject.bsn, contract.subject.skn
    now = services.clock.now()

    async with services.db.read() as session:
        recipients = await resolve(session, body.recipients)
        request_delivery = await _request_answered(session, caller, contract)
        subject_id = await subject_for(session, services.pseudonyms, bsn, skn)
        consents = await policy.consents_of(session, subject_id)
        before = await competence.current_competence(session, subject_id)
    after = before.after(contract, caller.oin)  # the message's own statement of residence/intention counts

    decisions = {
        org.oin: policy.decide_for(services.catalogue, sender_kind=caller.kind, recipient=org, message_type=body.type,
                                   purpose=body.purpose, subject_id=subject_id, sections=sections, consents=consents,
                                   at=now, facts=competence.facts_for(org, after, contract))
        for org in recipients
    }
    denied = [(org, decisions[org.oin]) for org in recipients if not decisions[org.oin].allowed]
    if denied:
        await _record_denial(services, caller, body, subject_id, denied)
        org, decision = denied[0]
        raise Problem(policy.DENY_PROBLEM[decision.deny_reason], f"to {org.oin} ({org.kind}): {decision.explanation}")

    message_id = str(uuid.uuid4())
    release_date = contract.announced_release_date()
    try:
        async with services.unit_of_work(actor(caller)) as uow:
            subject_id = await ensure_subject(uow.session, services.pseudonyms, bsn, skn, uow.now)
            sealed = services.keyring.seal(json.dumps(payload).encode(), aad=message_id.encode())
            uow.session.add(Message(
                id=message_id, type=body.type, version=body.version, sender_oin=caller.oin, subject_id=subject_id,
                purpose=body.purpose, in_reply_to=contract.replies_to(), due_date=contract.answer_due(),
                trace_id=uow.trace_id, created_at=uow.now, payload_ciphertext=sealed.ciphertext,
                wrapped_key=sealed.wrapped_key, key_id=sealed.key_id,
                sender_purge_due_at=retention.own_copy_due(services.settings, caller.kind, uow.now),
            ))
            await uow.session.flush()
            if release_date is not None:
                await retention.reschedule_for_release(uow.session, services.settings, subject_id, release_date)
            known_release = release_date or await _known_release_date(uow.session, subject_id)
            await competence.record(uow, subject_id, message_id, body.type, before, after)
            uow.audit("send", "accepted", subject_id=subject_id, message_id=message_id, purpose=body.purpose,
                      detail=f"{body.type} v{body.version} to {len(recipients)} recipient(s)")
            deliveries = []
            for org in recipients:
                decision = decisions[org.oin]
                delivery = Delivery(
                    message_id=message_id, recipient_oin=org.oin, recipient_kind=org.kind, status="delivered",
                    decision=policy.stored(decision), created_at=uow.now,
                    purge_due_at=retention.delivery_purge_due(services.settings, org.kind, uow.now, known_release),
                )
                uow.session.add(delivery)
                deliveries.append(delivery)
                common = dict(counterparty_oin=org.oin, subject_id=subject_id, message_id=message_id,
                              purpose=body.purpose, legal_basis=decision.basis, rule=decision.rule)
                uow.audit("deliver", decision.outcome, detail=policy.bases_detail(decision), **common)
                policy.audit_consent_disclosures(uow, decision, **common)
                for w in decision.withheld:
                    uow.audit("redact", "withheld", detail=f"section {w.section} ({w.category}): {w.reason}", **common)
                uow.emit("message.delivered", subject_id, {
                    "messageId": message_id, "messageType": body.type, "subjectId": subject_id,
                    "senderOin": caller.oin, "recipientOin": org.oin, "purpose": body.purpose,
                    "decision": decision.outcome, "parties": sorted({caller.oin, org.oin}),
                })
            if request_delivery is not None:
                request_delivery.replied_at = uow.now
                uow.session.add(request_delivery)
            receipt = MessageReceipt(
                id=message_id, type=body.type, version=body.version, purpose=body.purpose, subject_id=subject_id,
                created_at=uow.now, deliveries=[delivery_status(d) for d in deliveries],
            )
            uow.session.add(IdempotencyKey(
                sender_oin=caller.oin, key=idempotency_key, request_hash=request_hash, message_id=message_id,
                response=receipt.model_dump(mode="json", by_alias=True), created_at=uow.now,
            ))
    except IntegrityError:
        # a concurrent request with the same Idempotency-Key won the race: answer as it did
        earlier = await _earlier_answer(services, caller, idempotency_key, request_hash)
        if earlier:
            return earlier
        raise
    return receipt


def _validate(body: SendMessageRequest) -> MessageContract:
    try:
        return validate_payload(body.type, body.version, body.payload)
    except UnknownContract as exc:
        raise Problem("unknown-contract", str(exc)) from None
    except ContractError as exc:
        raise Problem("validation-failed", field_detail([("/payload" + p.pointer, p.message) for p in exc.problems])) from None


async def _earlier_answer(services: Services, caller: Caller, key: str, request_hash: str) -> MessageReceipt | None:
    async with services.db.read() as session:
        earlier = await session.get(IdempotencyKey, (caller.oin, key))
    if earlier is None:
        return None
    if earlier.request_hash != request_hash:
        raise Problem("idempotency-conflict", "this Idempotency-Key was used for a different request body")
    return MessageReceipt.model_validate(earlier.response)


async def _request_answered(session, caller: Caller, contract: MessageContract) -> Delivery | None:
    """For a reply (``inReplyTo``): the caller's delivery of the request it answers."""
    request_id = contract.replies_to()
    if request_id is None:
        return None
    delivery = (await session.exec(
        select(Delivery).join(Message, Message.id == Delivery.message_id).where(
            Delivery.message_id == request_id, Delivery.recipient_oin == caller.oin,
            Message.type == "information-request")
    )).first()
    if delivery is None:
        raise Problem("validation-failed", field_detail([("/payload/inReplyTo", "no information-request with this id was delivered to you")]))
    return delivery


async def _known_release_date(session, subject_id: str):
    subject = await session.get(SubjectRecord, subject_id)
    return subject.release_date if subject else None


async def _record_denial(services: Services, caller: Caller, body: SendMessageRequest, subject_id: str, denied) -> None:
    """A refused exchange stores nothing but its audit records (the refusal is itself a processing)."""
    async with services.unit_of_work(actor(caller)) as uow:
        for org, decision in denied:
            uow.audit("deny", decision.deny_reason or "deny", counterparty_oin=org.oin, subject_id=subject_id,
                      purpose=body.purpose, legal_basis=decision.basis, rule=decision.rule,
                      detail=f"{body.type}: {decision.explanation}")
