"""What the audit API answers: a page of records, the chain's verification, and the subject report
(AVG art. 15 inzage: every processing about one person, as JSON or as an HTML document to hand over).
The document the person reads is built from the ``SubjectReport`` by ``gateway/audit/citizen_report.py``
(Dutch or English, HTML, PDF or JSON)."""
from __future__ import annotations

from datetime import datetime

from pydantic import Field

from gateway.audit.chain import ChainBreak
from gateway.audit.record import AuditRecordView
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
    reason_code: ChainBreak | None = Field(None, description="what broke the chain, as a stable code (the reason "
                                           "says it in English with the numbers); absent when the chain is intact")
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
