"""Everything that is shaped like an audit record, derived from its one declaration
(``gateway.db.models.AuditRecordFields``): what a caller states, what the chain adds and hashes, the
export columns, the API view and the audit event. Adding a field is one line in the table model (and a
migration); the rest follows. The activities are declared here, each with what it means to the person, and
the outcomes of an exchange decision an auditor filters and counts by (``ExchangeOutcome``).

The API view and the export rows carry, beside the two OINs, the organisations' names (``actorName``,
``counterpartyName``): looked up when the records are read, never stored in the record (nor hashed)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, make_dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field, create_model
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
# the organisation names, each right after the OIN it names (looked up, not stored: see the module docstring)
NAMED_OINS = {"actor_oin": "actor_name", "counterparty_oin": "counterparty_name"}
VIEW_FIELDS = tuple(n for f in FIELDS for n in (f, *([NAMED_OINS[f]] if f in NAMED_OINS else ())))
EXPORT_FIELDS = _LEADING + tuple(f for f in VIEW_FIELDS if f not in _LEADING)
EXPORT_COLUMNS = tuple(to_camel(f) for f in EXPORT_FIELDS)  # the CSV header and the JSON lines' keys: the API view's keys
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


# The records of an exchange decision (the policy catalogue's, at send and again at read): a recipient's
# delivery, a section withheld, a refusal. What the outcome filter and the aggregate look at.
EXCHANGE_ACTIVITIES = (Activity.DELIVER, Activity.REDACT, Activity.DENY)


class ExchangeOutcome(StrEnum):
    """The outcome of an exchange decision, as an auditor filters and counts by it (gateway/audit/queries.py
    maps it onto the records):

    - ``allow``: a ``deliver`` record with outcome ``allow`` (delivered whole);
    - ``redact``: a ``deliver`` record with outcome ``allow-with-redaction`` (delivered with sections withheld),
      and every ``redact`` record (one per withheld section, at send or at read);
    - ``deny``: every ``deny`` record (a recipient refused at send, or a read refused).

    Other records (``send``, ``read``, ``disclose``, the audit's own queries …) have no exchange outcome."""

    ALLOW = "allow"
    REDACT = "redact"
    DENY = "deny"


_ACTIVITY_TEXT = {
    Activity.SEND: "sent a message about you", Activity.DELIVER: "delivered a message about you",
    Activity.READ: "read information about you", Activity.ACKNOWLEDGE: "acknowledged a message about you",
    Activity.DENY: "was refused information about you", Activity.REDACT: "a part of the information about you was not shared",
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

_NAME_FIELDS = {
    "actor_name": (str | None, Field(description="the name of the actor's organisation (from the registry)")),
    "counterparty_name": (str | None, Field(description="the name of the counterparty's organisation (from the registry)")),
}
AuditRecordView = create_model(
    "AuditRecordView", __base__=Wire,
    **{name: _NAME_FIELDS[name] if name in _NAME_FIELDS else (AuditRecordFields.model_fields[name].annotation, ...)
       for name in VIEW_FIELDS},
)


def _names_of(record: Any, names: Mapping[str, str] | None) -> dict[str, str | None]:
    """The names of the record's organisations from ``names``; without it, those the record carries (a view)."""
    if names is None:
        return {name: getattr(record, name, None) for name in NAMED_OINS.values()}
    return {name: names.get(getattr(record, oin) or "") for oin, name in NAMED_OINS.items()}


def record_view(record: AuditRecord, names: Mapping[str, str] | None = None) -> Any:
    """The API view of one record; ``names`` (OIN -> organisation name) gives ``actorName`` and ``counterpartyName``."""
    values = {name: getattr(record, name) for name in FIELDS} | _names_of(record, names)
    return AuditRecordView.model_validate(values)


def export_row(record: Any, names: Mapping[str, str] | None = None) -> dict:
    """One record (a stored row or its view) as an export row (CSV or JSON line): the API view's keys
    (``EXPORT_COLUMNS``, camelCase), times in RFC 3339, the organisations' names from ``names``."""
    given = _names_of(record, names)
    return {column: _plain(given[name] if name in given else getattr(record, name))
            for name, column in zip(EXPORT_FIELDS, EXPORT_COLUMNS)}


_EVENT_KEYS = {name: to_camel(EVENT_NAMES.get(name, name)) for name in FIELDS if name not in NOT_IN_EVENT}


def event_data(row: dict) -> dict:
    """The ``audit.recorded`` event of one stored row: the pseudonymous record, no free text."""
    data = {key: _plain(row[name]) for name, key in _EVENT_KEYS.items()}
    data["parties"] = sorted({p for p in (row["actor_oin"], row["counterparty_oin"]) if p})
    return data


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
