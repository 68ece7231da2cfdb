"""The subject report (AVG art. 15 inzage): every processing about one person, as JSON or HTML."""
from __future__ import annotations

import html
from datetime import datetime

from gateway.db.models import AuditRecord
from gateway.schemas import Wire

ACTIVITY_TEXT = {
    "send": "sent a message about you", "deliver": "delivered a message about you", "read": "read information about you",
    "acknowledge": "acknowledged a message about you", "deny": "was refused information about you",
    "redact": "had parts withheld", "consent-record": "recorded your consent", "consent-withdraw": "recorded the withdrawal of your consent",
    "export": "exported audit records", "audit-query": "looked up the processing log", "purge": "deleted information about you",
    "competence": "recorded which municipality is responsible for your return",
    "disclose": "received a part that your consent opened",
}


class AuditRecordView(Wire):
    seq: int
    id: str
    recorded_at: datetime
    trace_id: str
    activity: str
    actor_oin: str
    counterparty_oin: str | None
    token_id: str | None
    scope: str | None
    subject_id: str | None
    message_id: str | None
    purpose: str | None
    legal_basis: str | None
    rule: str | None
    outcome: str
    detail: str | None
    prev_hash: str
    hash: str


class AuditPage(Wire):
    items: list[AuditRecordView]
    next_cursor: str | None


class SubjectReport(Wire):
    subject_id: str | None
    generated_at: datetime
    count: int
    records: list[AuditRecordView]


def record_view(r: AuditRecord) -> AuditRecordView:
    return AuditRecordView.model_validate(r, from_attributes=True)


def render_html(report: SubjectReport, names: dict[str, str]) -> str:
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
            r.recorded_at.strftime("%Y-%m-%d %H:%M UTC"), names.get(r.actor_oin, r.actor_oin),
            ACTIVITY_TEXT.get(r.activity, r.activity), names.get(r.counterparty_oin or "", r.counterparty_oin or ""),
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
