"""The pages: overview, search, a record, export, a subject's report, chain verification, and the login.
Each page calls the audit API's own functions (gateway/audit) with the officer as the caller, so it is
scoped exactly as the API scopes that officer; every page view and search is itself an audit record."""
from __future__ import annotations

import re
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

import httpx
from authlib.integrations.base_client import OAuthError
from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from joserfc.errors import JoseError
from pydantic import ValidationError

from gateway.audit import aggregate as aggregates
from gateway.audit import citizen_report, queries
from gateway.audit.citizen_report import plain_words
from gateway.audit.record import Activity
from gateway.consents import subject_id_for
from gateway.db.dialect import MAX_BIGINT
from gateway.pages import choices
from gateway.pages.officer import (
    LoginRequired,
    Officer,
    check_csrf,
    current_officer,
    end_session,
    load_officer,
    officer_from_claims,
    start_session,
)
from gateway.pages.render import TIMEZONE, language, local_time, page, texts_for
from gateway.pages.texts import LANGUAGES
from gateway.problems import Problem
from gateway.schemas import SubjectIdentifiers

router = APIRouter(include_in_schema=False, dependencies=[Depends(load_officer)])
PAGE_SIZES = (10, 25, 50, 100)  # the records per page an officer may choose in the search
PAGE_SIZE = 50
OVERVIEW_MONTHS = 12
# the search form's fields are the API's query parameters (camelCase) -> the filter's fields
FORM_FIELDS = {parameter: name for name, parameter in queries.PARAMETERS.items()}


def _services(request: Request):
    return request.app.state.services


def officer(request: Request) -> Officer:
    return current_officer(request)


Csrf = Depends(check_csrf)


# --- filters --------------------------------------------------------------------------------------

def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Problem("invalid-filter", f"{name}: a date as YYYY-MM-DD is expected") from None


def _filter(request: Request, values: dict[str, str]) -> queries.AuditFilter:
    """The form's values as the API's filter. Dates are whole days in Europe/Amsterdam, the end day included."""
    given = {FORM_FIELDS[k]: v for k, v in values.items() if k in FORM_FIELDS and k not in ("since", "until")}
    since, until = values.get("since"), values.get("until")
    return queries.parse_filter(
        **given, catalogue=_services(request).catalogue, since=datetime.combine(_day(since, "since"), time(), TIMEZONE) if since else None,
        until=datetime.combine(_day(until, "until") + timedelta(days=1), time(), TIMEZONE) if until else None)


def _form_values(request: Request, defaults: dict[str, str] | None = None) -> dict[str, str]:
    values = dict(defaults or {})
    values.update({k: v.strip() for k, v in request.query_params.items() if k in FORM_FIELDS and v.strip()})
    return values


def _problem_view(exc: Problem, request: Request) -> dict:
    return {"type": exc.type.uri, "title": exc.type.title, "detail": exc.detail, "instance": request.url.path,
            "fields": tuple(re.findall(r"query:([A-Za-z]+)", exc.detail))}  # the form fields to mark invalid


async def _fields(request: Request, who: Officer) -> list[dict]:
    return await choices.filter_fields(_services(request), who, request)


# --- login ----------------------------------------------------------------------------------------

def _safe_next(value: str | None) -> str:
    """Only a path of these pages: never another site (no open redirect)."""
    if (value and value.startswith("/audit/") and not value.startswith("//") and "\\" not in value
            and "://" not in value and ".." not in value):
        return value
    return "/audit/"


@router.get("/login")
async def login(request: Request, next: str | None = None):
    try:
        current_officer(request)
        return RedirectResponse(_safe_next(next), status_code=303)
    except LoginRequired:
        pass
    settings = _services(request).settings
    return page(request, "login.html", officer=None, demo=settings.demo, next=_safe_next(next),
                configured=request.app.state.oidc is not None)


@router.get("/login/start")
async def login_start(request: Request, next: str | None = None):
    client = request.app.state.oidc
    if client is None:
        raise Problem("login-refused", "no identity provider is configured (BRB_OIDC_ISSUER)")
    request.session["next"] = _safe_next(next)
    public = _services(request).settings.public_url
    return await client.authorize_redirect(request, f"{public}/audit/callback" if public else str(request.url_for("callback")))


@router.get("/callback", name="callback")
async def callback(request: Request):
    client = request.app.state.oidc
    if client is None:
        raise Problem("login-refused", "no identity provider is configured (BRB_OIDC_ISSUER)")
    try:
        token = await client.authorize_access_token(request)
    except OAuthError as exc:  # state, code or token refused
        raise Problem("login-refused", f"the identity provider's answer was not accepted: {exc.error}") from None
    except JoseError as exc:  # the ID token: signature, issuer, audience, expiry, nonce
        raise Problem("login-refused", f"the ID token was not accepted: {exc.error}") from None
    except httpx.HTTPError:
        raise Problem("unavailable", "the identity provider cannot be reached; try again later") from None
    claims = token.get("userinfo")
    if not claims:
        raise Problem("login-refused", "the identity provider gave no ID token")
    who = await officer_from_claims(_services(request), dict(claims))
    target = _safe_next(request.session.get("next"))
    async with _services(request).unit_of_work(who.caller().actor) as uow:  # the session and its login record, together
        await start_session(request, uow, who)
        _audit_view(uow, who, "logged in to the audit pages")
    return RedirectResponse(target, status_code=303)


@router.post("/logout", dependencies=[Csrf])
async def logout(request: Request):
    """The session ends on the server with its audit record (one transaction), then the cookie is cleared: a copy
    of the cookie opens nothing either. Without a live session there is nothing to end or record."""
    who = request.state.officer
    if who is not None:
        async with _services(request).unit_of_work(who.caller().actor) as uow:
            await end_session(request, uow)
            _audit_view(uow, who, "logged out")
    request.session.clear()
    return RedirectResponse("/audit/login", status_code=303)


@router.get("/language")
async def switch_language(request: Request, to: str = "nl", next: str | None = None):
    request.session["lang"] = to if to in LANGUAGES else "nl"
    return RedirectResponse(_safe_next(next), status_code=303)


async def _record_view(request: Request, who: Officer, what: str, **kwargs) -> None:
    """A page view is a query of the audit log: recorded like the API's (activity audit-query), naming the person."""
    async with _services(request).unit_of_work(who.caller().actor) as uow:
        _audit_view(uow, who, what, **kwargs)


def _audit_view(uow, who: Officer, what: str, **kwargs) -> None:
    """The page view's audit record, in ``uow`` (a login's and a logout's share the session row's transaction)."""
    uow.audit(Activity.AUDIT_QUERY, "performed", detail=f"audit page: {what}; officer {who.sub}", **kwargs)


# --- overview -------------------------------------------------------------------------------------

def _charts(report, t) -> list[dict]:
    groups = report.groups
    months = sorted({g.period for g in groups})
    by_type: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rules: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    parties: dict[str, int] = defaultdict(int)
    for g in groups:
        by_type[g.message_type or "—"][g.period] += g.count
        if g.outcome in ("redact", "deny"):
            rules[g.outcome][g.rule or "—"] += g.count
        parties[g.counterparty_name or g.counterparty_oin or "—"] += g.count
    rule_labels = sorted({r for per in rules.values() for r in per})
    party_labels = sorted(parties, key=lambda p: -parties[p])[:15]
    return [
        {"id": "month", "title": t("chart_month"), "label_heading": t("month"), "labels": months, "stacked": True,
         "datasets": [{"label": mt, "data": [per[m] for m in months]} for mt, per in sorted(by_type.items())]},
        {"id": "rules", "title": t("chart_rules"), "label_heading": t("rule"), "labels": rule_labels, "stacked": False,
         "horizontal": True, "datasets": [{"label": t(o), "data": [rules[o][r] for r in rule_labels]} for o in ("redact", "deny")]},
        {"id": "counterparty", "title": t("chart_counterparty"), "label_heading": t("counterparty"), "labels": party_labels,
         "stacked": False, "horizontal": True, "datasets": [{"label": t("count"), "data": [parties[p] for p in party_labels]}]},
    ]


@router.get("/")
async def overview(request: Request):
    who = officer(request)
    start = (datetime.now(TIMEZONE).date().replace(day=1) - timedelta(days=31 * (OVERVIEW_MONTHS - 1))).replace(day=1)
    values = _form_values(request, {"since": start.isoformat()})
    problem, charts = None, []
    try:
        report = await aggregates.aggregate(_services(request), who.caller(), _filter(request, values), "month")
        charts = _charts(report, texts_for(request))
    except Problem as exc:
        problem = _problem_view(exc, request)
    return page(request, "overview.html", officer=who, charts=charts, problem=problem, values=values,
                fields=await _fields(request, who), invalid=problem["fields"] if problem else (),
                status_code=400 if problem else 200)


# --- search, a record, export ---------------------------------------------------------------------

@router.get("/records")
async def search(request: Request, cursor: str | None = None):
    who = officer(request)
    values = _form_values(request)
    size = _page_size(request.query_params.get("pageSize"))
    query = urlencode({**values, **({"pageSize": size} if size != PAGE_SIZE else {})})
    result, problem = None, None
    try:
        result = await queries.records(_services(request), who.caller(), _filter(request, values), cursor, size)
    except Problem as exc:
        problem = _problem_view(exc, request)
        values = {k: v for k, v in values.items() if k not in problem["fields"]}  # never echo a refused value (a BSN)
    context = {"officer": who, "page": result, "problem": problem, "values": values, "query": query,
               "page_size": size, "page_sizes": PAGE_SIZES,
               "status_code": 400 if problem else 200}
    if request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == "results":
        return page(request, "_results.html", **context)
    return page(request, "records.html", fields=await _fields(request, who), invalid=problem["fields"] if problem else (),
                **context)


def _page_size(value: str | None) -> int:
    """The search's page size: one of PAGE_SIZES, anything else is the default (a hand-edited URL gets a page)."""
    return int(value) if value and value.isdigit() and int(value) in PAGE_SIZES else PAGE_SIZE


@router.get("/records/{seq}")
async def record(request: Request, seq: Annotated[int, Path(ge=1, le=MAX_BIGINT)]):
    who = officer(request)
    r, previous, following = await queries.record_at(_services(request), who.caller(), seq)
    await _record_view(request, who, f"record {seq}", subject_id=r.subject_id, message_id=r.message_id)
    return page(request, "record.html", officer=who, r=r, fields=_record_fields(r, plain_words(language(request))),
                previous=previous, following=following)


def _record_fields(r, plain) -> list[tuple[str, str, str | None]]:
    """A record's fields as the page lists them: (field name, what to show, the code under it). Codes with
    plain words (outcome, legal basis, purpose) show both; times are local; unset fields are left out."""
    words = {"outcome": plain.outcome(r.activity, r.outcome), "legalBasis": plain.cite(r.legal_basis),
             "purpose": plain.named("purposes", r.purpose) if r.purpose else None}
    fields = []
    for name, value in r.model_dump(by_alias=True, exclude={"prev_hash", "hash"}).items():
        if value is None or value == "":
            continue
        shown = local_time(value) if isinstance(value, datetime) else str(value)
        fields.append((name, words[name], shown) if words.get(name) else (name, shown, None))
    return fields


@router.get("/export")
async def export(request: Request, format: str = "csv", separator: str = "comma"):
    who = officer(request)
    if format not in ("csv", "jsonl") or separator not in ("comma", "semicolon"):
        raise Problem("validation-failed", "format: csv or jsonl; separator: comma or semicolon")
    body = await queries.export(_services(request), who.caller(), _filter(request, _form_values(request)), format, separator=separator)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    name = f"audit-export{'-semicolon' if separator == 'semicolon' and format == 'csv' else ''}.{format}"
    return StreamingResponse(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


# --- a subject's report (AVG art. 15) -------------------------------------------------------------

@router.get("/subject")
async def subject_form(request: Request):
    who = officer(request)
    await _record_view(request, who, "subject report form")
    return page(request, "subject.html", officer=who, report=None, problem=None)


@router.post("/subject", dependencies=[Csrf])
async def subject_lookup(request: Request, bsn: str = Form(""), skn: str = Form("")):
    """The BSN or SKN arrives in the body, is turned into the pseudonym at once, and only the pseudonym is
    kept (in the signed session) for the downloads: no identifier in a URL, a log line or the cookie."""
    who = officer(request)
    try:
        identifiers = SubjectIdentifiers.model_validate({k: v.strip() for k, v in (("bsn", bsn), ("skn", skn)) if v.strip()})
    except ValidationError as exc:
        errors = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        problem = {"type": "validation-failed", "title": "BSN / SKN", "detail": errors, "instance": request.url.path}
        return page(request, "subject.html", officer=who, report=None, problem=problem, status_code=422)
    subject_id = await subject_id_for(_services(request), identifiers)
    request.session["subject"] = subject_id or ""
    report, citizen = await _citizen(request, who)
    return page(request, "subject.html", officer=who, report=report, c=citizen, problem=None)


async def _citizen(request: Request, who: Officer):
    """The report on the person last looked up in this session, as the API makes it (audited there)."""
    if "subject" not in request.session:
        raise Problem("invalid-request", "look the person up first (Inzage voor een persoon)")
    services, caller = _services(request), who.caller()
    report, names = await queries.report_for(services, caller, request.session["subject"] or None)
    return report, queries.citizen_view(services, caller, report, names, language(request))


@router.post("/subject/report.pdf", dependencies=[Csrf])
async def subject_pdf(request: Request):
    _report, citizen = await _citizen(request, officer(request))
    return Response(citizen_report.render_pdf(citizen), media_type="application/pdf",
                    headers={"Content-Disposition": 'attachment; filename="inzage.pdf"'})


@router.post("/subject/report.json", dependencies=[Csrf])
async def subject_json(request: Request):
    _report, citizen = await _citizen(request, officer(request))
    return JSONResponse(citizen_report.render_json(citizen), headers={"Content-Disposition": 'attachment; filename="inzage.json"'})


# --- chain verification ---------------------------------------------------------------------------

@router.get("/verify")
async def verify_page(request: Request, fromSeq: Annotated[int, Query(ge=1, le=MAX_BIGINT)] = 1):
    who = officer(request)
    await _record_view(request, who, "verify")
    return page(request, "verify.html", officer=who, job=None, from_seq=max(1, fromSeq))


@router.post("/verify", dependencies=[Csrf])
async def verify_start(request: Request):
    who = officer(request)
    form = await request.form()
    raw = str(form.get("fromSeq") or "1")
    from_seq = int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_BIGINT else 1
    job = await request.app.state.verifications.start(_services(request), who.sub, from_seq)
    await _record_view(request, who, f"verify the chain from {from_seq}")
    if request.headers.get("hx-request") == "true":
        return page(request, "_verify.html", officer=who, job=job)
    return RedirectResponse(f"/audit/verify/jobs/{job.id}", status_code=303)


@router.get("/verify/jobs/{job_id}")
async def verify_progress(request: Request, job_id: str):
    who = officer(request)
    job = request.app.state.verifications.get(job_id, who.sub)
    if job is None:
        raise Problem("not-found", "no such verification of yours")
    if request.headers.get("hx-request") == "true":
        return page(request, "_verify.html", officer=who, job=job)
    return page(request, "verify.html", officer=who, job=job, from_seq=job.from_seq)
