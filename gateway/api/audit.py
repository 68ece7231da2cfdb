"""The audit officer's API: records, export, aggregates, subject report, chain verification."""
from __future__ import annotations

import inspect
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from contracts.parties import Scope
from gateway.api.common import PageSize, Svc, caller_with
from gateway.api.params import Cursor, Seq, audit_filter_param
from gateway.audit import aggregate, queries
from gateway.audit.record import EXCHANGE_ACTIVITIES
from gateway.audit.report import AuditPage, SubjectReport, VerifyReport
from gateway.auth.dependencies import require
from gateway.openapi import problems
from gateway.schemas import SubjectIdentifiers

router = APIRouter(prefix="/audit", tags=["audit"])
Auditor = caller_with(Scope.AUDIT_READ, Scope.AUDIT_READ_ALL)


def _filter(field: str, description: str):
    return Annotated[str | None, audit_filter_param(field, description)]


SubjectId = _filter("subject_id", "subject pseudonym (sub-…), never a BSN: for a BSN use POST /audit/subject-report")
Organisation = _filter("organisation", "OIN (20 digits) as actor or counterparty")
Counterparty = _filter("counterparty", "OIN (20 digits) of the counterparty specifically")
MessageId = _filter("message_id", "message id (UUID)")
MessageType = _filter("message_type", "message type (the contracts' catalogue)")
Activity = _filter("activity", "activity, e.g. deliver, read, deny")
Outcome = _filter("outcome", "exchange outcome: allow (delivered whole), redact (delivered with sections withheld, "
                  "and each withheld section), deny (refused at send or at read)")
Purpose = _filter("purpose", "purpose (the policy catalogue's)")
LegalBasis = _filter("legal_basis", "legal basis (the policy catalogue's)")
Rule = _filter("rule", "rule of the policy catalogue")
TraceId = _filter("trace_id", "trace id (32 hex digits, as in traceparent): the records of one request")
Since = _filter("since", "at or after (RFC 3339 with offset)")
Until = _filter("until", "before (RFC 3339 with offset)")


async def audit_filter(
    caller: Auditor, svc: Svc,  # first: a caller without a valid token gets 401, whatever the filter says
    subject_id: SubjectId = None, organisation: Organisation = None, counterparty: Counterparty = None,
    message_id: MessageId = None, message_type: MessageType = None, activity: Activity = None, outcome: Outcome = None,
    purpose: Purpose = None, legal_basis: LegalBasis = None, rule: Rule = None, trace_id: TraceId = None,
    since: Since = None, until: Until = None,
) -> queries.AuditFilter:
    """The filter of the audit routes, checked by ``queries.parse_filter``: a value outside its vocabulary or
    format is a 400 ``invalid-filter`` naming the parameter and what it accepts (before anything is audited)."""
    return queries.parse_filter(
        subject_id=subject_id, organisation=organisation, counterparty=counterparty, message_id=message_id,
        message_type=message_type, activity=activity, outcome=outcome, purpose=purpose, legal_basis=legal_basis,
        rule=rule, trace_id=trace_id, since=since, until=until, catalogue=svc.catalogue, blank_is_absent=False)


AuditQuery = Annotated[queries.AuditFilter, Depends(audit_filter)]
ExchangeActivity = Annotated[str | None, audit_filter_param(
    "activity", "activity: deliver, redact or deny (the records the aggregate counts)", [a.value for a in EXCHANGE_ACTIVITIES])]


async def aggregate_filter(**given) -> queries.AuditFilter:
    """``audit_filter`` whose ``activity`` declares only what the aggregate counts (another one is a 400 there)."""
    return await audit_filter(**given)


_signature = inspect.signature(audit_filter, eval_str=True)  # the same parameters, one annotation changed
aggregate_filter.__signature__ = _signature.replace(parameters=[  # type: ignore[attr-defined]
    p.replace(annotation=ExchangeActivity) if p.name == "activity" else p for p in _signature.parameters.values()])
AggregateQuery = Annotated[queries.AuditFilter, Depends(aggregate_filter)]
FILTERS = ("Filters: `subjectId`, `organisation` (as actor or counterparty), `counterparty`, `messageId`, `messageType`, "
           "`activity`, `outcome`, `purpose`, `legalBasis`, `rule`, `traceId`, `since`/`until`; a value outside a "
           "filter's vocabulary or format is a 400 `invalid-filter` naming what it accepts, and nothing is audited.")


@router.get("/records", summary="Audit records you may see, filtered, cursor-paged", responses=problems("invalid-filter"),
            description="Audit records you may see (`audit:read`: your own organisation; `audit:read-all`: all), oldest "
                        "first, cursor-paged, with `actorName` and `counterpartyName` beside the OINs. "
                        f"{FILTERS} The query is itself audited.")
async def list_audit_records(caller: Auditor, f: AuditQuery, size: PageSize, svc: Svc, cursor: Cursor = None) -> AuditPage:
    return await queries.records(svc, caller, f, cursor, size)


@router.get("/export", summary="Stream the same records as CSV or JSON lines",
            responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}, **problems("invalid-filter")},
            description="The same records streamed as CSV or JSON lines, in bounded memory, with the keys of the records' "
                        "JSON (camelCase, `actorName` and `counterpartyName` beside the OINs) as CSV header and JSON keys. "
                        "CSV starts with a UTF-8 byte order mark (Excel reads it as UTF-8), has CRLF rows, and separates "
                        f"its cells by `separator`. {FILTERS} The export is itself audited.")
async def export_audit_records(
    caller: Auditor, f: AuditQuery, svc: Svc,
    format: Annotated[Literal["csv", "jsonl"], Query(description="csv or jsonl")] = "jsonl",
    separator: Annotated[Literal["comma", "semicolon"], Query(
        description="csv only: comma (default) or semicolon (for a spreadsheet set to Dutch)")] = "comma",
) -> StreamingResponse:
    body = await queries.export(svc, caller, f, format, separator)
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(body, media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="audit-export.{format}"'})


@router.get("/aggregates", summary="Counts of exchange decisions per period, message type, outcome, rule and organisation",
            responses=problems("invalid-filter"),
            description="How many records of exchange decisions (`deliver`, `redact`, `deny`) you may see, per period × "
                        "activity × message type × outcome (allow, redact, deny) × rule × actor × counterparty, with the "
                        "organisations' names. Scoped and filtered like GET /audit/records, so a count equals the records "
                        "that list gives for the same filter and cell. Counts are of records, not messages: a delivery with "
                        "sections withheld is one `deliver` record and one `redact` record per section, all under outcome "
                        f"`redact`. Periods are in UTC. {FILTERS} The query is itself audited.")
async def aggregate_audit_records(
    caller: Auditor, f: AggregateQuery, svc: Svc,
    period: Annotated[aggregate.Period, Query(description="month (default), week (ISO 8601) or day; in UTC")] = "month",
) -> aggregate.AggregateReport:
    return await aggregate.aggregate(svc, caller, f, period)


@router.post("/subject-report", summary="Every processing about one person (AVG art. 15), JSON or HTML",
             responses={200: {"content": {"text/html": {}}}})
async def report_on_subject(request: Request, body: SubjectIdentifiers, caller: Auditor, svc: Svc) -> SubjectReport:
    """Every processing about one person (AVG art. 15 inzage), found by BSN or SKN in the body. JSON, or a readable HTML document with `Accept: text/html`."""
    from gateway.audit.citizen_report import language_from

    lang = language_from(request.headers.get("accept-language"))  # the HTML document: Dutch unless English is preferred
    report = await queries.subject_report(svc, caller, body, as_html="text/html" in request.headers.get("accept", ""), lang=lang)
    return HTMLResponse(report, headers={"Content-Language": lang}) if isinstance(report, str) else report


@router.get("/verify", summary="Verify the hash chain, in full or from a record on",
            dependencies=[Depends(require(Scope.AUDIT_READ, Scope.AUDIT_READ_ALL, Scope.ADMIN))])
async def verify_audit_chain(svc: Svc, from_seq: Seq = 1) -> VerifyReport:
    """Walk the hash chain, in full or from `fromSeq`, and report it intact or name the first broken record and why."""
    return await queries.chain_report(svc, from_seq)
