"""What the audit API answers: a page of records, the chain's verification, and the subject report
(AVG art. 15 inzage: every processing about one person, as JSON or as an HTML document to hand over)."""
from __future__ import annotations

import html
from datetime import datetime

from pydantic import Field

from gateway.audit.record import Activity, AuditRecordView
from gateway.schemas import Paged, Wire


class AuditPage(Paged):
    items: list[AuditRecordView]


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


class SubjectReport(Wire):
    subject_id: str | None
    generated_at: datetime
    count: int
    records: list[AuditRecordView]


def render_html(report: SubjectReport, names: dict[str, str]) -> str:
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            r.recorded_at.strftime("%Y-%m-%d %H:%M UTC"), names.get(r.actor_oin, r.actor_oin),
            _activity_text(r.activity), names.get(r.counterparty_oin or "", r.counterparty_oin or ""),
            r.purpose or "", r.legal_basis or "", r.outcome)) + "</tr>"
        for r in report.records
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Processing of your personal data</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:4px 8px}}</style></head>
<body><h1>Processing of your personal data</h1>
<p>Berichtenbox Re-integratie — overview under art. 15 AVG, generated {report.generated_at:%Y-%m-%d %H:%M} UTC.
{report.count} processing record(s).</p>
<table><thead><tr><th>When</th><th>Organisation</th><th>What</th><th>With</th><th>Purpose</th><th>Legal basis</th><th>Outcome</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""


def _activity_text(activity: str) -> str:
    return Activity(activity).text if activity in Activity._value2member_map_ else activity
