"""The audit officer's API: records, export, subject report, chain verification."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import Field
from sqlmodel import select

from gateway.api.common import PageSize, Svc, caller_with
from gateway.api.params import MAX_BIGINT, Cursor, MessageIdFilter, OinFilter, Seq, Since, SubjectFilter, Until, slug
from gateway.audit import queries
from gateway.audit.report import AuditPage, SubjectReport, record_view, render_html
from gateway.auth.dependencies import require
from gateway.consents import subject_id_for
from gateway.db.models import Organisation
from gateway.problems import Problem, field_detail
from gateway.schemas import SubjectIdentifiers, Wire

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = caller_with("audit:read", "audit:read-all")


class VerifyReport(Wire):
    intact: bool
    checked: int
    last_seq: int
    broken_seq: int | None
    broken_id: str | None
    reason: str | None
    anchored: bool = Field(description="checked against a signed checkpoint kept outside the database "
                           "(BRB_AUDIT_CHECKPOINT_FILE); false: no checkpoint file is configured or it holds none yet, "
                           "so removal of the newest records together with the head cannot be detected")
    checkpoint_seq: int | None = Field(description="the record the newest valid signed checkpoint vouches for")
    checkpoint_at: datetime | None = Field(description="when that checkpoint was written")


def audit_filter(
    subject_id: SubjectFilter = None,
    organisation: OinFilter = None,
    message_id: MessageIdFilter = None,
    activity: Annotated[str | None, slug("activity, e.g. deliver, read, deny")] = None,
    purpose: Annotated[str | None, slug("purpose")] = None,
    since: Since = None,
    until: Until = None,
) -> queries.AuditFilter:
    return queries.AuditFilter(subject_id, organisation, message_id, activity, purpose, since, until)


AuditQuery = Annotated[queries.AuditFilter, Depends(audit_filter)]


@router.get("/records", summary="Audit records you may see, filtered, cursor-paged")
async def records(
    f: AuditQuery, size: PageSize, caller: Auditor, svc: Svc, cursor: Cursor = None,
) -> AuditPage:
    """Audit records you may see (`audit:read`: your own organisation; `audit:read-all`: all), filtered and cursor-paged. The query is itself audited."""
    try:
        after = int(cursor) if cursor else 0
        if not 0 <= after <= MAX_BIGINT:
            raise ValueError(cursor)
    except ValueError:
        raise Problem("invalid-request", field_detail([("query:cursor", "not a cursor this API gave out")])) from None
    rows, next_seq = await queries.records(svc, caller, f, after, size)
    return AuditPage(items=[record_view(r) for r in rows], next_cursor=str(next_seq) if next_seq else None)


@router.get("/export", summary="Stream the same records as CSV or JSON lines",
            responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}})
async def export(
    f: AuditQuery, caller: Auditor, svc: Svc,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl")] = "jsonl",
) -> StreamingResponse:
    """The same records streamed as CSV or JSON lines, in bounded memory. The export is itself audited."""
    body = await queries.export(svc, caller, f, format)
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(body, media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="audit-export.{format}"'})


@router.post("/subject-report", summary="Every processing about one person (AVG art. 15), JSON or HTML",
             responses={200: {"content": {"text/html": {}}}})
async def subject_report(request: Request, body: SubjectIdentifiers, caller: Auditor, svc: Svc) -> SubjectReport:
    """Every processing about one person (AVG art. 15 inzage), found by BSN or SKN in the body. JSON, or a readable HTML document with `Accept: text/html`."""
    if not (body.bsn or body.skn):
        raise Problem("validation-failed", field_detail([("/", "give a bsn or an skn")]))
    subject_id = await subject_id_for(svc, body)
    rows = await queries.subject_records(svc, caller, subject_id)
    report = SubjectReport(subject_id=subject_id, generated_at=svc.clock.now(), count=len(rows), records=[record_view(r) for r in rows])
    if "text/html" in request.headers.get("accept", ""):
        async with svc.db.read() as session:
            names = {o.oin: o.name for o in (await session.exec(select(Organisation))).all()}
        return HTMLResponse(render_html(report, names))
    return report


@router.get("/verify", summary="Verify the hash chain, in full or from a record on",
            dependencies=[Depends(require("audit:read", "audit:read-all", "admin"))])
async def verify(svc: Svc, from_seq: Seq = 1) -> VerifyReport:
    """Walk the hash chain, in full or from `fromSeq`, and report it intact or name the first broken record and why."""
    result = await queries.verify_chain(svc, from_seq)
    return VerifyReport(**result.__dict__)
