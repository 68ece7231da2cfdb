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

from sqlmodel import select

from contracts.parties import KINDS, Scope
from gateway.audit.chain import VerifyResult, verify
from gateway.audit.checkpoint import anchor_for, records_from
from gateway.audit.record import EXPORT_COLUMNS, Activity, export_row, record_view
from gateway.audit.report import AuditPage, SubjectReport, VerifyReport, render_html
from gateway.auth.tokens import Caller
from gateway.consents import subject_id_for
from gateway.db.filters import either, equals, in_range, narrowed
from gateway.db.models import AuditHead, AuditRecord, Organisation
from gateway.db.paging import BIGINT, Keyset
from gateway.problems import Problem, field_detail
from gateway.schemas import SubjectIdentifiers
from gateway.services import Services

CHUNK = 1000
AUDIT_RECORDS = Keyset("audit-records", ((AuditRecord.seq, BIGINT),), start=(0,))
PARTIES = (AuditRecord.actor_oin, AuditRecord.counterparty_oin)


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
    return caller.parent_oin if KINDS[caller.kind].audits_parent and caller.parent_oin else caller.oin


def sees_all(caller: Caller) -> bool:
    return Scope.AUDIT_READ_ALL in caller.scopes


def _query(caller: Caller, f: AuditFilter):
    return narrowed(
        select(AuditRecord), None if sees_all(caller) else either(PARTIES, own_organisation(caller)),
        equals(AuditRecord.subject_id, f.subject_id), either(PARTIES, f.organisation),
        equals(AuditRecord.message_id, f.message_id), equals(AuditRecord.activity, f.activity),
        equals(AuditRecord.purpose, f.purpose), in_range(AuditRecord.recorded_at, f.since, f.until),
    )


async def _audit_the_query(services: Services, caller: Caller, activity: Activity, f: AuditFilter, what: str) -> None:
    async with services.unit_of_work(caller.actor) as uow:
        uow.audit(activity, "performed", subject_id=f.subject_id, message_id=f.message_id,
                  detail=f"{what}; {'all organisations' if sees_all(caller) else 'own organisation'}; {f.describe()}")


async def records(services: Services, caller: Caller, f: AuditFilter, cursor: str | None, size: int) -> AuditPage:
    """One page of the records the caller may see. A cursor this API did not give out is refused before
    the query is audited (nothing was looked up)."""
    after = AUDIT_RECORDS.decode(cursor)
    await _audit_the_query(services, caller, Activity.AUDIT_QUERY, f, "records")
    async with services.db.read() as session:
        page = await AUDIT_RECORDS.page(session, _query(caller, f), after, size)
    return AuditPage.of(page, [record_view(r) for r in page.rows])


async def _stream(services: Services, caller: Caller, f: AuditFilter) -> AsyncIterator[list[AuditRecord]]:
    """The records in chunks, one short read each (no transaction held open while the caller downloads)."""
    after = None
    while True:
        async with services.db.read() as session:
            page = await AUDIT_RECORDS.page(session, _query(caller, f), after, CHUNK)
        if page.rows:
            yield page.rows
        if page.next_key is None:
            return
        after = page.next_key


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
    await _audit_the_query(services, caller, Activity.EXPORT, f, f"export as {fmt}")

    def render(chunk: list[AuditRecord]) -> str:
        if fmt == "csv":
            buf = io.StringIO()
            csv_writer(buf).writerows({k: csv_cell(v) for k, v in export_row(r).items()} for r in chunk)
            return buf.getvalue()
        return "".join(json.dumps(export_row(r), ensure_ascii=False) + "\n" for r in chunk)

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
    await _audit_the_query(services, caller, Activity.AUDIT_QUERY, f, "subject report")
    if subject_id is None:
        return []
    out: list[AuditRecord] = []
    async for chunk in _stream(services, caller, f):
        out.extend(chunk)
    return out


async def subject_report(services: Services, caller: Caller, who: SubjectIdentifiers, as_html: bool) -> SubjectReport | str:
    """The report about the person with this BSN or SKN: the JSON report, or the HTML document (with
    organisation names) an auditor hands to the person."""
    if not (who.bsn or who.skn):
        raise Problem("validation-failed", field_detail([("/", "give a bsn or an skn")]))
    subject_id = await subject_id_for(services, who)
    rows = await subject_records(services, caller, subject_id)
    report = SubjectReport(subject_id=subject_id, generated_at=services.clock.now(), count=len(rows),
                           records=[record_view(r) for r in rows])
    if not as_html:
        return report
    async with services.db.read() as session:
        names = {o.oin: o.name for o in (await session.exec(select(Organisation))).all()}
    return render_html(report, names)


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


async def chain_report(services: Services, from_seq: int = 1) -> VerifyReport:
    return VerifyReport(**(await verify_chain(services, from_seq)).__dict__)
