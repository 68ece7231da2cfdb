"""Recording and withdrawing consent (DESIGN §6). Only prisons (dji) and probation record consent;
every change is audited and emits an event. Identifiers only ever arrive in a request body."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator
from sqlmodel import col, select

from gateway.auth.dependencies import actor
from gateway.auth.tokens import Caller
from gateway.db.models import Consent, Delivery, Message
from gateway.exchange.subjects import ensure_subject, find_subject
from gateway.problems import Problem, field_detail
from gateway.schemas import SubjectIdentifiers, Wire
from gateway.services import Services

RECORDING_KINDS = ("dji", "probation")


class ConsentRequest(Wire):
    subject: SubjectIdentifiers
    given_by: Literal["detainee", "other-parent"] = "detainee"
    categories: Annotated[list[str], Field(min_length=1, max_length=20)]
    recipient_oins: Annotated[list[Annotated[str, Field(pattern=r"^\d{20}$")]], Field(max_length=50)] = []
    recipient_kinds: Annotated[list[str], Field(max_length=10)] = []
    purposes: Annotated[list[str], Field(min_length=1, max_length=10)]
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    evidence_reference: Annotated[str, Field(min_length=1, max_length=200, description="e.g. the id of the signed form")]

    @model_validator(mode="after")
    def _scope(self) -> "ConsentRequest":
        if not (self.subject.bsn or self.subject.skn):
            raise ValueError("subject needs a bsn or skn")
        if not (self.recipient_oins or self.recipient_kinds):
            raise ValueError("name at least one recipient organisation (recipientOins) or kind (recipientKinds)")
        return self


class WithdrawalRequest(Wire):
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
    problems += [(f"/purposes/{i}", f"unknown purpose {p!r}") for i, p in enumerate(body.purposes) if p not in cat.purposes]
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


async def record_consent(services: Services, caller: Caller, body: ConsentRequest) -> ConsentView:
    if caller.kind not in RECORDING_KINDS:
        raise Problem("forbidden", "only a prison (dji) or probation organisation records consent")
    _check_scope(services, body)
    async with services.unit_of_work(actor(caller)) as uow:
        subject_id = await ensure_subject(uow.session, services.pseudonyms, body.subject.bsn, body.subject.skn, uow.now)
        consent = Consent(
            id=str(uuid.uuid4()), subject_id=subject_id, given_by=body.given_by, categories=sorted(set(body.categories)),
            recipient_oins=sorted(set(body.recipient_oins)), recipient_kinds=sorted(set(body.recipient_kinds)),
            purposes=sorted(set(body.purposes)), valid_from=body.valid_from or uow.now, valid_until=body.valid_until,
            recorded_by_oin=caller.oin, evidence_reference=body.evidence_reference, recorded_at=uow.now,
        )
        uow.session.add(consent)
        uow.audit("consent-record", "recorded", subject_id=subject_id, legal_basis="consent",
                  detail=f"consent {consent.id}: {', '.join(consent.categories)} for {', '.join(consent.purposes)}")
        uow.emit("consent.recorded", subject_id, {
            "consentId": consent.id, "subjectId": subject_id, "categories": consent.categories,
            "recipientOins": consent.recipient_oins, "recipientKinds": consent.recipient_kinds,
            "parties": sorted({caller.oin, *consent.recipient_oins}),
        })
        return view(consent)


async def withdraw_consent(services: Services, caller: Caller, consent_id: str, body: WithdrawalRequest) -> ConsentView:
    if caller.kind not in RECORDING_KINDS:
        raise Problem("forbidden", "only a prison (dji) or probation organisation withdraws consent")
    async with services.unit_of_work(actor(caller)) as uow:
        consent = await uow.session.get(Consent, consent_id)
        if consent is None:
            raise Problem("not-found", "no such consent")
        if consent.withdrawn_at is not None:
            raise Problem("conflict", "this consent was already withdrawn")
        consent.withdrawn_at, consent.withdrawn_by_oin, consent.withdrawal_reason = uow.now, caller.oin, body.reason
        uow.session.add(consent)
        parties = await _parties_of_subject(uow.session, consent.subject_id)
        uow.audit("consent-withdraw", "withdrawn", subject_id=consent.subject_id, legal_basis="consent",
                  detail=f"consent {consent.id} withdrawn")
        uow.emit("consent.withdrawn", consent.subject_id, {
            "consentId": consent.id, "subjectId": consent.subject_id, "categories": consent.categories,
            "withdrawnAt": uow.now.isoformat(),
            "parties": sorted({caller.oin, consent.recorded_by_oin, *consent.recipient_oins, *parties}),
        })
        return view(consent)


async def list_consents(services: Services, caller: Caller, subject_id: str) -> ConsentList:
    """Consents about a subject that concern the caller: recorded by it, or naming it or its kind."""
    async with services.unit_of_work(actor(caller)) as uow:
        rows = (await uow.session.exec(select(Consent).where(Consent.subject_id == subject_id).order_by(col(Consent.recorded_at)))).all()
        mine = [c for c in rows if c.recorded_by_oin == caller.oin or caller.oin in c.recipient_oins
                or caller.kind in c.recipient_kinds or caller.kind in RECORDING_KINDS]
        uow.audit("read", "consents", subject_id=subject_id, detail=f"{len(mine)} consent record(s) listed")
        return ConsentList(items=[view(c) for c in mine])


async def subject_id_for(services: Services, identifiers: SubjectIdentifiers) -> str | None:
    async with services.db.read() as session:
        return await find_subject(session, services.pseudonyms, identifiers.bsn, identifiers.skn)
