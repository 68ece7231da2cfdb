"""Recording and withdrawing consent (DESIGN §6). Only prisons (dji) and probation record consent;
every change is audited and emits an event. Identifiers only ever arrive in a request body."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator
from sqlalchemy import update
from sqlmodel import col, select

from contracts.parties import KINDS
from gateway.audit.record import Activity
from gateway.auth.tokens import Caller
from gateway.db.models import WITHDRAWAL_REASON, Consent, Delivery, Message
from gateway.exchange.competence import current_stay
from gateway.exchange.subjects import ensure_subject, find_subject
from gateway.outbox.events import consent_recorded, consent_withdrawn
from gateway.problems import Problem, field_detail
from gateway.schemas import Inbound, Instant, SubjectIdentifiers, Wire
from gateway.services import Services

RECORDING_KINDS = frozenset(name for name, kind in KINDS.items() if kind.records_consent)


class ConsentRequest(Inbound):
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["recipientOins"]}, {"required": ["recipientKinds"]}]})
    subject: SubjectIdentifiers
    given_by: Literal["detainee", "other-parent"] = "detainee"
    categories: Annotated[list[Annotated[str, Field(max_length=40)]], Field(min_length=1, max_length=20)]
    recipient_oins: Annotated[list[Annotated[str, Field(pattern=r"^[0-9]{20}$")]], Field(max_length=50)] = []
    recipient_kinds: Annotated[list[Annotated[str, Field(max_length=20)]], Field(max_length=10)] = []
    purposes: Annotated[list[Annotated[str, Field(max_length=40)]], Field(min_length=1, max_length=10)]
    valid_from: Instant | None = None
    valid_until: Instant | None = None
    evidence_reference: Annotated[str, Field(min_length=1, max_length=200, description="e.g. the id of the signed form")]

    @model_validator(mode="after")
    def _scope(self) -> "ConsentRequest":
        if not (self.recipient_oins or self.recipient_kinds):
            raise ValueError("name at least one recipient organisation (recipientOins) or kind (recipientKinds)")
        return self


class WithdrawalRequest(Inbound):
    reason: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


class ConsentView(Wire):
    id: str
    subject_id: str
    given_by: str
    categories: list[str]
    recipient_oins: list[str]
    recipient_kinds: list[str]
    purposes: list[str]
    valid_from: datetime
    valid_until: datetime | None
    recorded_by_oin: str
    evidence_reference: str
    recorded_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by_oin: str | None
    withdrawal_reason: str | None


class ConsentList(Wire):
    items: list[ConsentView]


def view(c: Consent) -> ConsentView:
    return ConsentView.model_validate(c, from_attributes=True)


def _check_scope(services: Services, body: ConsentRequest) -> None:
    cat = services.catalogue
    problems = [(f"/categories/{i}", f"unknown category {c!r}") for i, c in enumerate(body.categories) if c not in cat.categories]
    problems += [(f"/purposes/{i}", f"unknown purpose {p!r} (valid: {', '.join(sorted(cat.purposes))})") for i, p in enumerate(body.purposes) if p not in cat.purposes]
    problems += [(f"/recipientKinds/{i}", f"unknown party kind {k!r}") for i, k in enumerate(body.recipient_kinds) if k not in cat.party_kinds]
    allowed = cat.consent_givers.get(body.given_by, frozenset())
    for i, c in enumerate(body.categories):
        if c in cat.consent_is_no_basis_for:
            problems.append((f"/categories/{i}", f"consent is no basis for {c!r} in this chain (it passes on the law or never)"))
        elif c in cat.categories and allowed is not None and c not in allowed:
            problems.append((f"/categories/{i}", f"{body.given_by} cannot consent to {c!r} (consent opens only {sorted(allowed)})"))
    if body.valid_until and body.valid_from and body.valid_until <= body.valid_from:
        problems.append(("/validUntil", "validUntil must lie after validFrom"))
    if problems:
        raise Problem("validation-failed", field_detail(problems))


async def _parties_of_subject(session, subject_id: str) -> set[str]:
    rows = (await session.exec(
        select(Delivery.recipient_oin, Message.sender_oin).join(Message, Message.id == Delivery.message_id)
        .where(Message.subject_id == subject_id))).all()
    return {oin for pair in rows for oin in pair}


@dataclass(frozen=True)
class Involvement:
    """Who deals with a subject now: the current prison (from the stay) and every organisation that
    sent or received a message about the subject."""

    current_prison: str | None
    parties: frozenset[str]


async def _involvement(session, subject_id: str) -> Involvement:
    stay = await current_stay(session, subject_id)
    return Involvement(stay.prison_oin if stay else None, frozenset(await _parties_of_subject(session, subject_id)))


def concerns(consent: Consent, caller: Caller, involved: Involvement) -> bool:
    """A consent concerns its recorder, the organisations it names, the subject's current prison, and
    an organisation that deals with the subject (a party to its messages) when the consent names its
    kind or it is a prison or probation organisation. No one else learns that it exists."""
    if caller.oin in (consent.recorded_by_oin, involved.current_prison) or caller.oin in consent.recipient_oins:
        return True
    return caller.oin in involved.parties and (caller.kind in consent.recipient_kinds or caller.kind in RECORDING_KINDS)


def may_withdraw(consent: Consent, caller: Caller, involved: Involvement) -> bool:
    """The detainee withdraws through whoever holds or supervises them now: the recorder, the current
    prison, or a probation organisation that deals with the subject. Other prisons may not."""
    if caller.oin in (consent.recorded_by_oin, involved.current_prison):
        return True
    return caller.kind == "probation" and caller.oin in involved.parties


async def record_consent(services: Services, caller: Caller, body: ConsentRequest) -> ConsentView:
    if caller.kind not in RECORDING_KINDS:
        raise Problem("forbidden", "only a prison (dji) or probation organisation records consent")
    _check_scope(services, body)
    async with services.unit_of_work(caller.actor) as uow:
        subject_id = await ensure_subject(uow.session, services.pseudonyms, body.subject.bsn, body.subject.skn, uow.now)
        consent = Consent(
            id=str(uuid.uuid4()), subject_id=subject_id, given_by=body.given_by, categories=sorted(set(body.categories)),
            recipient_oins=sorted(set(body.recipient_oins)), recipient_kinds=sorted(set(body.recipient_kinds)),
            purposes=sorted(set(body.purposes)), valid_from=body.valid_from or uow.now, valid_until=body.valid_until,
            recorded_by_oin=caller.oin, evidence_reference=body.evidence_reference, recorded_at=uow.now,
        )
        uow.session.add(consent)
        uow.audit(Activity.CONSENT_RECORD, "recorded", subject_id=subject_id, legal_basis="consent",
                  detail=f"consent {consent.id}: {', '.join(consent.categories)} for {', '.join(consent.purposes)}")
        uow.emit(consent_recorded(consent))
        return view(consent)


async def withdraw_consent(services: Services, caller: Caller, consent_id: str, body: WithdrawalRequest) -> ConsentView:
    if caller.kind not in RECORDING_KINDS:
        raise Problem("forbidden", "only a prison (dji) or probation organisation withdraws consent")
    async with services.unit_of_work(caller.actor) as uow:
        consent = await uow.session.get(Consent, consent_id)
        involved = await _involvement(uow.session, consent.subject_id) if consent else None
        if consent is None or not may_withdraw(consent, caller, involved):
            raise Problem("not-found", "no such consent (or not one you may withdraw)")
        if consent.withdrawn_at is not None or not await _record_withdrawal_once(services, uow, consent, caller, body.reason):
            raise Problem("conflict", "this consent was already withdrawn")
        uow.audit(Activity.CONSENT_WITHDRAW, "withdrawn", subject_id=consent.subject_id, legal_basis="consent",
                  detail=f"consent {consent.id} withdrawn")
        uow.emit(consent_withdrawn(consent, involved.parties))
        return view(consent).model_copy(update={"withdrawal_reason": body.reason})  # the withdrawer's own words back


async def _record_withdrawal_once(services: Services, uow, consent: Consent, caller: Caller, reason: str | None) -> bool:
    """One conditional UPDATE, so that of withdrawals racing for the same consent exactly one is
    recorded (and audited, and told); False when another got there first. ``consent`` takes the new values."""
    # free text about the detainee: sealed at rest, never in the audit record or event
    sealed = WITHDRAWAL_REASON.sealed_values(services.keyring, reason, withdrawal_reason_aad(consent.id)) if reason else {}
    won = await uow.session.exec(
        update(Consent).where(Consent.id == consent.id, Consent.withdrawn_at.is_(None))
        .values(withdrawn_at=uow.now, withdrawn_by_oin=caller.oin, **sealed).returning(Consent.id)
        .execution_options(synchronize_session="fetch"))
    return won.first() is not None


def withdrawal_reason_aad(consent_id: str) -> bytes:
    return f"withdrawal-reason:{consent_id}".encode()


async def list_consents(services: Services, caller: Caller, subject_id: str) -> ConsentList:
    """Consents about a subject that concern the caller (see ``concerns``)."""
    async with services.unit_of_work(caller.actor) as uow:
        rows = (await uow.session.exec(select(Consent).where(Consent.subject_id == subject_id).order_by(col(Consent.recorded_at)))).all()
        involved = await _involvement(uow.session, subject_id)
        mine = [c for c in rows if concerns(c, caller, involved)]
        uow.audit(Activity.READ, "consents", subject_id=subject_id, detail=f"{len(mine)} consent record(s) listed")
        return ConsentList(items=[view(c) for c in mine])


async def subject_id_for(services: Services, identifiers: SubjectIdentifiers) -> str | None:
    async with services.db.read() as session:
        return await find_subject(session, services.pseudonyms, identifiers.bsn, identifiers.skn)
