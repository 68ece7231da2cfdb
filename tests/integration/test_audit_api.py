"""The audit officer's API for the pages built on it: every filter checked against its vocabulary or format (a
400 invalid-filter naming what it accepts, nothing audited), the new filters narrowing, organisation names beside
the OINs in records, CSV and JSON lines, the CSV's BOM, header and separator, and the aggregate counting exactly
what the record list gives, scoped like it (both databases)."""
from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import datetime, timezone

import pytest
from sqlmodel import func, select

from gateway.audit.record import EXPORT_COLUMNS, AuditEntry
from gateway.db.models import AuditRecord
from gateway.services import Actor
from tests.scenario import BSN, Chain, example, problem

API = "/api/v1/audit"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
ROUTES = ("/records", "/export", "/aggregates")


async def get(client, org, path: str, **params):
    return await client.get(API + path, params=params, headers=org.headers())


async def all_records(client, org, **params) -> list[dict]:
    """Every record the list gives for these filters (paged through)."""
    items, cursor = [], None
    while True:
        r = await get(client, org, "/records", pageSize=200, **params, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        page = r.json()
        items += page["items"]
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            return items


async def stored(services) -> int:
    async with services.db.read() as s:
        return (await s.exec(select(func.count()).select_from(AuditRecord))).one()


async def history(client, orgs) -> dict:
    """PI Vught sends a D&R-plan to Amsterdam (delivered with 3 sections withheld; the caller's traceparent),
    a detention-notice to probation (delivered whole) and a D&R-plan to probation for a purpose its rule does
    not allow (refused: no message stored); Amsterdam reads the plan (3 sections withheld) and is refused a
    read for public order."""
    chain = Chain(client, orgs)
    body = {"type": "dr-plan", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"],
            "payload": example("dr-plan")}
    r = await client.post("/api/v1/messages", json=body, headers=orgs.vught.headers(
        **{"Idempotency-Key": uuid.uuid4().hex, "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}))
    assert r.status_code == 201, r.text
    plan = r.json()["id"]
    notice = (await chain.admit(orgs.vught))["id"]
    await chain.send(orgs.vught, "dr-plan", [orgs.reclassering.oin], purpose="public-order", expect=403)
    await chain.read(orgs.amsterdam, plan, "aftercare")
    await chain.read(orgs.amsterdam, plan, "public-order", expect=403)
    return {"plan": plan, "notice": notice}


# --- filters are checked ----------------------------------------------------------------------------

BAD = [  # parameter, value, what the detail must say
    ("activity", "lezen", "one of send, deliver, read"),
    ("purpose", "nazorg", "aftercare"),
    ("legalBasis", "wet", "pbw-18a"),
    ("messageType", "brief", "dr-plan"),
    ("outcome", "allowed", "one of allow, redact, deny"),
    ("rule", "dr-plan/dji-to-nobody", "dr-plan/dji-to-municipality"),
    ("organisation", "Amsterdam", "an OIN of 20 digits"),
    ("counterparty", "0000000100999036300", "an OIN of 20 digits"),
    ("organisation", "０" * 20, "an OIN of 20 digits"),
    ("subjectId", "sub-xyz", "sub- and 32 hexadecimal digits"),
    ("messageId", "not-a-uuid", "a UUID"),
    ("traceId", "4BF92F35", "32 hexadecimal digits"),
    ("since", "yesterday", "RFC 3339"),
    ("until", "2026-11-01T10:00:00", "with an offset"),
    ("activity", "", "one of send"),
]


@pytest.mark.parametrize("param,value,says", BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
async def test_a_value_outside_a_filters_vocabulary_or_format_is_a_400_naming_what_it_accepts(
        client, orgs, services, param, value, says):
    before = await stored(services)
    for route in ROUTES:
        r = await get(client, orgs.inspectorate, route, **{param: value})
        body = problem(r, 400, "invalid-filter")
        assert body["detail"].startswith(f"1 invalid field(s): query:{param}: ") and says in body["detail"], body
        if len(value) > 3:
            assert value not in body["detail"]  # the value is never repeated
    assert await stored(services) == before  # a refused query looked nothing up: nothing is audited


async def test_every_bad_filter_is_named_at_once_and_an_empty_range_is_refused(client, orgs):
    r = await get(client, orgs.fg_amsterdam, "/records", activity="lezen", purpose="nazorg", organisation="Amsterdam")
    detail = problem(r, 400, "invalid-filter")["detail"]
    assert detail.startswith("3 invalid field(s): query:organisation: ") and "query:activity" in detail and "query:purpose" in detail
    r = await get(client, orgs.fg_amsterdam, "/aggregates", since="2026-11-02T00:00:00Z", until="2026-11-01T00:00:00+01:00")
    assert "query:until: lies at or before since" in problem(r, 400, "invalid-filter")["detail"]


@pytest.mark.parametrize("value", [BSN, "999 99 0019", "12345678"])
async def test_a_bsn_in_subject_id_points_to_the_subject_report_and_never_comes_back(client, orgs, services, value):
    before = await stored(services)
    for route in ROUTES:
        r = await get(client, orgs.inspectorate, route, subjectId=value)
        body = problem(r, 400, "invalid-filter")
        assert "subject report" in body["detail"] and "POST /api/v1/audit/subject-report" in body["detail"]
        digits = value.replace(" ", "")
        assert digits not in r.text and value not in r.text and all(digits not in v for v in r.headers.values())
    assert await stored(services) == before


async def test_a_caller_without_a_token_is_refused_before_its_filter_is_read(client, orgs):
    r = await client.get(API + "/records", params={"activity": "lezen"})
    problem(r, 401, "invalid-token")
    r = await client.get(API + "/records", params={"activity": "lezen"}, headers=orgs.vught.headers())
    problem(r, 403, "insufficient-scope")


async def test_what_shapes_the_answer_is_validated_like_any_parameter(client, orgs):
    problem(await get(client, orgs.inspectorate, "/aggregates", period="year"), 422, "validation-failed")
    problem(await get(client, orgs.inspectorate, "/export", format="csv", separator="tab"), 422, "validation-failed")
    r = await get(client, orgs.inspectorate, "/aggregates", activity="read")  # a word of the vocabulary, but counts nothing
    assert "deliver, redact, deny" in problem(r, 400, "invalid-filter")["detail"]


# --- the new filters narrow ---------------------------------------------------------------------------

async def test_each_new_filter_narrows_to_exactly_its_records(client, orgs, stay):
    ids = await history(client, orgs)
    inspector = orgs.inspectorate

    by_trace = await all_records(client, inspector, traceId=TRACE)
    assert [r["activity"] for r in by_trace] == ["send", "deliver", "redact", "redact", "redact"]
    assert {r["traceId"] for r in by_trace} == {TRACE} and {r["messageId"] for r in by_trace} == {ids["plan"]}

    plans = await all_records(client, inspector, messageType="dr-plan")
    refused = [r for r in plans if r["messageId"] is None]
    assert [(r["activity"], r["counterpartyOin"], r["rule"]) for r in refused] == [
        ("deny", orgs.reclassering.oin, "dr-plan/dji-to-probation")]  # a refused send stores no message: its detail names the type
    assert {r["messageId"] for r in plans} == {ids["plan"], None}
    assert {"send", "deliver", "redact", "read", "deny"} <= {r["activity"] for r in plans}
    notices = await all_records(client, inspector, messageType="detention-notice")
    assert notices and {r["messageId"] for r in notices} == {ids["notice"]}

    to_vught = await all_records(client, inspector, counterparty=orgs.vught.oin)
    with_vught = await all_records(client, inspector, organisation=orgs.vught.oin)
    assert to_vught and all(r["counterpartyOin"] == orgs.vught.oin for r in to_vught)
    assert {r["seq"] for r in to_vught} < {r["seq"] for r in with_vught}  # as actor too: the sends
    read_by_amsterdam = {r["activity"] for r in to_vught if r["actorOin"] == orgs.amsterdam.oin}
    assert read_by_amsterdam == {"read", "redact", "deny"}  # Amsterdam's reads of the plan

    basis = await all_records(client, inspector, legalBasis="pbw-18a")
    assert basis and all(r["legalBasis"] == "pbw-18a" for r in basis)
    assert {(r["activity"], r["counterpartyOin"]) for r in basis} >= {("deliver", orgs.reclassering.oin), ("deny", orgs.reclassering.oin)}

    ruled = await all_records(client, inspector, rule="dr-plan/dji-to-probation")
    assert [(r["activity"], r["outcome"]) for r in ruled] == [("deny", "purpose-not-allowed")]

    outcomes = {o: await all_records(client, inspector, outcome=o) for o in ("allow", "redact", "deny")}
    assert [(r["activity"], r["outcome"], r["messageId"]) for r in outcomes["allow"]] == [("deliver", "allow", ids["notice"])]
    assert sorted(r["activity"] for r in outcomes["redact"]) == ["deliver"] + ["redact"] * 6
    assert [r["outcome"] for r in outcomes["redact"] if r["activity"] == "deliver"] == ["allow-with-redaction"]
    assert [(r["actorOin"], r["messageId"] is None) for r in outcomes["deny"]] == [(orgs.vught.oin, True), (orgs.amsterdam.oin, False)]

    combined = await all_records(client, inspector, outcome="redact", counterparty=orgs.vught.oin, messageType="dr-plan")
    assert [r["activity"] for r in combined] == ["redact"] * 3  # withheld at Amsterdam's read


async def test_filters_narrow_an_auditor_only_within_its_own_organisation(client, orgs, stay):
    await history(client, orgs)
    fg = orgs.fg_amsterdam
    assert await all_records(client, fg, counterparty=orgs.reclassering.oin) == []  # PI Vught's exchanges with probation
    denied = await all_records(client, fg, outcome="deny")
    assert [(r["actorOin"], r["counterpartyOin"]) for r in denied] == [(orgs.amsterdam.oin, orgs.vught.oin)]


# --- names beside OINs; CSV and JSON lines --------------------------------------------------------------

NAMES = {"vught": "PI Vught", "amsterdam": "Gemeente Amsterdam (nazorg)", "reclassering": "Reclassering Nederland"}


async def test_records_carry_the_organisations_names_beside_their_oins(client, orgs, stay):
    await history(client, orgs)
    items = await all_records(client, orgs.inspectorate, messageType="dr-plan")
    names = {getattr(orgs, alias).oin: name for alias, name in NAMES.items()}
    for r in items:
        assert r["actorName"] == names[r["actorOin"]]
        assert r["counterpartyName"] == (names[r["counterpartyOin"]] if r["counterpartyOin"] else None)
    keys = list(items[0])
    assert keys.index("actorName") == keys.index("actorOin") + 1 and keys.index("counterpartyName") == keys.index("counterpartyOin") + 1


async def test_csv_and_json_lines_share_the_records_keys_and_names_and_csv_opens_in_a_spreadsheet(client, orgs, stay):
    await history(client, orgs)
    fg, params = orgs.fg_amsterdam, {"messageType": "dr-plan"}
    items = await all_records(client, fg, **params)
    jsonl = await get(client, fg, "/export", format="jsonl", **params)
    comma = await get(client, fg, "/export", format="csv", **params)
    semicolon = await get(client, fg, "/export", format="csv", separator="semicolon", **params)

    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert jsonl.headers["content-type"] == "application/x-ndjson" and not jsonl.content.startswith(b"\xef\xbb\xbf")
    assert [line["seq"] for line in lines] == [r["seq"] for r in items]
    assert all(list(line) == list(EXPORT_COLUMNS) for line in lines) and set(EXPORT_COLUMNS) == set(items[0])
    assert [(line["actorName"], line["counterpartyName"]) for line in lines] == [(r["actorName"], r["counterpartyName"]) for r in items]

    for r, delimiter in ((comma, ","), (semicolon, ";")):
        assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.content.startswith(b"\xef\xbb\xbf" + EXPORT_COLUMNS[0].encode())  # the BOM, at the very start
        assert r.content.count(b"\r\n") == len(items) + 1  # RFC 4180 rows
        header, *rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline=""), delimiter=delimiter))
        assert header == list(EXPORT_COLUMNS) == list(lines[0])
        assert [dict(zip(header, row)) for row in rows] == [{k: "" if v is None else str(v) for k, v in line.items()} for line in lines]
    assert semicolon.content.split(b"\r\n", 1)[0] == comma.content.split(b"\r\n", 1)[0].replace(b",", b";")
    assert "PI Vught" in comma.text and "Gemeente Amsterdam (nazorg)" in semicolon.text


# --- the aggregate ------------------------------------------------------------------------------------

async def aggregate(client, org, **params) -> dict:
    r = await get(client, org, "/aggregates", **params)
    assert r.status_code == 200, r.text
    return r.json()


async def assert_counts_match_the_records(client, org, report: dict, **params) -> None:
    """Each cell's count is what the record list gives for the same filter and the cell's values."""
    assert report["total"] == sum(g["count"] for g in report["groups"])
    outcomes = [params.pop("outcome")] if "outcome" in params else ["allow", "redact", "deny"]
    per_outcome = {o: len(await all_records(client, org, outcome=o, **params)) for o in outcomes}
    assert report["total"] == sum(per_outcome.values())
    for o, n in per_outcome.items():
        assert sum(g["count"] for g in report["groups"] if g["outcome"] == o) == n, o
    for g in report["groups"]:
        if g["rule"] and g["messageType"] and g["counterpartyOin"]:
            cell = dict(params, since=g["since"], until=g["until"], activity=g["activity"], outcome=g["outcome"],
                        messageType=g["messageType"], rule=g["rule"], organisation=g["actorOin"], counterparty=g["counterpartyOin"])
            assert len(await all_records(client, org, **cell)) == g["count"], g


async def test_the_aggregate_counts_what_the_records_list_gives_scoped_like_it(client, orgs, stay):
    await history(client, orgs)
    everything = await aggregate(client, orgs.inspectorate)
    own = await aggregate(client, orgs.fg_amsterdam)
    await assert_counts_match_the_records(client, orgs.inspectorate, everything)
    await assert_counts_match_the_records(client, orgs.fg_amsterdam, own)
    assert (everything["period"], everything["total"], own["total"]) == ("month", 10, 8)
    assert all(orgs.amsterdam.oin in (g["actorOin"], g["counterpartyOin"]) for g in own["groups"])
    assert {g["counterpartyOin"] for g in everything["groups"]} >= {orgs.reclassering.oin}
    period = datetime.now(timezone.utc).strftime("%Y-%m")
    assert {g["period"] for g in everything["groups"]} == {period}

    delivered = next(g for g in own["groups"] if g["activity"] == "deliver")
    assert delivered == {
        "period": period, "since": delivered["since"], "until": delivered["until"], "activity": "deliver",
        "messageType": "dr-plan", "outcome": "redact", "rule": "dr-plan/dji-to-municipality", "actorOin": orgs.vught.oin,
        "actorName": "PI Vught", "counterpartyOin": orgs.amsterdam.oin, "counterpartyName": "Gemeente Amsterdam (nazorg)", "count": 1}
    refused = [g for g in everything["groups"] if g["messageType"] == "dr-plan" and g["outcome"] == "deny"]
    assert {(g["actorName"], g["counterpartyName"], g["rule"]) for g in refused} == {
        ("PI Vught", "Reclassering Nederland", "dr-plan/dji-to-probation"),
        ("Gemeente Amsterdam (nazorg)", "PI Vught", "dr-plan/dji-to-municipality")}

    narrowed = await aggregate(client, orgs.inspectorate, outcome="deny", messageType="dr-plan", period="day")
    assert narrowed["total"] == 2 and {g["outcome"] for g in narrowed["groups"]} == {"deny"}
    await assert_counts_match_the_records(client, orgs.inspectorate, narrowed, outcome="deny", messageType="dr-plan")
    assert (await aggregate(client, orgs.fg_amsterdam, counterparty=orgs.reclassering.oin))["total"] == 0


async def test_the_aggregate_is_itself_audited(client, orgs, stay):
    await aggregate(client, orgs.fg_amsterdam, period="week", outcome="deny")
    logged = await all_records(client, orgs.inspectorate, organisation=orgs.fg_amsterdam.oin)
    assert [(r["activity"], r["actorOin"]) for r in logged] == [("audit-query", orgs.fg_amsterdam.oin)]
    assert logged[0]["detail"] == "aggregate per week; own organisation; outcome=deny"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


async def append(services, orgs, when: str, activity: str, outcome: str, counterparty, **fields) -> None:
    """Records as a send would have written them, at a chosen time (the chain appends them as it does any)."""
    entry = AuditEntry(activity, orgs.vught.oin, outcome, counterparty_oin=counterparty.oin, subject_id="sub-" + "0" * 32,
                       purpose="public-order", **fields)
    async with services.unit_of_work(Actor(oin=orgs.vught.oin, kind="dji")) as uow:
        await services.audit.append(uow.session, [entry], trace_id="f" * 32, token_id=None, scope=None, now=at(when))


async def test_the_aggregate_per_month_week_and_day_in_utc(client, orgs, services):
    refused = dict(rule="dr-plan/dji-to-probation", legal_basis="pbw-18a",
                   detail="dr-plan: purpose 'public-order' is not allowed by dr-plan/dji-to-probation")
    await append(services, orgs, "2025-10-31T23:30:00+00:00", "deny", "purpose-not-allowed", orgs.reclassering, **refused)
    await append(services, orgs, "2025-11-01T00:30:00+01:00", "deny", "purpose-not-allowed", orgs.reclassering, **refused)  # still Oct in UTC
    await append(services, orgs, "2025-11-02T12:00:00+00:00", "deny", "purpose-not-allowed", orgs.reclassering, **refused)  # a Sunday
    await append(services, orgs, "2025-11-03T08:00:00+00:00", "deliver", "allow", orgs.amsterdam, rule="dr-plan/dji-to-municipality")
    expected = {
        "month": {"2025-10": 2, "2025-11": 2},
        "week": {"2025-W44": 3, "2025-W45": 1},  # Monday 27 October to Sunday 2 November; Monday 3 November
        "day": {"2025-10-31": 2, "2025-11-02": 1, "2025-11-03": 1},
    }
    for period, counts in expected.items():
        report = await aggregate(client, orgs.inspectorate, period=period)
        assert report["period"] == period
        per: dict[str, int] = {}
        for g in report["groups"]:
            per[g["period"]] = per.get(g["period"], 0) + g["count"]
            assert len(await all_records(client, orgs.inspectorate, since=g["since"], until=g["until"], outcome=g["outcome"],
                                         activity=g["activity"], organisation=g["actorOin"],
                                         counterparty=g["counterpartyOin"])) == g["count"]
        assert per == counts, period
    month = (await aggregate(client, orgs.inspectorate))["groups"]
    assert [(g["period"], g["since"], g["until"]) for g in month[:1]] == [("2025-10", "2025-10-01T00:00:00Z", "2025-11-01T00:00:00Z")]
    assert [(g["messageType"], g["outcome"], g["count"]) for g in month] == [("dr-plan", "deny", 2), (None, "allow", 1), ("dr-plan", "deny", 1)]
    assert (await aggregate(client, orgs.fg_amsterdam))["total"] == 1  # the delivery to Amsterdam only
    assert (await aggregate(client, orgs.inspectorate, since="2025-11-01T00:00:00Z", until="2025-11-03T00:00:00Z"))["total"] == 1
