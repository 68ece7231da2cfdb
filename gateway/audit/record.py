"""Everything that is shaped like an audit record, derived from its one declaration
(``gateway.db.models.AuditRecordFields``): what a caller states, what the chain adds and hashes, the
export columns, the API view and the audit event. Adding a field is one line in the table model (and a
migration); the rest follows. The activities are declared here, each with what it means to the person."""
from __future__ import annotations

from dataclasses import field, make_dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import create_model
from pydantic.alias_generators import to_camel

from gateway.db.models import AuditRecord, AuditRecordFields
from gateway.schemas import Wire

FIELDS: tuple[str, ...] = tuple(AuditRecordFields.model_fields)
LINK_FIELDS = ("prev_hash", "hash")
CHAINED_FIELDS = tuple(f for f in FIELDS if f not in LINK_FIELDS)  # hashed, in this order
SET_BY_CHAIN = ("seq", "id", "trace_id", "token_id", "scope", "recorded_at", *LINK_FIELDS)
STATED_FIELDS = tuple(f for f in FIELDS if f not in SET_BY_CHAIN)  # what a unit of work says
REQUIRED_STATED = tuple(f for f in STATED_FIELDS if AuditRecordFields.model_fields[f].is_required())
_LEADING = ("seq", "id", "recorded_at")  # an auditor reads which record and when first
EXPORT_COLUMNS = _LEADING + tuple(f for f in FIELDS if f not in _LEADING)
# the audit stream is pseudonymous and carries no free text: the detail and the token stay in the log
NOT_IN_EVENT = ("token_id", "scope", "detail", "prev_hash")
EVENT_NAMES = {"id": "auditId"}


class Activity(StrEnum):
    """What was done with personal data; the text is how the subject report (AVG art. 15) says it."""

    SEND = "send"
    DELIVER = "deliver"
    READ = "read"
    ACKNOWLEDGE = "acknowledge"
    DENY = "deny"
    REDACT = "redact"
    DISCLOSE = "disclose"
    COMPETENCE = "competence"
    CONSENT_RECORD = "consent-record"
    CONSENT_WITHDRAW = "consent-withdraw"
    PURGE = "purge"
    AUDIT_QUERY = "audit-query"
    EXPORT = "export"
    DEADLINE = "deadline"
    TRAJECTORY_QUERY = "trajectory-query"
    TRIAGE = "triage"
    TRIAGE_QUERY = "triage-query"

    @property
    def text(self) -> str:
        return _ACTIVITY_TEXT[self]


_ACTIVITY_TEXT = {
    Activity.SEND: "sent a message about you", Activity.DELIVER: "delivered a message about you",
    Activity.READ: "read information about you", Activity.ACKNOWLEDGE: "acknowledged a message about you",
    Activity.DENY: "was refused information about you", Activity.REDACT: "had parts withheld",
    Activity.DISCLOSE: "received a part that your consent opened",
    Activity.COMPETENCE: "recorded which municipality is responsible for your return",
    Activity.CONSENT_RECORD: "recorded your consent", Activity.CONSENT_WITHDRAW: "recorded the withdrawal of your consent",
    Activity.PURGE: "deleted information about you", Activity.AUDIT_QUERY: "looked up the processing log",
    Activity.EXPORT: "exported audit records",
    Activity.DEADLINE: "recorded that a step of your re-integration plan was not taken in time",
    Activity.TRAJECTORY_QUERY: "looked up the deadlines of your stay",
    Activity.TRIAGE: "assessed whether probation should be involved during your detention (SOM triage)",
    Activity.TRIAGE_QUERY: "looked up the assessment of whether probation should be involved (SOM triage)",
}

# What a caller states about one processing; the chain adds seq, id, time, token and hashes.
AuditEntry = make_dataclass(
    "AuditEntry",
    [(name, AuditRecordFields.model_fields[name].annotation) for name in REQUIRED_STATED]
    + [(name, AuditRecordFields.model_fields[name].annotation, field(default=None))
       for name in STATED_FIELDS if name not in REQUIRED_STATED],
    frozen=True,
)

AuditRecordView = create_model(
    "AuditRecordView", __base__=Wire,
    **{name: (info.annotation, ...) for name, info in AuditRecordFields.model_fields.items()},
)


def record_view(record: AuditRecord) -> Any:
    return AuditRecordView.model_validate(record, from_attributes=True)


def export_row(record: AuditRecord) -> dict:
    """One record as an export row (CSV or JSON line), times in RFC 3339."""
    return {c: _plain(getattr(record, c)) for c in EXPORT_COLUMNS}


_EVENT_KEYS = {name: to_camel(EVENT_NAMES.get(name, name)) for name in FIELDS if name not in NOT_IN_EVENT}


def event_data(row: dict) -> dict:
    """The ``audit.recorded`` event of one stored row: the pseudonymous record, no free text."""
    data = {key: _plain(row[name]) for name, key in _EVENT_KEYS.items()}
    data["parties"] = sorted({p for p in (row["actor_oin"], row["counterparty_oin"]) if p})
    return data


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
