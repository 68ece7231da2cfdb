"""Auditor queries: filtered, cursor-paged record lists, streamed exports and the subject report.
``audit:read`` sees its own organisation's records (an auditor: the organisation it audits);
``audit:read-all`` (the inspectorate) sees all. Every query and export is itself audited."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, or_, select

from gateway.audit.chain import VerifyResult, verify
from gateway.audit.checkpoint import anchor_for, records_from
from gateway.auth.dependencies import actor
from gateway.auth.tokens import Caller
from gateway.db.models import AuditHead, AuditRecord
from gateway.services import Services

EXPORT_COLUMNS = (
    "seq", "id", "recorded_at", "trace_id", "activity", "actor_oin", "counterparty_oin", "token_id", "scope",
    "subject_id", "message_id", "purpose", "legal_basis", "rule", "outcome", "detail", "prev_hash", "hash",
)
CHUNK = 1000


@dataclass(frozen=True)
class AuditFilter:
    subject_id: str | None = None
    organisation: str | None = None
    message_id: str | None = None
    activity: str | None = None
    purpose: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def describe(self) -> str:
        parts = [f"{k}={v.isoformat() if isinstance(v, datetime) else v}" for k, v in self.__dict__.items() if v]
        return ", ".join(parts) or "no filter"


def own_organisation(caller: Caller) -> str:
    return caller.parent_oin if caller.kind == "auditor" and caller.parent_oin else caller.oin


def sees_all(caller: Caller) -> bool:
    return "audit:read-all" in caller.scopes


def _query(caller: Caller, f: AuditFilter):
    q = select(AuditRecord)
    if not sees_all(caller):
        org = own_organisation(caller)
        q = q.where(or_(AuditRecord.actor_oin == org, AuditRecord.counterparty_oin == org))
    if f.subject_id:
        q = q.where(AuditRecord.subject_id == f.subject_id)
    if f.organisation:
        q = q.where(or_(AuditRecord.actor_oin == f.organisation, AuditRecord.counterparty_oin == f.organisation))
    if f.message_id:
        q = q.where(AuditRecord.message_id == f.message_id)
    if f.activity:
        q = q.where(AuditRecord.activity == f.activity)
    if f.purpose:
        q = q.where(AuditRecord.purpose == f.purpose)
    if f.since:
        q = q.where(AuditRecord.recorded_at >= f.since)
    if f.until:
        q = q.where(AuditRecord.recorded_at < f.until)
    return q


async def _audit_the_query(services: Services, caller: Caller, activity: str, f: AuditFilter, what: str) -> None:
    async with services.unit_of_work(actor(caller)) as uow:
        uow.audit(activity, "performed", subject_id=f.subject_id, message_id=f.message_id,
                  detail=f"{what}; {'all organisations' if sees_all(caller) else 'own organisation'}; {f.describe()}")


async def records(services: Services, caller: Caller, f: AuditFilter, after_seq: int, size: int) -> tuple[list[AuditRecord], int | None]:
    await _audit_the_query(services, caller, "audit-query", f, "records")
    async with services.db.read() as session:
        rows = (await session.exec(_query(caller, f).where(AuditRecord.seq > after_seq)
                                   .order_by(col(AuditRecord.seq)).limit(size + 1))).all()
    more = len(rows) > size
    rows = list(rows[:size])
    return rows, (rows[-1].seq if more and rows else None)


async def _stream(services: Services, caller: Caller, f: AuditFilter) -> AsyncIterator[list[AuditRecord]]:
    after = 0
    while True:
        async with services.db.read() as session:
            rows = (await session.exec(_query(caller, f).where(AuditRecord.seq > after)
                                       .order_by(col(AuditRecord.seq)).limit(CHUNK))).all()
        if not rows:
            return
        yield list(rows)
        after = rows[-1].seq


def row_dict(r: AuditRecord) -> dict:
    d = {c: getattr(r, c) for c in EXPORT_COLUMNS}
    d["recorded_at"] = r.recorded_at.isoformat()
    return d


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A cell a spreadsheet shows as text, never runs (OWASP CSV injection: prefix a single quote).
    Some values come from callers (a token's jti, a detail); an auditor opens the export in Excel."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def csv_writer(buf: io.StringIO) -> csv.DictWriter:
    # CRLF rows (RFC 4180): a CR or LF inside a value is then quoted and cannot start a row of its own
    return csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, lineterminator="\r\n")


async def export(services: Services, caller: Caller, f: AuditFilter, fmt: str) -> AsyncIterator[str]:
    """Audit the export first, then stream it chunk by chunk (memory stays bounded by CHUNK)."""
    await _audit_the_query(services, caller, "export", f, f"export as {fmt}")

    def render(chunk: list[AuditRecord]) -> str:
        if fmt == "csv":
            buf = io.StringIO()
            csv_writer(buf).writerows({k: csv_cell(v) for k, v in row_dict(r).items()} for r in chunk)
            return buf.getvalue()
        return "".join(json.dumps(row_dict(r), ensure_ascii=False) + "\n" for r in chunk)

    chunks = aiter(_stream(services, caller, f))
    # the first query runs before the answer starts: if it fails, the caller gets a problem, not an empty 200
    first = await anext(chunks, None)

    async def generate() -> AsyncIterator[str]:
        if fmt == "csv":
            buf = io.StringIO()
            csv_writer(buf).writeheader()
            yield buf.getvalue()
        if first is not None:
            yield render(first)
        async for chunk in chunks:
            yield render(chunk)

    return generate()


async def subject_records(services: Services, caller: Caller, subject_id: str | None) -> list[AuditRecord]:
    """Every processing about one person that the caller may see (AVG art. 15 inzage)."""
    f = AuditFilter(subject_id=subject_id)
    await _audit_the_query(services, caller, "audit-query", f, "subject report")
    if subject_id is None:
        return []
    out: list[AuditRecord] = []
    async for chunk in _stream(services, caller, f):
        out.extend(chunk)
    return out


async def verify_chain(services: Services, from_seq: int = 1) -> VerifyResult:
    """Walk the chain (in chunks) and check it, its head row and, when a checkpoint file is configured,
    the newest signed checkpoint. The head is read after the walk; records appended meanwhile are walked
    too, so a busy chain is not mistaken for a broken one."""
    anchor = await anchor_for(services)
    seen: dict[str, AuditHead | None] = {}

    async def walk() -> AsyncIterator[AuditRecord]:
        after, idle = from_seq - 1, 0
        for _round in range(100):
            progressed = False
            async for r in records_from(services, after + 1):
                progressed, after = True, r.seq
                yield r
            async with services.db.read() as session:
                seen["head"] = await session.get(AuditHead, 1)
            idle = 0 if progressed else idle + 1
            # the head may have moved past what the walk saw (a send committed in between): walk on; two
            # rounds without a new record while the head is ahead means the records are really gone
            if seen["head"] is None or seen["head"].seq <= after or idle >= 2:
                return

    async def head() -> AuditHead | None:
        return seen.get("head")

    return await verify(services.audit, walk(), head, from_seq=from_seq, anchor=anchor)
