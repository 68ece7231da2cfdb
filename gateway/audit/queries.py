"""Auditor queries: filtered, cursor-paged record lists, streamed exports and the subject report.
``audit:read`` sees its own organisation's records (an auditor: the organisation it audits);
``audit:read-all`` (the inspectorate) sees all. Every query and export is itself audited.

The filter (``AuditFilter``) is built by ``parse_filter`` from what a caller typed (the API's query string,
a web page's form): every value is checked against its vocabulary (activities; the policy catalogue's
purposes, legal bases and rules; the contracts' message types; the exchange outcomes) or its format (OIN,
subject pseudonym, message id, trace id, RFC 3339 date-time), and a value outside it is refused with the
problem ``invalid-filter`` (400) naming the parameter and what it accepts, before anything is looked up or
audited: an unknown word never answers an empty list that would read as "nobody did this"."""
from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy import and_, case, or_
from sqlmodel import col, select

import consent
from consent.catalogue import Catalogue
from contracts.parties import KINDS, SYSTEM_OIN, Scope
from contracts.registry import MESSAGE_TYPES
from gateway.audit.chain import VerifyResult, verify
from gateway.audit.checkpoint import anchor_for, records_from
from gateway.audit.record import (
    EXPORT_COLUMNS,
    Activity,
    ExchangeOutcome,
    export_row,
    record_view,
)
from gateway.audit.report import AuditPage, SubjectReport, VerifyReport
from gateway.auth.tokens import Caller
from gateway.consents import subject_id_for
from gateway.db.filters import either, equals, in_range, narrowed
from gateway.db.models import AuditHead, AuditRecord, Message, Organisation
from gateway.db.paging import BIGINT, Keyset
from gateway.problems import Problem, field_detail
from gateway.schemas import Instant, SubjectIdentifiers
from gateway.services import Services

CHUNK = 1000
AUDIT_RECORDS = Keyset("audit-records", ((AuditRecord.seq, BIGINT),), start=(0,))
PARTIES = (AuditRecord.actor_oin, AuditRecord.counterparty_oin)
SYSTEM_NAME = "Berichtenbox Re-integratie (the gateway itself)"  # the actor of retention and checkpoints


@dataclass(frozen=True)
class AuditFilter:
    """What an auditor narrows the records to; None: not filtered on. Build it with ``parse_filter``."""

    subject_id: str | None = None
    organisation: str | None = None  # as actor or as counterparty
    message_id: str | None = None
    activity: str | None = None
    purpose: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    counterparty: str | None = None  # the other party specifically (the record's counterparty_oin)
    message_type: str | None = None
    legal_basis: str | None = None
    outcome: str | None = None  # an ExchangeOutcome: allow | redact | deny
    trace_id: str | None = None
    rule: str | None = None  # a rule id of the policy catalogue

    def describe(self) -> str:
        parts = [f"{k}={v.isoformat() if isinstance(v, datetime) else v}" for k, v in self.__dict__.items() if v]
        return ", ".join(parts) or "no filter"


# --- the filter's vocabularies and formats ------------------------------------------------------------

OIN_FORMAT = r"^[0-9]{20}$"
FORMATS: dict[str, tuple[str, str]] = {  # AuditFilter field -> (pattern, what a value must be)
    "subject_id": (r"^sub-[0-9a-f]{32}$", "a subject pseudonym is expected: sub- and 32 hexadecimal digits (0-9, a-f)"),
    "organisation": (OIN_FORMAT, "an OIN of 20 digits (0-9) is expected"),
    "counterparty": (OIN_FORMAT, "an OIN of 20 digits (0-9) is expected"),
    "message_id": (r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
                   "a message id is expected: a UUID in lower case with hyphens"),
    "trace_id": (r"^[0-9a-f]{32}$", "a trace id is expected: 32 hexadecimal digits (0-9, a-f), as in a traceparent header"),
}
TIMES = ("since", "until")
BSN_INSTEAD = ("a BSN never goes in a URL: to find the records about a person by BSN (or SKN), use the subject "
               "report, POST /api/v1/audit/subject-report with the BSN in the body")
_INSTANT = TypeAdapter(Instant)
_BSN_LIKE = re.compile(r"^[0-9 .-]+$")


@functools.cache
def default_catalogue() -> Catalogue:
    """The policy catalogue the gateway enforces (consent/catalogue.yaml), parsed once per process."""
    return consent.load()


def vocabularies(catalogue: Catalogue | None = None) -> dict[str, tuple[str, ...]]:
    """The closed sets of the filter, by AuditFilter field: each value a record can carry."""
    catalogue = catalogue or default_catalogue()
    return {
        "activity": tuple(a.value for a in Activity),
        "purpose": tuple(sorted(catalogue.purposes)),
        "legal_basis": tuple(catalogue.legal_bases),
        "message_type": tuple(sorted(MESSAGE_TYPES)),
        "outcome": tuple(o.value for o in ExchangeOutcome),
        "rule": tuple(sorted(r.id for r in catalogue.rules)),
    }


FILTER_FIELDS = tuple(f.name for f in fields(AuditFilter))
PARAMETERS = {name: to_camel(name) for name in FILTER_FIELDS}  # AuditFilter field -> query parameter


def filter_schema(name: str, catalogue: Catalogue | None = None) -> dict:
    """What the parameter of filter field ``name`` accepts, as JSON Schema (for the OpenAPI document)."""
    if name in TIMES:
        return {"format": "date-time"}
    if name in FORMATS:
        return {"pattern": FORMATS[name][0]}
    return {"enum": list(vocabularies(catalogue)[name])}


def _looks_like_a_bsn(value: str) -> bool:
    """8 or 9 digits (any script), perhaps with spaces, dots or dashes: a BSN typed where a pseudonym goes."""
    digits = sum(c.isdigit() for c in value)
    return 8 <= digits <= 9 and all(c.isdigit() or c in " .-" for c in value)


def _problem_with(name: str, value: Any, vocabulary: dict[str, tuple[str, ...]]) -> str | None:
    """Why ``value`` is no value of filter field ``name`` (None: it is one). Never repeats the value."""
    if name in TIMES:
        if isinstance(value, datetime):
            return None if value.tzinfo is not None else "a date-time with an offset is expected"
        try:
            _INSTANT.validate_python(value)
        except ValidationError:
            return "an RFC 3339 date-time with an offset is expected, e.g. 2026-11-01T00:00:00+01:00"
        return None
    if not isinstance(value, str):
        return "text is expected"
    if name == "subject_id" and not re.fullmatch(FORMATS[name][0], value) and _looks_like_a_bsn(value):
        return BSN_INSTEAD
    if name in FORMATS:
        pattern, expected = FORMATS[name]
        return None if re.fullmatch(pattern, value) else expected
    allowed = vocabulary[name]
    return None if value in allowed else f"one of {', '.join(allowed)}"


def parse_filter(
    *, subject_id: str | None = None, organisation: str | None = None, counterparty: str | None = None,
    message_id: str | None = None, activity: str | None = None, purpose: str | None = None,
    legal_basis: str | None = None, message_type: str | None = None, outcome: str | None = None,
    rule: str | None = None, trace_id: str | None = None, since: str | datetime | None = None,
    until: str | datetime | None = None, catalogue: Catalogue | None = None, blank_is_absent: bool = True,
) -> AuditFilter:
    """The filter from plain strings (``since``/``until`` also as aware datetimes), each checked against its
    vocabulary or format; raises the problem ``invalid-filter`` (400) listing every bad parameter with what it
    accepts (the value itself is never repeated: a BSN typed into ``subjectId`` must not come back). A blank
    value counts as not given (an empty form field) unless ``blank_is_absent`` is False (the API: an empty
    query parameter is refused, as its declared vocabulary says). Nothing is looked up or audited here."""
    given = dict(subject_id=subject_id, organisation=organisation, counterparty=counterparty, message_id=message_id,
                 activity=activity, purpose=purpose, legal_basis=legal_basis, message_type=message_type,
                 outcome=outcome, rule=rule, trace_id=trace_id, since=since, until=until)
    vocabulary = vocabularies(catalogue)
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name in FILTER_FIELDS:
        value = given[name]
        if blank_is_absent and isinstance(value, str):
            value = value.strip() or None
        if value is None:
            continue
        why = _problem_with(name, value, vocabulary)
        if why:
            problems.append((f"query:{PARAMETERS[name]}", why))
        else:
            values[name] = _INSTANT.validate_python(value).astimezone(UTC) if name in TIMES else value
    if not problems and values.get("since") and values.get("until") and values["until"] <= values["since"]:
        problems.append(("query:until", "lies at or before since (since is inclusive, until exclusive)"))
    if problems:
        raise Problem("invalid-filter", field_detail(problems))
    return AuditFilter(**values)


# --- the records a filter selects -------------------------------------------------------------------

_DELIVER = AuditRecord.activity == Activity.DELIVER.value
# an exchange outcome, mapped onto the records (gateway.audit.record.ExchangeOutcome says it in words);
# the three conditions are disjoint, so a record has at most one outcome
OUTCOME_CONDITIONS = {
    ExchangeOutcome.ALLOW: and_(_DELIVER, AuditRecord.outcome == "allow"),
    ExchangeOutcome.REDACT: or_(and_(_DELIVER, AuditRecord.outcome == "allow-with-redaction"),
                                AuditRecord.activity == Activity.REDACT.value),
    ExchangeOutcome.DENY: AuditRecord.activity == Activity.DENY.value,
}
# A send refused for every recipient stores no message: its deny records carry no message id, and their
# detail starts with the message type ("dr-plan: no rule lets …", gateway/exchange/send.py store_refusal)
_REFUSED_AT_SEND = and_(AuditRecord.message_id.is_(None), AuditRecord.activity == Activity.DENY.value)


def _refused_send_of(message_type: str):
    return and_(_REFUSED_AT_SEND, AuditRecord.detail.startswith(f"{message_type}: ", autoescape=True))


def outcome_of():
    """The record's exchange outcome (allow | redact | deny), NULL for a record of no exchange decision."""
    return case(*((condition, outcome.value) for outcome, condition in OUTCOME_CONDITIONS.items()), else_=None)


def message_type_of():
    """The type of the message a record is about: the messages row of its message id (the query must
    outer-join ``Message``, ``with_messages``), or, for a refused send, the type its detail names."""
    return case((AuditRecord.message_id.is_not(None), Message.type),
                *((_refused_send_of(t), t) for t in MESSAGE_TYPES), else_=None)


def with_messages(query):
    """``query`` (over AuditRecord) outer-joined with the message each record is about, for its type."""
    return query.outerjoin(Message, col(Message.id) == AuditRecord.message_id)


def _message_type_is(message_type: str | None):
    return None if message_type is None else or_(Message.type == message_type, _refused_send_of(message_type))


def own_organisation(caller: Caller) -> str:
    return caller.parent_oin if KINDS[caller.kind].audits_parent and caller.parent_oin else caller.oin


def sees_all(caller: Caller) -> bool:
    return Scope.AUDIT_READ_ALL in caller.scopes


def conditions(caller: Caller, f: AuditFilter) -> list:
    """What the caller may see, narrowed by the filter (a ``messageType`` condition needs ``with_messages``)."""
    return [
        None if sees_all(caller) else either(PARTIES, own_organisation(caller)),
        equals(AuditRecord.subject_id, f.subject_id), either(PARTIES, f.organisation),
        equals(AuditRecord.counterparty_oin, f.counterparty),
        equals(AuditRecord.message_id, f.message_id), equals(AuditRecord.activity, f.activity),
        equals(AuditRecord.purpose, f.purpose), equals(AuditRecord.legal_basis, f.legal_basis),
        equals(AuditRecord.rule, f.rule), equals(AuditRecord.trace_id, f.trace_id),
        None if f.outcome is None else OUTCOME_CONDITIONS[ExchangeOutcome(f.outcome)],
        _message_type_is(f.message_type), in_range(AuditRecord.recorded_at, f.since, f.until),
    ]


def _query(caller: Caller, f: AuditFilter):
    query = select(AuditRecord)
    return narrowed(with_messages(query) if f.message_type else query, *conditions(caller, f))


async def audit_the_query(services: Services, caller: Caller, activity: Activity, f: AuditFilter, what: str) -> None:
    """The query is itself a processing: recorded (before it runs) with what was asked and in which scope."""
    async with services.unit_of_work(caller.actor) as uow:
        uow.audit(activity, "performed", subject_id=f.subject_id, message_id=f.message_id,
                  detail=f"{what}; {'all organisations' if sees_all(caller) else 'own organisation'}; {f.describe()}")



async def names_of(session, oins: Iterable[str | None]) -> dict[str, str]:
    """OIN -> organisation name for these OINs, in one read (the gateway's own OIN has a name of its own)."""
    wanted = sorted({o for o in oins if o})
    if not wanted:
        return {}
    rows = (await session.exec(select(Organisation.oin, Organisation.name).where(col(Organisation.oin).in_(wanted)))).all()
    names = {oin: name for oin, name in rows}
    if SYSTEM_OIN in wanted:
        names.setdefault(SYSTEM_OIN, SYSTEM_NAME)
    return names


def _parties(rows: Iterable[Any]) -> set[str]:
    return {oin for r in rows for oin in (r.actor_oin, r.counterparty_oin) if oin}


async def organisation_names(services: Services, oins: Iterable[str] | None = None) -> dict[str, str]:
    """OIN -> name of every registered organisation (or of ``oins``), for a page that shows names beside OINs."""
    async with services.db.read() as session:
        if oins is not None:
            return await names_of(session, oins)
        rows = (await session.exec(select(Organisation.oin, Organisation.name))).all()
    return {SYSTEM_OIN: SYSTEM_NAME} | {oin: name for oin, name in rows}


async def records(services: Services, caller: Caller, f: AuditFilter, cursor: str | None, size: int) -> AuditPage:
    """One page of the records the caller may see, oldest first, with the organisations' names beside the
    OINs. A cursor this API did not give out is refused before the query is audited (nothing was looked up)."""
    after = AUDIT_RECORDS.decode(cursor)
    await audit_the_query(services, caller, Activity.AUDIT_QUERY, f, "records")
    async with services.db.read() as session:
        page = await AUDIT_RECORDS.page(session, _query(caller, f), after, size)
        names = await names_of(session, _parties(page.rows))
    return AuditPage.of(page, [record_view(r, names) for r in page.rows])


async def _stream(services: Services, caller: Caller, f: AuditFilter) -> AsyncIterator[tuple[list[AuditRecord], dict[str, str]]]:
    """The records in chunks with their organisations' names, one short read each (no transaction held open
    while the caller downloads)."""
    after = None
    while True:
        async with services.db.read() as session:
            page = await AUDIT_RECORDS.page(session, _query(caller, f), after, CHUNK)
            names = await names_of(session, _parties(page.rows))
        if page.rows:
            yield page.rows, names
        if page.next_key is None:
            return
        after = page.next_key


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SEPARATORS = {"comma": ",", "semicolon": ";"}  # semicolon: what a spreadsheet set to Dutch expects
FORMATS_OF_EXPORT = ("csv", "jsonl")
BOM = "\ufeff"  # at the very start of a CSV export: Excel then reads it as UTF-8


def csv_cell(value):
    """A cell a spreadsheet shows as text, never runs (OWASP CSV injection: prefix a single quote).
    Some values come from callers (a token's jti, a detail); an auditor opens the export in Excel."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def csv_writer(buf: io.StringIO, separator: str = "comma") -> csv.DictWriter:
    # CRLF rows (RFC 4180): a CR or LF inside a value is then quoted and cannot start a row of its own
    return csv.DictWriter(buf, fieldnames=EXPORT_COLUMNS, delimiter=SEPARATORS[separator], lineterminator="\r\n")


async def export(services: Services, caller: Caller, f: AuditFilter, fmt: str, separator: str = "comma") -> AsyncIterator[str]:
    """Audit the export first, then stream it chunk by chunk (memory stays bounded by CHUNK). ``fmt``: csv
    (a UTF-8 BOM, then a header row of ``EXPORT_COLUMNS``, CRLF rows, cells separated by ``separator``: comma
    or semicolon) or jsonl (one JSON object a line, the same keys). The keys are the API view's (camelCase),
    with ``actorName`` and ``counterpartyName`` beside the OINs."""
    problems = ([("query:format", f"one of {', '.join(FORMATS_OF_EXPORT)}")] if fmt not in FORMATS_OF_EXPORT else []) + \
        ([("query:separator", f"one of {', '.join(SEPARATORS)}")] if separator not in SEPARATORS else [])
    if problems:
        raise Problem("validation-failed", field_detail(problems))
    await audit_the_query(services, caller, Activity.EXPORT, f,
                          f"export as {fmt}" + (f" separated by {separator}" if fmt == "csv" else ""))

    def render(chunk: list[AuditRecord], names: Mapping[str, str]) -> str:
        if fmt == "csv":
            buf = io.StringIO()
            csv_writer(buf, separator).writerows({k: csv_cell(v) for k, v in export_row(r, names).items()} for r in chunk)
            return buf.getvalue()
        return "".join(json.dumps(export_row(r, names), ensure_ascii=False) + "\n" for r in chunk)

    chunks = aiter(_stream(services, caller, f))
    # the first query runs before the answer starts: if it fails, the caller gets a problem, not an empty 200
    first = await anext(chunks, None)

    async def generate() -> AsyncIterator[str]:
        if fmt == "csv":
            buf = io.StringIO()
            csv_writer(buf, separator).writeheader()
            yield BOM + buf.getvalue()
        if first is not None:
            yield render(*first)
        async for chunk in chunks:
            yield render(*chunk)

    return generate()


async def subject_records(services: Services, caller: Caller, subject_id: str | None) -> list[AuditRecord]:
    """Every processing about one person that the caller may see (AVG art. 15 inzage)."""
    f = AuditFilter(subject_id=subject_id)
    await audit_the_query(services, caller, Activity.AUDIT_QUERY, f, "subject report")
    if subject_id is None:
        return []
    out: list[AuditRecord] = []
    async for chunk, _names in _stream(services, caller, f):
        out.extend(chunk)
    return out


async def report_for(services: Services, caller: Caller, subject_id: str | None) -> tuple[SubjectReport, dict[str, str]]:
    """The report on one person (by pseudonym) as the caller may see it, with the names of the organisations
    in it and of the caller's own (the organisation an FG's report is limited to)."""
    rows = await subject_records(services, caller, subject_id)
    async with services.db.read() as session:
        names = await names_of(session, _parties(rows) | ({own_organisation(caller)} if not sees_all(caller) else set()))
    report = SubjectReport(subject_id=subject_id, generated_at=services.clock.now(), count=len(rows),
                           records=[record_view(r, names) for r in rows])
    return report, names


def citizen_view(services: Services, caller: Caller, report: SubjectReport, names: dict[str, str], lang: str = "nl"):
    """The report as the person reads it (gateway/audit/citizen_report.py, in ``lang``): an organisation's
    auditor (FG) sees its own organisation's processing only, and the report says so."""
    from gateway.audit import citizen_report

    scope = None if sees_all(caller) else own_organisation(caller)
    return citizen_report.build(report, names, lang=lang, scope_oin=scope, scope_name=names.get(scope) if scope else None,
                                settings=services.settings)


async def subject_report(services: Services, caller: Caller, who: SubjectIdentifiers, as_html: bool,
                         lang: str = "nl") -> SubjectReport | str:
    """The report about the person with this BSN or SKN: the JSON report, or the HTML document an auditor
    hands to the person; both with the organisations' names."""
    if not (who.bsn or who.skn):
        raise Problem("validation-failed", field_detail([("/", "give a bsn or an skn")]))
    report, names = await report_for(services, caller, await subject_id_for(services, who))
    if not as_html:
        return report
    from gateway.audit import citizen_report

    return citizen_report.render_html(citizen_view(services, caller, report, names, lang))


async def record_at(services: Services, caller: Caller, seq: int) -> tuple[Any, int | None, int | None]:
    """One record the caller may see, and its place in the chain: the nearest records before and after it that
    the caller may see too. Any other record is ``not-found``, as a record of another organisation is."""
    mine = conditions(caller, AuditFilter())
    async with services.db.read() as session:
        row = (await session.exec(narrowed(select(AuditRecord), *mine, AuditRecord.seq == seq))).first()
        if row is None:
            raise Problem("not-found", "no audit record with this seq that you may see")
        before = (await session.exec(narrowed(select(AuditRecord.seq), *mine, AuditRecord.seq < seq)
                                     .order_by(col(AuditRecord.seq).desc()).limit(1))).first()
        after = (await session.exec(narrowed(select(AuditRecord.seq), *mine, AuditRecord.seq > seq)
                                    .order_by(col(AuditRecord.seq)).limit(1))).first()
        names = await names_of(session, _parties([row]))
    return record_view(row, names), before, after


async def verify_chain(services: Services, from_seq: int = 1,
                       progress: Callable[[int], None] | None = None) -> VerifyResult:
    """Walk the chain (in chunks) and check it, its head row and, when a checkpoint file is configured,
    the newest signed checkpoint. The head is read after the walk; records appended meanwhile are walked
    too, so a busy chain is not mistaken for a broken one. ``progress`` hears the seq of each record walked."""
    anchor = await anchor_for(services)
    seen: dict[str, AuditHead | None] = {}

    async def walk() -> AsyncIterator[AuditRecord]:
        after, idle = from_seq - 1, 0
        for _round in range(100):
            progressed = False
            async for r in records_from(services, after + 1):
                progressed, after = True, r.seq
                if progress is not None:
                    progress(r.seq)
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


async def chain_report(services: Services, from_seq: int = 1,
                       progress: Callable[[int], None] | None = None) -> VerifyReport:
    return VerifyReport(**(await verify_chain(services, from_seq, progress)).__dict__)
