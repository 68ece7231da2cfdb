"""The triage's review by time: an outcome can change with nothing new said — a risk assessment turns a year and a
day old, a young adult turns 24. Each triage keeps the day that may happen (``reevaluate_on``, from the evaluator);
a round of the retention worker (with the deadline job, every ``BRB_DEADLINE_INTERVAL_SECONDS``) and ``brb
deadlines`` evaluate those triages again and announce a changed outcome (``triage.changed``, cause ``time``).

The round takes its rows with SKIP LOCKED, as the deadline job does: a triage a send is changing waits for the next
round, so the round never waits on a send. A triage whose facts cannot be opened (a key the process lacks) is
logged with its traceback, counted (``brb_worker_item_failures_total``, readiness' last error) and passed over
(no day to review it again), and the round goes on."""
from __future__ import annotations

import logging
from types import SimpleNamespace

from sqlalchemy import bindparam, select, update

from gateway.db.models import Stay, Triage
from gateway.services import Services, in_batches
from gateway.trajectory.norms import local_date
from gateway.triage.record import Change, keep_changes, open_facts
from gateway.workers import item_failed

log = logging.getLogger("brb.triage")
BATCH = 200

_DUE = (select(*Triage.__table__.c, Stay.prison_oin, Stay.probation_oin).join(Stay, Stay.id == Triage.stay_id)
        .where(Triage.reevaluate_on <= bindparam("today"), Stay.closed_at.is_(None))
        .order_by(Triage.id).limit(BATCH).with_for_update(of=Triage, skip_locked=True))


async def triage_round(services: Services) -> int:
    """Evaluate again every triage whose day came; returns how many changed outcome."""
    today = local_date(services.clock.now())

    async def review(uow, rows) -> int:
        changed = 0
        for row in rows:
            try:
                facts = open_facts(services.keyring, row)
                evaluation = services.som.evaluate(facts, today)
            except Exception:  # noqa: BLE001 - one triage that cannot be opened must not hold up the others
                log.error("triage.unreviewable", exc_info=True, extra={"triage_id": row.id})
                item_failed("retention", "triage-unreviewable", f"triage {row.id}: its facts could not be opened")
                await uow.connection.execute(update(Triage).where(Triage.id == row.id)
                                             .values(reevaluate_on=None, updated_at=uow.now))  # passed over
                continue
            values = dict(reevaluate_on=evaluation.changes_on, updated_at=uow.now)
            moved = (evaluation.outcome, evaluation.criterion) != (row.outcome, row.criterion)
            if moved:
                values |= dict(outcome=evaluation.outcome, criterion=evaluation.criterion, since=uow.now)
            await uow.connection.execute(update(Triage).where(Triage.id == row.id).values(**values))
            if moved:
                changed += 1
                after = SimpleNamespace(**{**row._mapping, "outcome": evaluation.outcome, "criterion": evaluation.criterion})
                keep_changes(uow, after, evaluation, [Change("outcome", row.outcome, "time", None)],
                             row.prison_oin, row.probation_oin, facts)
        return changed

    changed = await in_batches(services, _DUE, {"today": today}, review, BATCH)
    if changed:
        log.info("triage.reevaluated", extra={"changed": changed})
    return changed
