"""What the parties of a trajectory and the auditors see of it: one subject's stay with its deadlines and who
leads, the deadlines list (``?status=overdue`` is what a municipality or prison works from) and the share met
in time per organisation and norm.

Who sees what: the parties of the stay (its prison and probation organisation, and every organisation that
sent or received a message about the subject during the stay), the responsible organisation of a deadline,
an auditor for the organisation it audits, ``audit:read-all`` everything. Nothing here holds personal data
beyond the subject pseudonym; every look is itself an audit record (activity ``trajectory-query``)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import Field
from sqlalchemy import and_, case, exists, func, or_, select
from sqlmodel import select as orm_select

from gateway.audit.queries import own_organisation, sees_all
from gateway.audit.record import Activity
from gateway.auth.tokens import Caller
from gateway.db.filters import equals, narrowed
from gateway.db.models import Deadline, Delivery, Message, Organisation, Stay
from gateway.db.paging import DAY, INT, Keyset
from gateway.problems import Problem, field_detail
from gateway.schemas import Paged, Wire
from gateway.services import Services
from gateway.statuses import DeadlineState
from gateway.trajectory.norms import load, local_date
from gateway.trajectory.record import facts_of

NormId = StrEnum("NormId", {n.id: n.id for n in load()})  # the norms' ids (their days may be configured; ids not)
DEADLINES = Keyset("deadlines", ((Deadline.due_on, DAY), (Deadline.id, INT)))


class LeadRole(StrEnum):
    CASEMANAGER = "casemanager"  # the prison's casemanager, while the stay lasts
    PROBATION_OFFICER = "probation-officer"  # after release, when supervision follows
    AFTERCARE_COORDINATOR = "aftercare-coordinator"  # after release otherwise: the municipality's nazorg


class Lead(Wire):
    role: LeadRole
    organisation_oin: str | None = Field(description="the organisation that leads; null while it is not known")
    organisation_name: str | None
    basis: str = Field(description="why this party leads")


class Acknowledged(Wire):
    recipient_oin: str
    acknowledgement: str | None
    acknowledged_at: datetime | None


class DeadlineView(Wire):
    id: int
    subject_id: str
    norm: NormId
    title: str
    source: str = Field(description="where the norm comes from")
    round: int = Field(description="the plan review repeats: 1, 2, …")
    responsible_kind: str
    responsible_oin: str | None
    responsible_name: str | None
    due_on: date
    status: DeadlineState
    met_at: datetime | None
    met_by_message_id: str | None
    days_late: int | None = Field(description="met: days after the due day (0: in time); overdue: days since it")
    reason: str | None = Field(description="not-applicable: why")
    acknowledgements: list[Acknowledged] = Field(
        default_factory=list, description="how the recipients acknowledged the message that met it")


class StayView(Wire):
    stay_id: int
    arrival_date: date | None
    prison_oin: str | None
    prison_name: str | None
    detention_kind: str | None
    expected_release_date: date | None
    release_certainty: str | None
    short_stay: bool = Field(description="under four weeks: the short-stay path (no plan norms)")
    ended_at: datetime | None = Field(description="when a later stay began")


class TrajectoryView(Wire):
    subject_id: str
    stay: StayView
    lead: Lead = Field(description="who is responsible now")
    lead_after_release: Lead = Field(description="who leads after release, from the release-notice's legal framework")
    deadlines: list[DeadlineView]


class DeadlinePage(Paged):
    items: list[DeadlineView]


class NormShare(Wire):
    organisation_oin: str | None
    organisation_name: str | None
    norm: NormId
    due: int = Field(description="deadlines due in the period whose outcome is known: met, met late or overdue")
    met_on_time: int
    met_late: int
    overdue: int
    open: int = Field(description="not yet due (not counted in the share)")
    share_on_time: float | None = Field(description="met on time / due; null when nothing was due")
    average_days_late: float | None = Field(description="of those met late")


class DeadlineStats(Wire):
    due_from: date | None
    due_to: date | None
    items: list[NormShare]


@dataclass(frozen=True)
class DeadlineFilter:
    status: DeadlineState | None = None
    norm: NormId | None = None
    organisation: str | None = None  # the responsible organisation
    subject_id: str | None = None
    due_from: date | None = None
    due_to: date | None = None

    def __post_init__(self) -> None:
        if self.due_from and self.due_to and self.due_to < self.due_from:
            raise Problem("invalid-request", field_detail([("query:dueTo", "lies before dueFrom")]))

    def conditions(self) -> list:
        return [c for c in (equals(Deadline.status, self.status), equals(Deadline.norm, self.norm),
                            equals(Deadline.responsible_oin, self.organisation), equals(Deadline.subject_id, self.subject_id),
                            None if self.due_from is None else Deadline.due_on >= self.due_from,
                            None if self.due_to is None else Deadline.due_on <= self.due_to) if c is not None]

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.__dict__.items() if v is not None]
        return ", ".join(parts) or "no filter"


def _party(oin: str):
    """The stay (a ``stays`` row in the query) concerns ``oin``: its prison, its probation organisation, or a
    sender or recipient of a message about the subject while the stay lasted."""
    during = and_(Message.subject_id == Stay.subject_id, Message.created_at >= Stay.created_at,
                  or_(Stay.closed_at.is_(None), Message.created_at < Stay.closed_at))
    return or_(Stay.prison_oin == oin, Stay.probation_oin == oin, exists().where(during, Message.sender_oin == oin),
               exists().where(during, Delivery.message_id == Message.id, Delivery.recipient_oin == oin))


def _visible(caller: Caller, also_responsible: bool = True):
    if sees_all(caller):
        return None
    oin = own_organisation(caller)
    return or_(Deadline.responsible_oin == oin, _party(oin)) if also_responsible else _party(oin)


def _scope(caller: Caller) -> str:
    return "all organisations" if sees_all(caller) else "own organisation"


async def _names(conn, oins) -> dict[str, str]:
    oins = {o for o in oins if o}
    if not oins:
        return {}
    return dict((await conn.execute(select(Organisation.oin, Organisation.name).where(Organisation.oin.in_(oins)))).all())


async def _views(conn, norms, rows: list, today: date) -> list[DeadlineView]:
    names = await _names(conn, {r.responsible_oin for r in rows})
    met_by = {r.met_by_message_id for r in rows if r.met_by_message_id}
    acks: dict[str, list[Acknowledged]] = {}
    if met_by:
        for d in (await conn.execute(select(Delivery.message_id, Delivery.recipient_oin, Delivery.acknowledgement,
                                            Delivery.acknowledged_at).where(Delivery.message_id.in_(met_by))
                                     .order_by(Delivery.id))).all():
            acks.setdefault(d.message_id, []).append(Acknowledged(recipient_oin=d.recipient_oin, acknowledgement=d.acknowledgement,
                                                                  acknowledged_at=d.acknowledged_at))
    out = []
    for r in rows:
        norm = norms[r.norm]
        late = r.days_late if r.status != DeadlineState.OVERDUE else (today - r.due_on).days
        out.append(DeadlineView(
            id=r.id, subject_id=r.subject_id, norm=r.norm, title=norm.title, source=norm.source, round=r.round,
            responsible_kind=r.responsible_kind, responsible_oin=r.responsible_oin, responsible_name=names.get(r.responsible_oin),
            due_on=r.due_on, status=r.status, met_at=r.met_at, met_by_message_id=r.met_by_message_id, days_late=late,
            reason=r.reason, acknowledgements=acks.get(r.met_by_message_id, [])))
    return out


def leads(stay: Any, today: date, names: dict[str, str], municipality_oin: str | None) -> tuple[Lead, Lead]:
    """Who leads now, and who after release: the casemanager of the prison while the stay lasts; after it, the
    probation officer when the release-notice's legal framework says supervision follows (or probation leads
    aftercare), else the aftercare coordinator of the municipality of return."""
    if stay.supervision_follows or stay.aftercare_lead == "probation":
        after = Lead(role=LeadRole.PROBATION_OFFICER, organisation_oin=stay.probation_oin,
                     organisation_name=names.get(stay.probation_oin),
                     basis="release-notice: a legal framework with supervision follows the release")
    else:
        basis = ("release-notice: no supervision follows; the municipality of return leads aftercare"
                 if stay.supervision_follows is not None else
                 "no release-notice yet: without a legal framework the municipality of return leads aftercare")
        after = Lead(role=LeadRole.AFTERCARE_COORDINATOR, organisation_oin=municipality_oin,
                     organisation_name=names.get(municipality_oin), basis=basis)
    released = stay.closed_at is not None or (stay.release_date is not None and stay.release_date <= today)
    if released:
        return after, after
    return Lead(role=LeadRole.CASEMANAGER, organisation_oin=stay.prison_oin, organisation_name=names.get(stay.prison_oin),
                basis="the stay lasts: the prison's casemanager leads"), after


async def trajectory(services: Services, caller: Caller, subject_id: str) -> TrajectoryView:
    """The subject's current stay as ``caller`` may see it; 404 when there is none or the caller is no party."""
    async with services.unit_of_work(caller.actor) as uow:
        conn = uow.connection
        query = narrowed(select(*Stay.__table__.columns).where(Stay.subject_id == subject_id, Stay.detention_kind.is_not(None)),
                         _visible(caller, also_responsible=False))
        stay = (await conn.execute(query.order_by(Stay.id.desc()).limit(1))).first()
        if stay is None:
            raise Problem("not-found", "no trajectory of this subject that you are a party to")
        rows = (await conn.execute(select(*Deadline.__table__.columns).where(Deadline.stay_id == stay.id))).all()
        order = {n: i for i, n in enumerate(services.norms.ids)}
        rows = sorted(rows, key=lambda r: (order.get(r.norm, len(order)), r.round))
        today = local_date(uow.now)
        return_cbs = stay.intended_cbs or stay.residence_cbs
        municipality = (await conn.execute(select(Organisation.oin).where(
            Organisation.kind == "municipality", Organisation.cbs_code == return_cbs, Organisation.active))).scalar() \
            if return_cbs else None
        names = await _names(conn, {stay.prison_oin, stay.probation_oin, municipality})
        lead, after = leads(stay, today, names, municipality)
        view = TrajectoryView(
            subject_id=subject_id, lead=lead, lead_after_release=after, deadlines=await _views(conn, services.norms, rows, today),
            stay=StayView(stay_id=stay.id, arrival_date=stay.arrival_date, prison_oin=stay.prison_oin,
                          prison_name=names.get(stay.prison_oin), detention_kind=stay.detention_kind,
                          expected_release_date=stay.release_date, release_certainty=stay.release_certainty,
                          short_stay=services.norms.not_applicable(services.norms["plan-established"],
                                                                   facts_of(stay._mapping)) is not None,
                          ended_at=stay.closed_at))
        uow.audit(Activity.TRAJECTORY_QUERY, "performed", subject_id=subject_id,
                  detail=f"trajectory of stay {stay.id}; {_scope(caller)}")
    return view


async def deadlines(services: Services, caller: Caller, f: DeadlineFilter, cursor: str | None, size: int) -> DeadlinePage:
    """One page of the deadlines ``caller`` may see, by due day. Each subject on the page is an audit record."""
    after = DEADLINES.decode(cursor)
    query = narrowed(orm_select(Deadline).join(Stay, Stay.id == Deadline.stay_id), _visible(caller), *f.conditions())
    async with services.unit_of_work(caller.actor) as uow:
        page = await DEADLINES.page(uow.session, query, after, size)
        items = await _views(uow.connection, services.norms, page.rows, local_date(uow.now))
        for subject in sorted({r.subject_id for r in page.rows}) or [None]:
            uow.audit(Activity.TRAJECTORY_QUERY, "performed", subject_id=subject,
                      detail=f"deadlines list; {_scope(caller)}; {f.describe()}")
    return DeadlinePage.of(page, items)


async def stats(services: Services, caller: Caller, f: DeadlineFilter) -> DeadlineStats:
    """Per responsible organisation and norm, of the deadlines due in the period: how many were met on time."""
    counted = [s.value for s in DeadlineState if s is not DeadlineState.NOT_APPLICABLE]
    query = narrowed(
        select(Deadline.responsible_oin, Deadline.norm, Deadline.status, func.count(),
               func.sum(case((Deadline.status == DeadlineState.MET_LATE.value, Deadline.days_late), else_=0)))
        .join(Stay, Stay.id == Deadline.stay_id).where(Deadline.status.in_(counted)),
        _visible(caller), *f.conditions(),
    ).group_by(Deadline.responsible_oin, Deadline.norm, Deadline.status)
    async with services.unit_of_work(caller.actor) as uow:
        rows = (await uow.connection.execute(query)).all()
        names = await _names(uow.connection, {r[0] for r in rows})
        uow.audit(Activity.TRAJECTORY_QUERY, "performed", detail=f"deadline statistics; {_scope(caller)}; {f.describe()}")
    cells: dict[tuple, dict] = {}
    for oin, norm, status, count, late_days in rows:
        cell = cells.setdefault((oin or "", norm), {s: 0 for s in DeadlineState} | {"late_days": 0})
        cell[DeadlineState(status)] += count
        cell["late_days"] += late_days or 0
    order = {n: i for i, n in enumerate(services.norms.ids)}
    items = []
    for (oin, norm), c in sorted(cells.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))):
        met, late, overdue = c[DeadlineState.MET], c[DeadlineState.MET_LATE], c[DeadlineState.OVERDUE]
        due = met + late + overdue
        items.append(NormShare(organisation_oin=oin or None, organisation_name=names.get(oin), norm=norm, due=due,
                               met_on_time=met, met_late=late, overdue=overdue, open=c[DeadlineState.OPEN],
                               share_on_time=round(met / due, 4) if due else None,
                               average_days_late=round(c["late_days"] / late, 1) if late else None))
    return DeadlineStats(due_from=f.due_from, due_to=f.due_to, items=items)
