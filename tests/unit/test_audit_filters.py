"""The audit filter built from plain strings (gateway.audit.queries.parse_filter, for the API and the audit
pages), the export's columns and the aggregate's periods: pure, no database."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.api.params import OIN_PATTERN, SUBJECT_PATTERN, UUID_PATTERN
from gateway.audit import aggregate, queries
from gateway.audit.queries import AuditFilter, parse_filter
from gateway.audit.record import EXPORT_COLUMNS, AuditRecordView, ExchangeOutcome, export_row, record_view
from gateway.db.models import AuditRecord
from gateway.problems import Problem

SUBJECT = "sub-" + "a" * 32
OIN = "00000001009990363000"


def refused(**given) -> str:
    with pytest.raises(Problem) as caught:
        parse_filter(**given)
    assert caught.value.type.slug == "invalid-filter" and caught.value.type.status == 400
    return caught.value.detail


def test_good_values_make_the_filter_with_the_fields_the_pages_name():
    f = parse_filter(subject_id=SUBJECT, organisation=OIN, counterparty="00000001001234567000",
                     message_id="0f9e4c1a-6b2d-4e8f-9a31-7c5d2e8b4a10", activity="deliver", purpose="aftercare",
                     legal_basis="pm-20d-2", message_type="dr-plan", outcome="redact", rule="dr-plan/dji-to-municipality",
                     trace_id="4bf92f3577b34da6a3ce929d0e0e4736", since="2026-11-01T00:00:00+01:00",
                     until=datetime(2026, 12, 1, tzinfo=ZoneInfo("Europe/Amsterdam")))
    assert f == AuditFilter(subject_id=SUBJECT, organisation=OIN, message_id="0f9e4c1a-6b2d-4e8f-9a31-7c5d2e8b4a10",
                            activity="deliver", purpose="aftercare", since=datetime(2026, 10, 31, 23, tzinfo=timezone.utc),
                            until=datetime(2026, 11, 30, 23, tzinfo=timezone.utc), counterparty="00000001001234567000",
                            message_type="dr-plan", legal_basis="pm-20d-2", outcome="redact",
                            trace_id="4bf92f3577b34da6a3ce929d0e0e4736", rule="dr-plan/dji-to-municipality")
    assert f.since.tzinfo == timezone.utc and "outcome=redact" in f.describe()
    assert parse_filter() == AuditFilter() and AuditFilter().describe() == "no filter"


def test_a_blank_form_field_is_no_filter_but_a_blank_query_parameter_is_refused():
    assert parse_filter(activity="", purpose="  ", organisation=f" {OIN} ") == AuditFilter(organisation=OIN)
    assert "query:activity: one of send" in refused(activity="", blank_is_absent=False)
    assert "query:organisation" in refused(organisation=f" {OIN}", blank_is_absent=False)
    assert "query:organisation" in refused(organisation=OIN + "\n", blank_is_absent=False)  # fullmatch: no trailing newline


@pytest.mark.parametrize("name,value,says", [
    ("activity", "lezen", "one of send, deliver, read, acknowledge, deny, redact"),
    ("purpose", "nazorg", "one of aftercare, public-order, reintegration, risk-management, supervision"),
    ("legal_basis", "art-15", "pbw-18a, pm-20d-2"),
    ("message_type", "brief", "aftercare-report, detention-notice, dr-plan"),
    ("outcome", "allow-with-redaction", "one of allow, redact, deny"),
    ("rule", "nope", "dr-plan/dji-to-municipality"),
    ("organisation", "Amsterdam", "an OIN of 20 digits (0-9) is expected"),
    ("counterparty", "٠" * 20, "an OIN of 20 digits"),
    ("subject_id", "SUB-" + "A" * 32, "sub- and 32 hexadecimal digits"),
    ("message_id", "0F9E4C1A-6B2D-4E8F-9A31-7C5D2E8B4A10", "a UUID in lower case"),
    ("trace_id", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "32 hexadecimal digits"),
    ("since", "2026-12-31", "RFC 3339"),
    ("until", datetime(2026, 11, 1), "with an offset"),
    ("activity", 7, "text is expected"),
])
def test_a_bad_value_is_refused_naming_the_parameter_and_what_it_accepts_never_the_value(name, value, says):
    detail = refused(**{name: value})
    assert detail.startswith(f"1 invalid field(s): query:{queries.PARAMETERS[name]}: ") and says in detail
    assert not isinstance(value, str) or value.strip() not in detail


@pytest.mark.parametrize("bsn", ["999990019", "99999001", "999 99 0019", "999.99.0019", "９９９９９００１９"])
def test_a_bsn_in_the_subject_filter_points_to_the_subject_report(bsn):
    detail = refused(subject_id=bsn)
    assert "use the subject report, POST /api/v1/audit/subject-report" in detail and bsn not in detail
    assert "999990019" not in detail


def test_every_problem_at_once_and_an_empty_period():
    detail = refused(activity="x", outcome="y", trace_id="z")
    assert detail.startswith("3 invalid field(s): query:activity: ") and "; query:outcome: " in detail and "; query:traceId: " in detail
    assert "query:until: lies at or before since" in refused(since="2026-11-01T00:00:00Z", until="2026-11-01T01:00:00+01:00")


def test_the_vocabularies_come_from_the_catalogue_and_the_contracts_and_the_formats_match_the_parameters():
    catalogue = queries.default_catalogue()
    words = queries.vocabularies(catalogue)
    assert set(words["purpose"]) == set(catalogue.purposes) and set(words["legal_basis"]) == set(catalogue.legal_bases)
    assert set(words["rule"]) == {r.id for r in catalogue.rules} and words["outcome"] == ("allow", "redact", "deny")
    assert queries.FORMATS["organisation"][0] == queries.FORMATS["counterparty"][0] == OIN_PATTERN
    assert queries.FORMATS["subject_id"][0] == SUBJECT_PATTERN and queries.FORMATS["message_id"][0] == UUID_PATTERN
    assert queries.filter_schema("outcome") == {"enum": ["allow", "redact", "deny"]}
    assert queries.filter_schema("since") == {"format": "date-time"}
    assert [o.value for o in ExchangeOutcome] == ["allow", "redact", "deny"]


def _record(**overrides) -> AuditRecord:
    values = dict(seq=7, id="r-7", trace_id="t", activity="deliver", actor_oin="00000001001234567000", counterparty_oin=OIN,
                  token_id=None, scope=None, subject_id=SUBJECT, message_id=None, purpose="aftercare", legal_basis="pm-20d-2",
                  rule="dr-plan/dji-to-municipality", outcome="allow", detail="=cmd", recorded_at=datetime(2026, 11, 23, tzinfo=timezone.utc),
                  prev_hash="0" * 64, hash="1" * 64)
    return AuditRecord(**(values | overrides))


def test_the_export_row_has_the_keys_of_the_records_json_with_names_beside_the_oins():
    names = {"00000001001234567000": "PI Vught", OIN: "Gemeente Amsterdam (nazorg)"}
    view = record_view(_record(), names)
    keys = list(view.model_dump(by_alias=True))
    row = export_row(_record(), names)
    assert list(row) == list(EXPORT_COLUMNS) and set(EXPORT_COLUMNS) == set(keys)
    assert list(EXPORT_COLUMNS[:3]) == ["seq", "id", "recordedAt"]
    assert keys[keys.index("actorOin") + 1] == "actorName" and keys[keys.index("counterpartyOin") + 1] == "counterpartyName"
    assert (row["actorName"], row["counterpartyName"], row["recordedAt"]) == (
        "PI Vught", "Gemeente Amsterdam (nazorg)", "2026-11-23T00:00:00+00:00")
    assert export_row(view, names) == row == export_row(view)  # a view exports the same, with the names it carries
    alone = record_view(_record(counterparty_oin=None))
    assert (alone.actor_name, alone.counterparty_name) == (None, None)
    assert set(AuditRecordView.model_fields) >= {"actor_name", "counterparty_name"}


def test_the_csv_guard_bom_and_separators():
    import io

    assert queries.csv_cell("=cmd") == "'=cmd" and queries.csv_cell("plain") == "plain" and queries.csv_cell(7) == 7
    buf = io.StringIO()
    queries.csv_writer(buf, "semicolon").writerow({k: queries.csv_cell(v) for k, v in export_row(_record()).items()})
    line = buf.getvalue()
    assert line.endswith("\r\n") and line.count(";") == len(EXPORT_COLUMNS) - 1 and ";'=cmd;" in line
    assert queries.BOM.encode() == b"\xef\xbb\xbf" and queries.SEPARATORS == {"comma": ",", "semicolon": ";"}


@pytest.mark.parametrize("period,bucket,label,start,days", [
    ("month", "2026-11", "2026-11", "2026-11-01", 30),
    ("month", "2026-12", "2026-12", "2026-12-01", 31),
    ("week", "2026-11-23", "2026-W48", "2026-11-23", 7),
    ("week", "2026-12-28", "2026-W53", "2026-12-28", 7),
    ("day", "2026-02-28", "2026-02-28", "2026-02-28", 1),
])
def test_a_period_bucket_becomes_its_label_and_utc_range(period, bucket, label, start, days):
    got, since, until = aggregate._period(period, bucket)
    assert got == label and since == datetime.fromisoformat(start + "T00:00:00+00:00") and until - since == timedelta(days=days)
