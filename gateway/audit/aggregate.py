"""Counts of exchange decisions for audit officers: per period (month, ISO week or day, in UTC) × activity ×
message type × outcome (allow / redact / deny) × rule × actor × counterparty, with the organisations' names.

Scoped and filtered exactly like the record list (``gateway/audit/queries.py``: ``audit:read`` its own
organisation as actor or counterparty, ``audit:read-all`` everything; the same ``AuditFilter``), so a count
equals the number of records the list gives for the same filter and that cell. Only the records of an
exchange decision are counted (``EXCHANGE_ACTIVITIES``: ``deliver``, ``redact``, ``deny``, written at send
and, for ``redact`` and ``deny``, again at read); the outcome is ``ExchangeOutcome`` (gateway/audit/record.py).
The counts are of records, not messages: a delivery with three sections withheld is one ``deliver`` record
and three ``redact`` records, all four under ``redact`` (the group's ``activity`` tells them apart).

One SQL ``GROUP BY`` on either database: the period bucket is the one expression that differs (SQLite keeps
UTC times as text, PostgreSQL as ``timestamptz``; both are bucketed in UTC). The grouped expressions are
computed in a subquery and grouped by its columns, so PostgreSQL sees the same expression in the select list
and the ``GROUP BY``. The query is itself audited (``audit-query``, detail ``aggregate per <period>; …``)."""
from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from pydantic import Field, create_model
from sqlalchemy import func
from sqlmodel import select

from gateway.audit import queries
from gateway.audit.queries import AuditFilter
from gateway.audit.record import EXCHANGE_ACTIVITIES, Activity, ExchangeOutcome
from gateway.auth.tokens import Caller
from gateway.db.engine import core
from gateway.db.filters import narrowed
from gateway.db.models import AuditRecord, AuditRecordFields
from gateway.problems import Problem, field_detail
from gateway.schemas import Wire
from gateway.services import Services

Period = Literal["month", "week", "day"]
PERIODS: tuple[str, ...] = ("month", "week", "day")
ExchangeActivity = Literal[tuple(a.value for a in EXCHANGE_ACTIVITIES)]  # type: ignore[valid-type]
_RECORD = AuditRecordFields.model_fields

AggregateGroup = create_model(
    "AggregateGroup", __base__=Wire,
    __doc__="One cell of the aggregate: how many exchange records share these values.",
    period=(str, Field(description="the period: 2026-11 (month), 2026-W48 (ISO week), 2026-11-23 (day), in UTC")),
    since=(datetime, Field(description="the period's start (inclusive): use it as `since` to list its records")),
    until=(datetime, Field(description="the period's end (exclusive): use it as `until` to list its records")),
    activity=(ExchangeActivity, Field(description="deliver, redact or deny")),
    message_type=(str | None, Field(description="the message type; null when the record names none")),
    outcome=(ExchangeOutcome, Field(description="allow, redact or deny (see `outcome` of GET /audit/records)")),
    rule=(_RECORD["rule"].annotation, Field(description="the policy catalogue's rule; null when none applied (e.g. no route)")),
    actor_oin=(_RECORD["actor_oin"].annotation, Field(description="who acted: the sender (at send) or the reader (at read)")),
    actor_name=(str | None, Field(description="the actor's organisation name")),
    counterparty_oin=(_RECORD["counterparty_oin"].annotation, Field(description="the other party: the recipient (at send) or the sender (at read)")),
    counterparty_name=(str | None, Field(description="the counterparty's organisation name")),
    count=(int, Field(description="the number of records")),
)


class AggregateReport(Wire):
    """Counts of exchange records per period and cell, and their total."""

    period: Period
    groups: list[AggregateGroup]  # type: ignore[valid-type]
    total: int


def _bucket(is_sqlite: bool, period: str):
    """The period of ``recorded_at`` as text (UTC): YYYY-MM, or YYYY-MM-DD of the day or of the week's Monday."""
    at = AuditRecord.recorded_at
    if is_sqlite:  # the time is stored as UTC text, "2026-11-23 09:14:02.131000"
        if period == "week":
            return func.date(at, "weekday 0", "-6 days")  # the coming Sunday (or this one), back to its Monday
        return func.strftime("%Y-%m" if period == "month" else "%Y-%m-%d", at)
    utc = func.timezone("UTC", at)  # timestamptz -> the UTC wall time, whatever the session's time zone
    if period == "week":
        return func.to_char(func.date_trunc("week", utc), "YYYY-MM-DD")  # ISO weeks start on Monday
    return func.to_char(utc, "YYYY-MM" if period == "month" else "YYYY-MM-DD")


def _period(period: str, bucket: str) -> tuple[str, datetime, datetime]:
    """The bucket's label and its [since, until) in UTC."""
    if period == "month":
        start = date.fromisoformat(bucket + "-01")
        end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        label = bucket
    else:
        start = date.fromisoformat(bucket)
        end = start + timedelta(days=7 if period == "week" else 1)
        iso = start.isocalendar()
        label = f"{iso.year}-W{iso.week:02d}" if period == "week" else bucket
    return label, datetime.combine(start, time(), UTC), datetime.combine(end, time(), UTC)


_ORDER = {o.value: i for i, o in enumerate(ExchangeOutcome)}


async def aggregate(services: Services, caller: Caller, f: AuditFilter, period: str = "month") -> AggregateReport:
    """The counts of the exchange records the caller may see under filter ``f`` (build it with
    ``queries.parse_filter``), per ``period`` (month, week or day). An ``activity`` filter other than deliver,
    redact or deny would count nothing and is refused (``invalid-filter``), as is a bad period
    (``validation-failed``), before anything is looked up or audited."""
    if period not in PERIODS:
        raise Problem("validation-failed", field_detail([("query:period", f"one of {', '.join(PERIODS)}")]))
    exchange = [a.value for a in EXCHANGE_ACTIVITIES]
    if f.activity is not None and f.activity not in exchange:
        raise Problem("invalid-filter", field_detail([("query:activity", "the aggregate counts only the records of "
                                                      f"exchange decisions: one of {', '.join(exchange)}")]))
    await queries.audit_the_query(services, caller, Activity.AUDIT_QUERY, f, f"aggregate per {period}")
    cells = narrowed(
        queries.with_messages(select(
            _bucket(services.db.is_sqlite, period).label("bucket"), AuditRecord.activity.label("activity"),
            queries.message_type_of().label("message_type"), queries.outcome_of().label("outcome"),
            AuditRecord.rule.label("rule"), AuditRecord.actor_oin.label("actor"),
            AuditRecord.counterparty_oin.label("counterparty"),
        ).select_from(AuditRecord)).where(AuditRecord.activity.in_(exchange)),
        *queries.conditions(caller, f),
    ).subquery()
    keys = (cells.c.bucket, cells.c.activity, cells.c.message_type, cells.c.outcome, cells.c.rule, cells.c.actor,
            cells.c.counterparty)
    async with services.db.read() as session:
        rows = (await (await core(session)).execute(select(*keys, func.count()).group_by(*keys))).all()
        names = await queries.names_of(session, {oin for r in rows for oin in (r.actor, r.counterparty)})
    groups = []
    for bucket, activity, message_type, outcome, rule, actor, counterparty, count in rows:
        label, since, until = _period(period, bucket)
        groups.append(AggregateGroup(
            period=label, since=since, until=until, activity=activity, message_type=message_type, outcome=outcome,
            rule=rule, actor_oin=actor, actor_name=names.get(actor), counterparty_oin=counterparty,
            counterparty_name=names.get(counterparty or ""), count=count))
    groups.sort(key=lambda g: (g.since, g.message_type or "", _ORDER[g.outcome], g.rule or "", g.actor_oin,
                               g.counterparty_oin or "", g.activity))
    return AggregateReport(period=period, groups=groups, total=sum(g.count for g in groups))
