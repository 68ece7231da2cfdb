"""Glue between the stored consents and the pure decision engine in ``consent/``."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam
from sqlmodel import select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from consent import ConsentRecord, Decision, Exchange, decide
from consent.catalogue import Catalogue
from gateway.audit.record import Activity
from gateway.db.engine import core
from gateway.db.models import Consent, Organisation
from gateway.metrics import POLICY_DECISIONS
from gateway.schemas import Redaction, ReleasedSection

DENY_PROBLEM = {
    "no-route": "exchange-not-allowed",
    "unknown-purpose": "purpose-not-allowed",
    "purpose-not-allowed": "purpose-not-allowed",
    "consent-required": "consent-required",
    "recipient-not-competent": "recipient-not-competent",
    "condition-not-met": "condition-not-met",
}


def as_record(c: Consent) -> ConsentRecord:
    return ConsentRecord(
        id=c.id, subject_id=c.subject_id, given_by=c.given_by, categories=frozenset(c.categories),
        recipient_oins=frozenset(c.recipient_oins), recipient_kinds=frozenset(c.recipient_kinds),
        purposes=frozenset(c.purposes), valid_from=c.valid_from, valid_until=c.valid_until, withdrawn_at=c.withdrawn_at,
    )


_CONSENTS_OF = select(*Consent.__table__.columns).where(Consent.subject_id == bindparam("subject_id"))


async def consents_of(db: AsyncSession | AsyncConnection, subject_id: str) -> list[ConsentRecord]:
    rows = (await (await core(db)).execute(_CONSENTS_OF, {"subject_id": subject_id})).all()
    return [as_record(c) for c in rows]


def decide_for(
    catalogue: Catalogue, *, sender_kind: str, recipient: Organisation, message_type: str, purpose: str,
    subject_id: str, sections: dict[str, str], consents: list[ConsentRecord], at: datetime,
    facts: frozenset[str] = frozenset(),
) -> Decision:
    return decide(
        catalogue,
        Exchange(sender_kind=sender_kind, recipient_kind=recipient.kind, recipient_oin=recipient.oin,
                 message_type=message_type, purpose=purpose, subject_id=subject_id, sections=sections, at=at,
                 facts=facts),
        consents,
    )


def counted(stage: str, decision: Decision) -> Decision:
    """Count a decision in brb_policy_decisions_total (stage send|read; a rule id from the catalogue, or
    ``none`` when no rule applied): called once where each stage decides."""
    POLICY_DECISIONS.labels(stage, decision.outcome, decision.rule or "none").inc()
    return decision


def redactions(decision: Decision) -> list[Redaction]:
    return [Redaction(section=w.section, category=w.category, reason=w.reason, rule=decision.rule) for w in decision.withheld]


def released(decision: Decision) -> list[ReleasedSection]:
    return [ReleasedSection(section=r.section, category=r.category, legal_basis=r.basis, consents=list(r.consents))
            for r in decision.released]


def bases_detail(decision: Decision) -> str:
    """Per released section the basis that let it through, for the audit record's detail."""
    return "sections: " + ", ".join(f"{r.section}={r.basis}" for r in decision.released) if decision.released else "no sections"


def audit_consent_disclosures(uow, decision: Decision, **common) -> None:
    """A section opened by consent is recorded on basis ``consent``, naming the consents that opened it."""
    for r in decision.released:
        if r.basis == "consent":
            uow.audit(Activity.DISCLOSE, "consent", **{**common, "legal_basis": "consent"},
                      detail=f"section {r.section} ({r.category}) opened by consent {', '.join(r.consents)}")


def stored(decision: Decision) -> dict:
    """The decision as kept with the delivery (and shown to the sender)."""
    return {
        "outcome": decision.outcome, "rule": decision.rule, "legalBasis": decision.basis,
        "explanation": decision.explanation, "consents": list(decision.consents),
        "redactions": [r.model_dump(by_alias=True) for r in redactions(decision)],
        "releasedSections": [r.model_dump(by_alias=True) for r in released(decision)],
    }
