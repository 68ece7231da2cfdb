"""What the prison and probation see of the SOM triage: the worklist of every current detainee with outcome,
criterion and since when (``GET /triage``), and one subject's triage with its explanation, the facts that fired
it and where they came from, the rest group's profile, the override, the joint decision and the history.

The SOM is the prison's and probation's alone (DESIGN: never a municipality or mayor): a stay's triage is seen by
its prison and its probation organisation, nobody else; any other kind of organisation is refused. Every look is
an audit record (activity ``triage-query``), one per subject listed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import Field
from sqlalchemy import or_, select
from sqlmodel import select as orm_select

from gateway.audit.record import Activity
from gateway.auth.tokens import Caller
from gateway.db.filters import equals, narrowed
from gateway.db.models import Stay, Triage, TriageChange
from gateway.db.paging import INT, Keyset
from gateway.problems import Problem
from gateway.schemas import Paged, Wire
from gateway.services import Services
from gateway.statuses import TriageOutcome, TriageState
from gateway.trajectory.norms import local_date
from gateway.triage.evaluator import deviates_from, load
from gateway.triage.facts import SOM_PARTIES, Facts
from gateway.triage.record import open_facts

CriterionId = StrEnum("CriterionId", {i: i for i in load().ids})
TRIAGES = Keyset("triage", ((Triage.id, INT),))


class TriageItem(Wire):
    subject_id: str
    stay_id: int
    prison_oin: str | None
    probation_oin: str | None
    arrival_date: date | None
    phase: str | None = Field(description="remand (before the verdict) or convicted")
    round: int = Field(description="1; a new round after the verdict")
    moment: str = Field(description="week-3, after-verdict or new-admission")
    outcome: TriageOutcome
    criterion: CriterionId = Field(description="the som.yaml criterion that decided; rest-group: none did")
    criterion_title: str
    since: datetime = Field(description="when the outcome last changed")
    status: TriageState = Field(description="open, or decided by the joint decision (part 3)")
    decision_outcome: str | None = Field(description="the joint decision's outcome, once decided")
    decided_at: datetime | None


class TriagePage(Paged):
    items: list[TriageItem]


class SourceView(Wire):
    message_id: str
    message_type: str
    on: date = Field(description="the day the message was sent")


class FiredFact(Wire):
    fact: str
    value: Any
    sources: list[SourceView]


class Indicator(Wire):
    id: str
    title: str


class Profile(Wire):
    """What the professionals weigh in the rest group (SOM part 2), as far as the exchange carried it."""

    recidivism_risk: str | None = None
    injury_risk: str | None = None
    criminogenic_factors: list[str] = []
    protective_factors: list[str] = []
    self_reliance: dict | None = None
    motivable: bool | None = None
    special_conditions: list[str] = []
    care_contacts: list[str] = []
    indicators: list[Indicator] = Field(default_factory=list, description="the tiering: the more, the higher")


class DecisionView(Wire):
    outcome: str
    justification: str
    deviates_from_guideline: bool = Field(description="as the decision states it")
    deviates_from_first_pass: bool = Field(description="the gateway's comparison with the first pass it closed")
    decided_on: date
    message_id: str


class ChangeView(Wire):
    round: int
    outcome: TriageOutcome
    criterion: str
    previous_outcome: str | None
    cause: str = Field(description="the message type, decision, or time")
    message_id: str | None
    changed_at: datetime


class TriageView(TriageItem):
    explanation: str
    mandatory: bool = Field(description="the guideline makes this priority mandatory (art. 43.3 placement)")
    professional_weighing: bool = Field(description="the guideline leaves the outcome to the professionals")
    first_pass: str | None = Field(description="an override: the no-priority criterion it overrode")
    override_reason: str | None
    fired: list[FiredFact] = Field(description="the facts that fired the criterion, and the messages they came from")
    profile: Profile | None = Field(description="the rest group's weighing: set when the professionals weigh")
    decision: DecisionView | None
    reevaluate_on: date | None = Field(description="the day time alone may change the outcome")
    history: list[ChangeView]


@dataclass(frozen=True)
class TriageFilter:
    outcome: TriageOutcome | None = None
    status: TriageState | None = None
    criterion: CriterionId | None = None

    def conditions(self) -> list:
        return [c for c in (equals(Triage.outcome, self.outcome), equals(Triage.status, self.status),
                            equals(Triage.criterion, self.criterion)) if c is not None]

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.__dict__.items() if v is not None) or "no filter"


def _party(caller: Caller):
    """Only the prison and the probation organisation of the stay; other kinds are refused outright."""
    if caller.kind not in SOM_PARTIES:
        raise Problem("forbidden", "the SOM triage is shared between the prison and probation only")
    return or_(Stay.prison_oin == caller.oin, Stay.probation_oin == caller.oin)


def _item(t: Triage, stay: Stay, rules) -> dict:
    return dict(subject_id=t.subject_id, stay_id=t.stay_id, prison_oin=stay.prison_oin, probation_oin=stay.probation_oin,
                arrival_date=stay.arrival_date, phase=t.phase, round=t.round, moment=t.moment, outcome=t.outcome,
                criterion=t.criterion, criterion_title=rules[t.criterion].title, since=t.since, status=t.status,
                decision_outcome=t.decision_outcome, decided_at=t.decided_at)


async def worklist(services: Services, caller: Caller, f: TriageFilter, cursor: str | None, size: int) -> TriagePage:
    """One page of the current detainees' triages of the caller's stays (not ended, not released before today)."""
    party = _party(caller)
    after = TRIAGES.decode(cursor)
    async with services.unit_of_work(caller.actor) as uow:
        today = local_date(uow.now)
        current = [Stay.closed_at.is_(None), or_(Stay.release_date.is_(None), Stay.release_date >= today)]
        query = narrowed(orm_select(Triage, Stay).join(Stay, Stay.id == Triage.stay_id), party, *current, *f.conditions())
        page = await TRIAGES.page(uow.session, query, after, size)
        items = [TriageItem(**_item(t, stay, services.som)) for t, stay in page.rows]
        for subject in sorted({t.subject_id for t, _ in page.rows}) or [None]:
            uow.audit(Activity.TRIAGE_QUERY, "performed", subject_id=subject, detail=f"triage worklist; {f.describe()}")
    return TriagePage.of(page, items)


async def triage(services: Services, caller: Caller, subject_id: str) -> TriageView:
    """The subject's triage of its latest stay that the caller is a party to; 404 otherwise."""
    party = _party(caller)
    rules = services.som
    async with services.unit_of_work(caller.actor) as uow:
        found = (await uow.session.exec(narrowed(
            orm_select(Triage, Stay).join(Stay, Stay.id == Triage.stay_id).where(Triage.subject_id == subject_id), party)
            .order_by(Triage.id.desc()).limit(1))).first()
        if found is None:
            raise Problem("not-found", "no SOM triage of this subject that you are a party to")
        t, stay = found
        facts = open_facts(services.keyring, t)
        evaluation = rules.evaluate(facts, local_date(uow.now))
        history = (await uow.connection.execute(select(*TriageChange.__table__.c).where(TriageChange.triage_id == t.id)
                                                .order_by(TriageChange.id))).all()
        view = TriageView(
            **_item(t, stay, rules), explanation=rules[t.criterion].explanation, mandatory=rules[t.criterion].mandatory,
            professional_weighing=t.outcome == TriageOutcome.REST_GROUP, first_pass=evaluation.first_pass,
            override_reason=facts.override.value if facts.override else None,
            fired=[FiredFact(fact=f.fact, value=f.value, sources=[SourceView(**s.model_dump()) for s in f.sources])
                   for f in evaluation.fired] if evaluation.criterion == t.criterion else [],
            profile=_profile(rules, facts, evaluation.indicators) if t.outcome == TriageOutcome.REST_GROUP else None,
            decision=_decision(facts, history), reevaluate_on=t.reevaluate_on,
            history=[ChangeView(round=h.round, outcome=h.outcome, criterion=h.criterion, previous_outcome=h.previous_outcome,
                                cause=h.cause, message_id=h.message_id, changed_at=h.changed_at) for h in history])
        uow.audit(Activity.TRIAGE_QUERY, "performed", subject_id=subject_id, detail=f"triage of stay {t.stay_id}")
    return view


def _profile(rules, facts: Facts, indicators: tuple[str, ...]) -> Profile:
    known = {name: k.value for name, k in facts.profile.items()}
    titles = {i.id: i.title for i in rules.indicators}
    return Profile(**known, indicators=[Indicator(id=i, title=titles[i]) for i in indicators])


def _decision(facts: Facts, history: list) -> DecisionView | None:
    d = facts.decision
    if d is None:
        return None
    closed = next((h for h in reversed(history) if h.cause == "decision"), None)
    first_pass = closed.outcome if closed is not None else None
    return DecisionView(outcome=d.outcome, justification=d.justification, deviates_from_guideline=d.deviates_from_guideline,
                        deviates_from_first_pass=deviates_from(first_pass, d.outcome), decided_on=d.decided_on,
                        message_id=d.source.message_id)
