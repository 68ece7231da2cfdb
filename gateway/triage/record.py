"""The SOM triage in the send transaction: fold what a message says into the stay's facts, run the first pass
(``evaluator.py``), and keep what changed — the outcome (``triage.changed``), a new round after the verdict, the
joint decision that closes a round. Called by ``gateway/exchange/send.py`` after the trajectory; a message of a
type the triage does not read costs nothing here.

Every detainee is triaged: the detention-notice opens the triage of its stay (a new admission: a triage of its
own). Each change is an audit record (activity ``triage``) naming the criterion and the facts that fired it, by
name and message id, never their values. The facts themselves are sealed with the key ring."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from consent import Decision
from contracts.common import MessageContract
from gateway.audit.record import Activity
from gateway.db.models import TRIAGE_FACTS, Organisation, Stay, Triage, TriageChange
from gateway.outbox.events import triage_changed
from gateway.problems import Problem, field_detail
from gateway.statuses import TriageState
from gateway.trajectory.norms import local_date
from gateway.triage.evaluator import Evaluation, Rules
from gateway.triage.facts import MESSAGE_TYPES, SOM_PARTIES, Facts, Source, learn

OPENING_MESSAGE = "detention-notice"
LEGAL_BASIS, PURPOSE = "pbw-18a", "reintegration"  # as the catalogue's som-triage routes


def aad(stay_id: int) -> bytes:
    return f"triage:{stay_id}".encode()


def open_facts(keyring, row) -> Facts:
    text = TRIAGE_FACTS.open_text(keyring, row, aad(row.stay_id))
    return Facts.model_validate_json(text) if text else Facts()


def sealed_facts(keyring, stay_id: int, facts: Facts) -> dict:
    return TRIAGE_FACTS.sealed_values(keyring, facts.model_dump_json(by_alias=True, exclude_none=True), aad(stay_id))


@dataclass(frozen=True)
class Change:
    """One change of a triage to record, audit and announce."""

    kind: str  # established | outcome | new-round | decided
    previous_outcome: str | None
    cause: str  # the message type, or time
    message_id: str | None


async def record(uow, rules: Rules, message_type: str, contract: MessageContract, message_id: str,
                 stay_id: int | None, new_admission: bool, recipients: list[Organisation],
                 decisions: Mapping[str, Decision]) -> None:
    """Keep the stay's triage as this message leaves it (``new_admission``: the message opened a stay after an
    earlier one of the subject)."""
    if stay_id is None or message_type not in MESSAGE_TYPES:
        return
    conn, now, keyring = uow.connection, uow.now, uow.services.keyring
    found = (await conn.execute(_TRIAGE_OF_STAY, {"stay_id": stay_id})).first()
    if found is None:
        if message_type != OPENING_MESSAGE:
            return  # no detention-notice yet: nobody to triage
        stay = (await conn.execute(_STAY, {"stay_id": stay_id})).first()
        row, before = None, Facts()
    else:
        stay, row, before = found, found, open_facts(keyring, found)
    today = local_date(now)
    source = Source(message_id=message_id, message_type=message_type, on=today)
    learnt = _learn(before, message_type, contract, source, recipients, decisions)
    verdict = row is not None and _phase(before) == "remand" and _phase(learnt) == "convicted"
    if verdict:  # a new round: the round's override and decision do not carry over; this message's do
        learnt = _learn(before.new_round(), message_type, contract, source, recipients, decisions)
    evaluation = rules.evaluate(learnt, today)
    _check_override(rules, contract, evaluation)
    decided = learnt.decision is not None and learnt.decision.source.message_id == message_id
    moved = row is None or verdict or decided or (evaluation.outcome, evaluation.criterion) != (row.outcome, row.criterion)
    if not moved and learnt == before:
        return
    values = dict(outcome=evaluation.outcome, criterion=evaluation.criterion, phase=_phase(learnt),
                  reevaluate_on=evaluation.changes_on, updated_at=now, **sealed_facts(keyring, stay_id, learnt))
    changes: list[Change] = []
    if row is None:
        values |= dict(stay_id=stay_id, subject_id=stay.subject_id, round=1, since=now, status=TriageState.OPEN.value,
                       moment="new-admission" if new_admission else "week-3", created_at=now)
        changes.append(Change("established", None, message_type, message_id))
    else:
        values |= dict(round=row.round, status=row.status)
        if verdict:
            values |= dict(round=row.round + 1, moment="after-verdict", status=TriageState.OPEN.value,
                           decision_outcome=None, decided_at=None)
            changes.append(Change("new-round", row.outcome, message_type, message_id))
        if (evaluation.outcome, evaluation.criterion) != (row.outcome, row.criterion):
            values["since"] = now
            changes.append(Change("outcome", row.outcome, message_type, message_id))
    if decided:
        values |= dict(status=TriageState.DECIDED.value, decision_outcome=learnt.decision.outcome, decided_at=now)
        changes.append(Change("decided", evaluation.outcome, message_type, message_id))
    if row is None:
        triage_id = (await conn.execute(insert(Triage).values(**values).returning(Triage.id))).scalar_one()
    else:
        triage_id = row.id
        await conn.execute(update(Triage).where(Triage.id == triage_id).values(**values))
    after = SimpleNamespace(id=triage_id, subject_id=stay.subject_id, round=values["round"], outcome=evaluation.outcome,
                            criterion=evaluation.criterion, status=values["status"])
    keep_changes(uow, after, evaluation, changes, stay.prison_oin, stay.probation_oin, learnt)


def keep_changes(uow, triage: Any, evaluation: Evaluation, changes: list[Change], prison_oin: str | None,
                 probation_oin: str | None, facts: Facts) -> None:
    """Each change: a row of its history, an audit record, and (but the first outcome) a ``triage.changed``."""
    if not changes:
        return
    uow.session.add_all([TriageChange(
        triage_id=triage.id, round=triage.round, outcome=triage.outcome, criterion=triage.criterion,
        previous_outcome=c.previous_outcome, cause=c.cause if c.kind != "decided" else "decision",
        message_id=c.message_id, changed_at=uow.now) for c in changes])
    for c in changes:
        uow.audit(Activity.TRIAGE, c.kind, subject_id=triage.subject_id, message_id=c.message_id, purpose=PURPOSE,
                  legal_basis=LEGAL_BASIS, rule=triage.criterion, counterparty_oin=prison_oin,
                  detail=_explained(c, triage, evaluation, facts))
        if c.kind != "established":
            uow.emit(triage_changed(triage, c.previous_outcome, c.kind, c.cause, c.message_id, prison_oin, probation_oin))


def _explained(change: Change, triage: Any, evaluation: Evaluation, facts: Facts) -> str:
    """The audit record's account: what changed, by which criterion, on which facts (names and messages only)."""
    fired = "; ".join(f"{f.fact} from {', '.join(f'{s.message_type} {s.message_id}' for s in f.sources) or 'nothing stated'}"
                      for f in evaluation.fired)
    head = {"established": f"first pass: {triage.outcome}", "outcome": f"{change.previous_outcome} -> {triage.outcome}",
            "new-round": f"round {triage.round} after the verdict: {triage.outcome}",
            "decided": f"joint decision {facts.decision.outcome if facts.decision else '-'} on first pass {triage.outcome}"
                       f"{' (deviates from the guideline, justified)' if facts.decision and facts.decision.deviates_from_guideline else ''}"}[change.kind]
    return f"{head} by {evaluation.criterion} ({fired or 'no criterion fired'}); cause {change.cause}"


def _learn(facts: Facts, message_type: str, contract: MessageContract, source: Source, recipients: list[Organisation],
           decisions: Mapping[str, Decision]) -> Facts:
    parties = [org for org in recipients if org.kind in SOM_PARTIES]
    withheld = set.intersection(*({w.section for w in decisions[org.oin].withheld} for org in parties)) if parties else set()
    return learn(facts, message_type, contract, source, [org.kind for org in recipients], withheld)


def _phase(facts: Facts) -> str | None:
    return facts.phase.value if facts.phase is not None else None


def _check_override(rules: Rules, contract: MessageContract, evaluation: Evaluation) -> None:
    """The casemanager overrides a no-priority outcome only: an override of anything else is refused, whole."""
    part1 = getattr(contract, "case_manager_part", None)
    if getattr(part1, "override_reason", None) and evaluation.criterion != rules.override.id:
        raise Problem("conflict", field_detail([(
            "/payload/caseManagerPart/overrideReason",
            f"an override applies to a {rules.override_applies_to} outcome; the first pass is {evaluation.outcome} "
            f"({evaluation.criterion})")]))


_TRIAGE_OF_STAY = (select(*Triage.__table__.c, Stay.prison_oin, Stay.probation_oin)
                   .join(Stay, Stay.id == Triage.stay_id).where(Triage.stay_id == bindparam("stay_id"))
                   .with_for_update(of=Triage))
_STAY = select(Stay.subject_id, Stay.prison_oin, Stay.probation_oin).where(Stay.id == bindparam("stay_id"))
