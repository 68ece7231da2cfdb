"""The trajectory in the send transaction: what a message says of its stay, and which deadlines it opens,
meets, reschedules or moves. Called by ``gateway/exchange/send.py`` once the stay is known; a message of a
type no norm cares about costs nothing here.

The trajectory opens with the ``detention-notice`` (the arrival). A release date (detention-notice, release
notice) schedules the norms counted back from the release; a ``release-notice`` also states the legal
framework that decides who leads after release; a ``transfer-notice`` moves the open deadlines of the
prison to the receiving prison (``competence.py`` already moved the stay)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update

from contracts.common import MessageContract
from gateway.db.models import Deadline, Organisation, Stay
from gateway.statuses import PENDING_DEADLINES, DeadlineState
from gateway.trajectory.norms import Norm, Norms, Sent, StayFacts, days_late, local_date

OPENING_MESSAGE = "detention-notice"
CERTAINTY_UNEXPECTED = "unexpected"


class _Fields(Mapping):
    """A contract's attributes by snake_case name, as a norm's ``where`` reads them."""

    def __init__(self, contract: MessageContract):
        self.contract = contract

    def __getitem__(self, key: str) -> Any:
        return getattr(self.contract, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self.contract, key, default)

    def __iter__(self):
        return iter(type(self.contract).model_fields)

    def __len__(self) -> int:
        return len(type(self.contract).model_fields)


def facts_of(stay: Mapping) -> StayFacts:
    """The norms' view of a stay's row (its column values)."""
    return StayFacts(stay["arrival_date"], stay["release_date"], stay["release_certainty"] == CERTAINTY_UNEXPECTED,
                     stay["detention_kind"])


def stated(message_type: str, contract: MessageContract, sender: Any, recipients: Iterable[Organisation],
           stay: Mapping) -> dict:
    """What this message says of the stay, as column values of ``stays`` (only what it changes)."""
    values: dict = {}
    if message_type == OPENING_MESSAGE:
        values["detention_kind"] = str(contract.detention_kind)
        if contract.known_release_date is not None:
            values["release_date"] = contract.known_release_date
        if contract.probation_organisation_oin:
            values["probation_oin"] = contract.probation_organisation_oin
    elif message_type == "release-notice":
        framework = contract.legal_framework
        values.update(release_date=contract.expected_release_date, release_certainty=str(contract.certainty),
                      supervision_follows=bool(framework and framework.supervision),
                      aftercare_lead=str(framework.aftercare_lead) if framework else "municipality")
    if stay["probation_oin"] is None and "probation_oin" not in values:  # the first probation organisation involved
        probation = [sender.oin] if sender.kind == "probation" else [r.oin for r in recipients if r.kind == "probation"]
        if probation:
            values["probation_oin"] = probation[0]
    return {k: v for k, v in values.items() if stay[k] != v}


@dataclass
class _Row:
    """A deadline as this transaction sees it: read, changed, or new."""

    values: dict
    new: bool = False  # to insert
    changed: bool = False
    follows_now: bool = False  # opened by this message meeting the norm before it: not met by the same message

    def set(self, **values) -> None:
        self.values.update(values)
        self.changed = True

    @property
    def pending(self) -> bool:
        return DeadlineState(self.values["status"]).pending


async def record(uow, norms: Norms, sender: Any, message_type: str, contract: MessageContract, message_id: str,
                 stay_id: int | None, opened: bool, recipients: list[Organisation]) -> None:
    """Keep the stay's trajectory as this message leaves it (``opened``: the message began a new stay)."""
    if stay_id is None or message_type not in norms.message_types:
        return
    conn, now = uow.connection, uow.now
    found = (await conn.execute(_STAY_AND_DEADLINES, {"id": stay_id, "once": norms.once})).all()
    stay = {c.name: found[0]._mapping[c] for c in _STAYS.c}
    if stay["detention_kind"] is None and message_type != OPENING_MESSAGE:
        return  # no detention-notice yet: no trajectory to keep
    changes = stated(message_type, contract, sender, recipients, stay)
    if changes:
        await conn.execute(update(Stay).where(Stay.id == stay_id).values(**changes))
    stay |= changes
    facts = facts_of(stay)
    if opened:
        await _close_earlier_stays(conn, stay["subject_id"], stay_id, now)
    rows = [_Row({c.name: r._mapping[label] for c, label in _DEADLINE_LABELS}) for r in found
            if r._mapping["deadline_id"] is not None]
    sent = Sent(message_type, sender.kind, frozenset(r.kind for r in recipients), _Fields(contract))
    responsible = {"dji": stay["prison_oin"], "probation": stay["probation_oin"]}
    today = local_date(now)
    for norm in norms:
        _keep(norms, norm, rows, facts, sent, message_id, message_type, responsible, stay, now, today)
    if message_type == "transfer-notice" or "probation_oin" in changes:
        for row in rows:  # open deadlines follow the stay's prison (a transfer) and its probation organisation
            owner = responsible.get(row.values["responsible_kind"])
            if row.pending and owner and row.values["responsible_oin"] != owner:
                row.set(responsible_oin=owner)
    new = [r.values | {"created_at": now, "updated_at": now} for r in rows if r.new]
    if new:
        await conn.execute(insert(Deadline), new)
    changed = [{"key": r.values["id"], **{k: r.values[k] for k in _MUTABLE}, "updated_at": now}
               for r in rows if r.changed and not r.new]
    if changed:
        await conn.execute(_UPDATE_DEADLINE, changed)


def _keep(norms: Norms, norm: Norm, rows: list[_Row], facts: StayFacts, sent: Sent, message_id: str, message_type: str,
          responsible: dict, stay: Mapping, now, today) -> None:
    """One norm of the stay: not applicable, opened, rescheduled or met by this message, in that order."""
    mine = [r for r in rows if r.values["norm"] == norm.id]
    latest = max(mine, key=lambda r: r.values["round"]) if mine else None
    reason = norms.not_applicable(norm, facts)
    if reason:
        if latest is not None and latest.values["status"] == DeadlineState.OPEN:
            latest.set(status=DeadlineState.NOT_APPLICABLE.value, reason=reason)
        return
    if latest is None and not norm.repeats and (message_type == OPENING_MESSAGE or norm.anchor != "arrival"):
        due = norms.due_on(norm, facts)
        if due is None:
            return  # counted from a date not known yet (the release)
        latest = _open(rows, norm, 1, due, stay, responsible)
    if latest is None or not latest.pending:
        return
    if not norm.repeats:  # a new release date (or an unexpected release) moves a deadline counted from it
        due = norms.due_on(norm, facts)
        if due is not None and due != latest.values["due_on"]:
            latest.set(due_on=due, status=DeadlineState.OPEN.value if due >= today else latest.values["status"],
                       overdue_at=None if due >= today else latest.values["overdue_at"])
    if norm.meets(sent) and not latest.follows_now:
        late = days_late(latest.values["due_on"], today)
        latest.set(status=(DeadlineState.MET_LATE if late else DeadlineState.MET).value, met_at=now,
                   met_by_message_id=message_id, days_late=late)
        following = norms.following(norm)
        if following is not None and not norms.not_applicable(following, facts):
            next_round = latest.values["round"] + 1 if following is norm else 1
            _open(rows, following, next_round, norms.due_on(following, facts, started=today), stay,
                  responsible).follows_now = True


def _open(rows: list[_Row], norm: Norm, round_: int, due, stay: Mapping, responsible: dict) -> _Row:
    row = _Row({"stay_id": stay["id"], "subject_id": stay["subject_id"], "norm": norm.id, "round": round_,
                "responsible_kind": norm.responsible, "responsible_oin": responsible.get(norm.responsible),
                "due_on": due, "status": DeadlineState.OPEN.value, "met_at": None, "met_by_message_id": None,
                "days_late": None, "overdue_at": None, "reason": None}, new=True)
    rows.append(row)
    return row


async def _close_earlier_stays(conn, subject_id: str, stay_id: int, now) -> None:
    """A new stay began: the earlier ones end, and what they still had open no longer applies."""
    await conn.execute(update(Stay).where(Stay.subject_id == subject_id, Stay.id != stay_id, Stay.closed_at.is_(None))
                       .values(closed_at=now))
    await conn.execute(update(Deadline).where(Deadline.subject_id == subject_id, Deadline.stay_id != stay_id,
                                              Deadline.status == DeadlineState.OPEN.value)
                       .values(status=DeadlineState.NOT_APPLICABLE.value, reason="a later stay began", updated_at=now))


# One statement reads the stay and the deadlines a message may change: every round still pending, and the one row
# of each norm that does not repeat (so a met norm is not opened again); never the history of a repeating norm's
# met rounds, however long the stay. The send path locked the stay's row before (``competence.current_competence``,
# lock=True): two messages about one stay keep its deadlines one after the other, each reading what the other
# committed, so neither opens the same round twice nor loses the other's change. (A lock taken by this statement
# would not do on PostgreSQL: after waiting for it, the joined deadlines would still be those read before.)
_STAYS, _DEADLINES = Stay.__table__, Deadline.__table__
_DEADLINE_LABELS = [(c, f"deadline_{c.name}") for c in _DEADLINES.c]
_STAY_AND_DEADLINES = (
    select(*_STAYS.c, *(c.label(label) for c, label in _DEADLINE_LABELS))
    .select_from(_STAYS.outerjoin(_DEADLINES, and_(
        _DEADLINES.c.stay_id == _STAYS.c.id,
        or_(_DEADLINES.c.status.in_(PENDING_DEADLINES), _DEADLINES.c.norm.in_(bindparam("once", expanding=True))))))
    .where(_STAYS.c.id == bindparam("id")))
_MUTABLE = ("responsible_oin", "due_on", "status", "met_at", "met_by_message_id", "days_late", "overdue_at", "reason")
_UPDATE_DEADLINE = (update(Deadline.__table__).where(Deadline.__table__.c.id == bindparam("key"))
                    .values({c: bindparam(c) for c in (*_MUTABLE, "updated_at")}))
