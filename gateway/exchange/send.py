"""The send transaction: POST /api/v1/messages.

``prepare`` checks what the request itself says (its contract, may this kind send this type) without the
database. Then ONE transaction: ``read_snapshot`` reads what the decision rests on (recipients, subject,
the request a reply answers, consents, the stay's competence), ``decide`` applies the catalogue to it
(pure), and ``store`` keeps the message, one delivery per recipient, the stay (competence, the trajectory's
deadlines in gateway/trajectory, the SOM triage in gateway/triage), the audit records and the outbox rows — or, when a recipient is refused, ``store_refusal`` keeps only the refusal's audit records. So
the decision stored is the decision made on what was committed, at one ``now``.

The same Idempotency-Key with the same body answers the first receipt again; with another body it is a 409."""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from types import SimpleNamespace

from sqlalchemy import bindparam, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from consent import ConsentRecord, Decision
from consent.catalogue import Catalogue
from contracts import ContractError, sections_present, validate_payload
from contracts.common import MessageContract
from contracts.information_request import INFORMATION_REQUEST
from contracts.registry import UnknownContract
from gateway.audit.record import Activity
from gateway.auth.tokens import Caller
from gateway.db.engine import core
from gateway.db.models import PAYLOAD, Delivery, IdempotencyKey, Message, Organisation
from gateway.exchange import competence, inbox, policy, retention, signatures
from gateway.exchange.recipients import resolve
from gateway.exchange.subjects import SubjectLookup, ensure_subject, look_up
from gateway.exchange.views import delivery_status
from gateway.outbox.events import message_delivered
from gateway.problems import Problem, field_detail
from gateway.receipts import send_receipt_claims
from gateway.schemas import MessageReceipt, SendMessageRequest
from gateway.services import Services, UnitOfWork
from gateway.statuses import DeliveryState
from gateway.telemetry import traced
from gateway.trajectory import record as trajectory
from gateway.triage import record as triage


@dataclass(frozen=True)
class Prepared:
    """The request, checked on its own: a valid contract of a type this kind of organisation sends."""

    body: SendMessageRequest
    contract: MessageContract
    payload: dict
    payload_json: str  # what is sealed: the payload as the contract dumps it, serialised once
    sections: dict[str, str]
    request_hash: str


@dataclass(frozen=True)
class Snapshot:
    """What the decision rests on, read inside the transaction that stores it."""

    recipients: list[Organisation]
    subject: SubjectLookup
    request_answered: Delivery | None  # for a reply: the caller's delivery of the request it answers
    consents: list[ConsentRecord]
    competence: competence.Competence

    @property
    def subject_id(self) -> str:
        return self.subject.subject_id

    @property
    def known_release(self) -> date | None:
        return self.subject.release_date


@dataclass(frozen=True)
class Outcome:
    decisions: dict[str, Decision]  # recipient OIN -> decision
    competence_after: competence.Competence

    def refused(self, snapshot: Snapshot) -> list[tuple[Organisation, Decision]]:
        return [(org, self.decisions[org.oin]) for org in snapshot.recipients if not self.decisions[org.oin].allowed]


@traced("messages.send")
async def send_message(services: Services, caller: Caller, body: SendMessageRequest, idempotency_key: str) -> MessageReceipt:
    request_hash = _request_hash(body)
    prepared = prepare(services.catalogue, caller, body, request_hash)
    proof = await signatures.for_send(services, caller, body, prepared.payload, prepared.sections)
    refusal: Problem | None = None
    try:
        async with services.unit_of_work(caller.actor) as uow:
            earlier = await _earlier_answer(uow.connection, caller, idempotency_key, request_hash)
            if earlier:
                return earlier
            snapshot = await read_snapshot(uow, services, caller, prepared)
            outcome = decide(services.catalogue, caller, prepared, snapshot, uow.now)
            refused = outcome.refused(snapshot)
            if refused:
                refusal = store_refusal(uow, prepared, snapshot, refused)
            else:
                receipt = await store(uow, services, caller, prepared, snapshot, outcome, proof, idempotency_key)
    except IntegrityError:
        # a concurrent request with the same Idempotency-Key won the race: answer as it did
        async with services.db.read() as session:
            earlier = await _earlier_answer(session, caller, idempotency_key, request_hash)
        if earlier:
            return earlier
        raise
    if refusal is not None:
        raise refusal
    return receipt


def prepare(catalogue: Catalogue, caller: Caller, body: SendMessageRequest, request_hash: str) -> Prepared:
    try:
        contract = validate_payload(body.type, body.version, body.payload)
    except UnknownContract as exc:
        raise Problem("unknown-contract", str(exc)) from None
    except ContractError as exc:
        raise Problem("validation-failed", field_detail([("/payload" + p.pointer, p.message) for p in exc.problems])) from None
    if not catalogue.may_send(caller.kind, body.type):
        raise Problem("exchange-not-allowed", f"a {caller.kind} organisation does not send {body.type}")
    payload = contract.model_dump(mode="json", by_alias=True, exclude_none=True)
    for part, author in contract.AUTHORS.items():
        if part in payload and caller.kind != author:
            raise Problem("exchange-not-allowed", f"{part} of {body.type} is filled in by a {author} organisation, "
                          f"not a {caller.kind} organisation")
    return Prepared(body, contract, payload, json.dumps(payload), sections_present(body.type, body.version, payload),
                    request_hash)


async def read_snapshot(uow: UnitOfWork, services: Services, caller: Caller, prepared: Prepared) -> Snapshot:
    """Rows read with Core on the transaction's connection; only the answered request's delivery is an ORM
    object (the send stamps its ``replied_at``). The subject's current stay is locked (``competence``)."""
    subject, conn = prepared.contract.subject, uow.connection
    recipients = await resolve(conn, prepared.body.recipients)
    request_answered = await _request_answered(uow.session, caller, prepared.contract)
    found = await look_up(conn, services.pseudonyms, subject.bsn, subject.skn)
    return Snapshot(
        recipients=recipients, subject=found, request_answered=request_answered,
        consents=await policy.consents_of(conn, found.subject_id),
        competence=await competence.current_competence(conn, found.subject_id, lock=True),
    )


def decide(catalogue: Catalogue, caller: Caller, prepared: Prepared, snapshot: Snapshot, now: datetime) -> Outcome:
    """The catalogue's decision per recipient (pure). The message's own statement of residence or
    intention counts for competence."""
    body, contract = prepared.body, prepared.contract
    after = snapshot.competence.after(contract, caller.oin)
    return Outcome({
        org.oin: policy.counted("send", policy.decide_for(
            catalogue, sender_kind=caller.kind, recipient=org, message_type=body.type, purpose=body.purpose,
            subject_id=snapshot.subject_id, sections=prepared.sections, consents=snapshot.consents, at=now,
            facts=competence.facts_for(org, after, contract)))
        for org in snapshot.recipients
    }, after)


def store_refusal(uow: UnitOfWork, prepared: Prepared, snapshot: Snapshot,
                  refused: list[tuple[Organisation, Decision]]) -> Problem:
    """A refused exchange stores nothing but its audit records (the refusal is itself a processing);
    the problem names the first refused recipient."""
    body = prepared.body
    for org, decision in refused:
        uow.audit(Activity.DENY, decision.deny_reason or "deny", counterparty_oin=org.oin, subject_id=snapshot.subject_id,
                  purpose=body.purpose, legal_basis=decision.basis, rule=decision.rule,
                  detail=f"{body.type}: {decision.explanation}")
    org, decision = refused[0]
    return Problem(policy.DENY_PROBLEM[decision.deny_reason], f"to {org.oin} ({org.kind}): {decision.explanation}")


async def store(uow: UnitOfWork, services: Services, caller: Caller, prepared: Prepared, snapshot: Snapshot,
                outcome: Outcome, proof: signatures.SendProof, idempotency_key: str) -> MessageReceipt:
    """The message, its deliveries and the idempotency key, each kind of row in one statement (SQLAlchemy
    Core: the rows are written once and never changed in this transaction, so the ORM's unit of work would
    only add cost); the audit records and outbox rows follow when the unit of work is sealed."""
    body, contract, settings, now = prepared.body, prepared.contract, services.settings, uow.now
    subject_id, message_id = snapshot.subject_id, str(uuid.uuid4())
    conn = uow.connection
    await ensure_subject(conn, services.pseudonyms, contract.subject.bsn, contract.subject.skn, now, snapshot.subject)
    message = dict(
        id=message_id, type=body.type, version=body.version, sender_oin=caller.oin, subject_id=subject_id,
        purpose=body.purpose, in_reply_to=contract.replies_to(), due_date=contract.answer_due(), trace_id=uow.trace_id,
        created_at=now, sender_purge_due_at=retention.own_copy_due(settings, caller.kind, now), purged_at=None,
        **PAYLOAD.sealed_values(services.keyring, prepared.payload_json, aad=message_id.encode()),
        **proof.columns(services, message_id),
    )
    await conn.execute(_INSERT_MESSAGE, [message])
    release_date = contract.announced_release_date()
    if release_date is not None:
        await retention.reschedule_for_release(uow.session, settings, subject_id, release_date)
    known_release = release_date or snapshot.known_release
    stay_id = await competence.record(uow, subject_id, message_id, body.type, snapshot.competence, outcome.competence_after)
    opened = stay_id != snapshot.competence.stay_id
    await trajectory.record(uow, services.norms, caller, body.type, contract, message_id, stay_id, opened=opened,
                            recipients=snapshot.recipients)
    await triage.record(uow, services.som, body.type, contract, message_id, stay_id,
                        new_admission=opened and snapshot.competence.stay_id is not None,
                        recipients=snapshot.recipients, decisions=outcome.decisions)
    uow.audit(Activity.SEND, "accepted", subject_id=subject_id, message_id=message_id, purpose=body.purpose,
              detail=f"{body.type} v{body.version} to {len(snapshot.recipients)} recipient(s)"
                     + (", signed" if proof.signature else ", unsigned"),
              payload_digest=proof.payload_digest, signature_digest=proof.signature_digest)
    deliveries = []
    for org in snapshot.recipients:
        decision = outcome.decisions[org.oin]
        deliveries.append(dict(
            _NO_DELIVERY_YET, message_id=message_id, recipient_oin=org.oin, recipient_kind=org.kind,
            status=DeliveryState.DELIVERED, decision=policy.stored(decision),
            created_at=now, purge_due_at=retention.delivery_purge_due(settings, org.kind, now, known_release),
        ))
        common = dict(counterparty_oin=org.oin, subject_id=subject_id, message_id=message_id,
                      purpose=body.purpose, legal_basis=decision.basis, rule=decision.rule)
        uow.audit(Activity.DELIVER, decision.outcome, detail=policy.bases_detail(decision), **common)
        policy.audit_consent_disclosures(uow, decision, **common)
        for w in decision.withheld:
            uow.audit(Activity.REDACT, "withheld", detail=f"section {w.section} ({w.category}): {w.reason}", **common)
        uow.emit(message_delivered(SimpleNamespace(**message), SimpleNamespace(**deliveries[-1])))
    if snapshot.request_answered is not None:
        snapshot.request_answered.replied_at = now
        uow.session.add(snapshot.request_answered)
    receipt = MessageReceipt(
        id=message_id, type=body.type, version=body.version, purpose=body.purpose, subject_id=subject_id,
        created_at=now, deliveries=[delivery_status(SimpleNamespace(**d)) for d in deliveries],
        payload_digest=proof.payload_digest, signature_digest=proof.signature_digest,
    )
    receipt.signed_receipt = services.receipts.sign(send_receipt_claims(
        message_id=message_id, message_type=body.type, version=body.version, sender_oin=caller.oin,
        subject_id=subject_id, created_at=now, payload_digest=proof.payload_digest,
        signature_digest=proof.signature_digest,
        deliveries=[{"recipient": org.oin, "decision": outcome.decisions[org.oin].outcome,
                     "withheld": sorted(w.section for w in outcome.decisions[org.oin].withheld)}
                    for org in snapshot.recipients]), now=now)
    await conn.execute(_INSERT_IDEMPOTENCY_KEY, [dict(
        sender_oin=caller.oin, key=idempotency_key, request_hash=prepared.request_hash, message_id=message_id,
        response=receipt.model_dump(mode="json", by_alias=True), created_at=now,
    )])
    # last: the recipients' rows stay locked from here to the commit (gateway/exchange/inbox.py)
    positions = await inbox.take_positions(conn, [org.oin for org in snapshot.recipients])
    for delivery in deliveries:
        delivery["inbox_position"] = positions[delivery["recipient_oin"]]
    await conn.execute(_INSERT_DELIVERY, deliveries)
    return receipt


_INSERT_MESSAGE, _INSERT_DELIVERY, _INSERT_IDEMPOTENCY_KEY = (
    insert(Message.__table__), insert(Delivery.__table__), insert(IdempotencyKey.__table__))
# a new delivery's columns that only later events fill (read, acknowledged, answered, purged)
_NO_DELIVERY_YET = {column.name: None for column in Delivery.__table__.columns if column.name != "id"}


def _request_hash(body: SendMessageRequest) -> str:
    """The body's fingerprint for the Idempotency-Key (its fields are JSON values already: no dump needed)."""
    fields = {"type": body.type, "version": body.version, "purpose": body.purpose, "recipients": body.recipients,
              "payload": body.payload}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


_EARLIER_ANSWER = select(IdempotencyKey.request_hash, IdempotencyKey.response).where(
    IdempotencyKey.sender_oin == bindparam("sender"), IdempotencyKey.key == bindparam("key"))


async def _earlier_answer(db: AsyncSession | AsyncConnection, caller: Caller, key: str,
                         request_hash: str) -> MessageReceipt | None:
    earlier = (await (await core(db)).execute(_EARLIER_ANSWER, {"sender": caller.oin, "key": key})).first()
    if earlier is None:
        return None
    if earlier.request_hash != request_hash:
        raise Problem("idempotency-conflict", "this Idempotency-Key was used for a different request body")
    return MessageReceipt.model_validate(earlier.response)


async def _request_answered(session: AsyncSession, caller: Caller, contract: MessageContract) -> Delivery | None:
    """For a reply (``inReplyTo``): the caller's delivery of the information-request it answers."""
    request_id = contract.replies_to()
    if request_id is None:
        return None
    delivery = (await session.exec(
        select(Delivery).join(Message, Message.id == Delivery.message_id).where(
            Delivery.message_id == request_id, Delivery.recipient_oin == caller.oin,
            Message.type == INFORMATION_REQUEST)
    )).first()
    if delivery is None:
        raise Problem("validation-failed", field_detail([("/payload/inReplyTo", "no information-request with this id was delivered to you")]))
    return delivery
