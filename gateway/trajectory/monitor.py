"""The deadline job: once a norm's day has passed unmet, the deadline is ``overdue`` — one ``deadline.overdue``
event and one audit record each, in the transaction that marks it. Before that, deadlines a past release made
moot (due after the release) no longer apply. A round of the retention worker (``gateway/workers.py``, every
``BRB_DEADLINE_INTERVAL_SECONDS``) and ``brb deadlines`` (once, for a CronJob).

Several processes may run it: a deadline is marked by a conditional UPDATE (``status = 'open'``) that
returns the rows it changed, and only those get an event. The job takes its rows with SKIP LOCKED: a deadline a
send is changing right now waits for the next round, so the job never waits on a send (which holds its stay's
row and may wait on the job) and the two cannot deadlock."""
from __future__ import annotations

import logging

from sqlalchemy import bindparam, select, update

from gateway.audit.record import Activity
from gateway.db.models import Deadline, Stay
from gateway.outbox.events import deadline_overdue
from gateway.services import Services, in_batches
from gateway.statuses import DeadlineState
from gateway.trajectory.norms import local_date

log = logging.getLogger("brb.deadlines")
BATCH = 500
OPEN, OVERDUE, NOT_APPLICABLE = (DeadlineState.OPEN.value, DeadlineState.OVERDUE.value,
                                 DeadlineState.NOT_APPLICABLE.value)

_RELEASE = select(Stay.release_date).where(Stay.id == Deadline.stay_id).scalar_subquery()
_MOOT = (select(Deadline.id).where(Deadline.status == OPEN, _RELEASE < bindparam("today"), Deadline.due_on > _RELEASE)
         .order_by(Deadline.id).limit(BATCH).with_for_update(of=Deadline, skip_locked=True))
_DUE = (select(Deadline.id).where(Deadline.status == OPEN, Deadline.due_on < bindparam("today"))
        .order_by(Deadline.id).limit(BATCH).with_for_update(of=Deadline, skip_locked=True))


async def deadline_round(services: Services) -> int:
    """Mark every deadline whose day passed unmet as overdue; returns how many."""
    today = local_date(services.clock.now())
    await in_batches(services, _MOOT, {"today": today}, _no_longer_applies, BATCH)  # moot first: not overdue after a past release
    marked = await in_batches(services, _DUE, {"today": today}, _mark_overdue, BATCH)
    if marked:
        log.info("deadlines.overdue", extra={"marked": marked})
    return marked


async def _no_longer_applies(uow, rows) -> int:
    ids = [r.id for r in rows]
    await uow.connection.execute(update(Deadline).where(Deadline.id.in_(ids))
                                 .values(status=NOT_APPLICABLE, reason="released before it was due", updated_at=uow.now))
    return len(ids)


async def _mark_overdue(uow, found) -> int:
    """Overdue, with one event and one audit record per deadline this transaction changed."""
    rows = (await uow.connection.execute(
        update(Deadline).where(Deadline.id.in_([r.id for r in found]), Deadline.status == OPEN)
        .values(status=OVERDUE, overdue_at=uow.now, updated_at=uow.now)
        .returning(*Deadline.__table__.columns))).all()
    prisons = dict((await uow.connection.execute(
        select(Stay.id, Stay.prison_oin).where(Stay.id.in_({r.stay_id for r in rows})))).all()) if rows else {}
    for row in rows:
        uow.emit(deadline_overdue(row, prisons.get(row.stay_id)))
        uow.audit(Activity.DEADLINE, OVERDUE, counterparty_oin=row.responsible_oin, subject_id=row.subject_id,
                  rule=row.norm, detail=f"{row.norm} (round {row.round}) due {row.due_on.isoformat()}, not met")
    return len(rows)
