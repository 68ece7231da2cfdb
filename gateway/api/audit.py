"""The audit officer's API: records, export, subject report, chain verification."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from contracts.parties import Scope
from gateway.api.common import PageSize, Svc, caller_with
from gateway.api.params import Cursor, MessageIdFilter, OinFilter, Seq, Since, SubjectFilter, Until, slug
from gateway.audit import queries
from gateway.audit.report import AuditPage, SubjectReport, VerifyReport
from gateway.auth.dependencies import require
from gateway.schemas import SubjectIdentifiers

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = caller_with(Scope.AUDIT_READ, Scope.AUDIT_READ_ALL)


async def audit_filter(
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
async def list_audit_records(
    f: AuditQuery, size: PageSize, caller: Auditor, svc: Svc, cursor: Cursor = None,
) -> AuditPage:
    """Audit records you may see (`audit:read`: your own organisation; `audit:read-all`: all), filtered and cursor-paged. The query is itself audited."""
    return await queries.records(svc, caller, f, cursor, size)


@router.get("/export", summary="Stream the same records as CSV or JSON lines",
            responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}})
async def export_audit_records(
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
async def report_on_subject(request: Request, body: SubjectIdentifiers, caller: Auditor, svc: Svc) -> SubjectReport:
    """Every processing about one person (AVG art. 15 inzage), found by BSN or SKN in the body. JSON, or a readable HTML document with `Accept: text/html`."""
    report = await queries.subject_report(svc, caller, body, as_html="text/html" in request.headers.get("accept", ""))
    return HTMLResponse(report) if isinstance(report, str) else report


@router.get("/verify", summary="Verify the hash chain, in full or from a record on",
            dependencies=[Depends(require(Scope.AUDIT_READ, Scope.AUDIT_READ_ALL, Scope.ADMIN))])
async def verify_audit_chain(svc: Svc, from_seq: Seq = 1) -> VerifyReport:
    """Walk the hash chain, in full or from `fromSeq`, and report it intact or name the first broken record and why."""
    return await queries.chain_report(svc, from_seq)
