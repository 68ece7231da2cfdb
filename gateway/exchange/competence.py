"""The facts the catalogue's conditions ask for, per recipient: is this the competent municipality
(art. 18a lid 4 Pbw), is this the mayor of the municipality of return, is the art. 18b condition asserted.

The competent municipalities are kept per subject and prison stay (``stays``), learnt from the notices the
gateway carries: a detention-notice opens a stay (or completes the current one, same arrival date) with
the municipality of residence and the intended municipality; a transfer-notice or release-notice that
states an intended municipality moves competence there. Every change is an audit record."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

from sqlalchemy import bindparam
from sqlmodel import col, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.common import MessageContract
from gateway.audit.record import Activity
from gateway.db.engine import core
from gateway.db.models import Organisation, Stay

COMPETENT_MUNICIPALITY = "competent-municipality"
MUNICIPALITY_OF_RETURN = "municipality-of-return"
SERIOUS_OFFENCE_RISK = "serious-offence-risk"
STAY_OPENING_MESSAGE = "detention-notice"


@dataclass(frozen=True)
class Competence:
    residence: str | None = None  # CBS code of the municipality of residence before detention
    intended: str | None = None  # CBS code of the intended municipality after release
    arrival: date | None = None
    prison_oin: str | None = None
    stay_id: int | None = None  # the stay row this describes; None for a stay still to be opened

    @property
    def municipalities(self) -> frozenset[str]:
        return frozenset(c for c in (self.residence, self.intended) if c)

    @property
    def municipality_of_return(self) -> str | None:
        """Where the detainee returns: the intended municipality, or while none is stated, home."""
        return self.intended or self.residence

    def after(self, contract: MessageContract, sender_oin: str) -> "Competence":
        """What ``contract`` makes of the current stay. A detention-notice with another arrival date
        opens a new stay: competence starts again from what it states."""
        stated = contract.stated_municipalities()
        arrival = contract.stay_arrival()
        if contract.MESSAGE_TYPE == STAY_OPENING_MESSAGE:
            base = self if arrival == self.arrival else Competence(arrival=arrival)  # no stay_id: a new stay
            return replace(base, residence=stated.get("residence", base.residence),
                           intended=stated.get("intended", base.intended), prison_oin=sender_oin)
        prison = getattr(contract, "to_prison_oin", None) or self.prison_oin
        return replace(self, intended=stated.get("intended", self.intended), arrival=self.arrival or arrival,
                       prison_oin=prison)

    def changes_from(self, before: "Competence") -> list[str]:
        """Human-readable changes for the audit trail (CBS codes only: no personal data)."""
        out = []
        for label, old, new in (("municipality of residence", before.residence, self.residence),
                                ("intended municipality", before.intended, self.intended)):
            if old != new:
                out.append(f"{label} {old or '-'} -> {new or '-'}")
        return out


def facts_for(recipient: Organisation, competence: Competence, contract: MessageContract) -> frozenset[str]:
    facts = set()
    if contract.risk_18b() is not None:
        facts.add(SERIOUS_OFFENCE_RISK)
    if recipient.cbs_code is not None:
        if recipient.cbs_code in competence.municipalities:
            facts.add(COMPETENT_MUNICIPALITY)
        if recipient.cbs_code == competence.municipality_of_return:
            facts.add(MUNICIPALITY_OF_RETURN)
    return frozenset(facts)


async def current_stay(session: AsyncSession, subject_id: str) -> Stay | None:
    return (await session.exec(
        select(Stay).where(Stay.subject_id == subject_id).order_by(col(Stay.id).desc()).limit(1))).first()


def competence_of(stay: Stay | None) -> Competence:
    if stay is None:
        return Competence()
    return Competence(stay.residence_cbs, stay.intended_cbs, stay.arrival_date, stay.prison_oin, stay.id)


async def current_competence(db: AsyncSession | AsyncConnection, subject_id: str, *, lock: bool = False) -> Competence:
    """As ``current_stay`` says, read as a row (Core). ``lock``: the send path's read, which locks the stay's row
    until its transaction ends (PostgreSQL; SQLite runs writers one at a time anyway), so that two messages about
    one stay keep its competence and its deadlines (gateway/trajectory) one after the other, each on what the
    other committed."""
    statement = _CURRENT_STAY_LOCKED if lock else _CURRENT_STAY
    return competence_of((await (await core(db)).execute(statement, {"subject_id": subject_id})).first())


_CURRENT_STAY = (select(*Stay.__table__.columns).where(Stay.subject_id == bindparam("subject_id"))
                 .order_by(col(Stay.id).desc()).limit(1))
_CURRENT_STAY_LOCKED = _CURRENT_STAY.with_for_update()


async def record(uow, subject_id: str, message_id: str, message_type: str, before: Competence, after: Competence) -> int | None:
    """Keep the stay as ``after`` says, inside the send's transaction; audit what moved. Returns the id of
    the stay the message belongs to now (None when there is none), flushed so that rows may refer to it."""
    if after == before:
        return before.stay_id
    stay = await current_stay(uow.session, subject_id)
    if stay is None or (message_type == STAY_OPENING_MESSAGE and stay.arrival_date != after.arrival):
        stay = Stay(subject_id=subject_id, created_at=uow.now)
        before = Competence()
    stay.arrival_date, stay.prison_oin = after.arrival, after.prison_oin
    stay.residence_cbs, stay.intended_cbs, stay.updated_at = after.residence, after.intended, uow.now
    uow.session.add(stay)
    changes = after.changes_from(before)
    if changes:
        uow.audit(Activity.COMPETENCE, "established" if not before.municipalities else "changed", subject_id=subject_id,
                  message_id=message_id, legal_basis="pbw-18a", detail=f"{message_type}: {'; '.join(changes)}")
    await uow.session.flush()  # the stay's id, and its row as Core reads it in this transaction (gateway/trajectory)
    return stay.id
