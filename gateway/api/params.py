"""One validation layer for what callers put in paths and query strings: identifiers, lengths,
date-times and integers. Every route takes its parameters from here, so a bad value is a 422 with a
pointer (never a 500 from the database), and the OpenAPI document declares what the server enforces.
The audit filters (``audit_filter_param``) are the one exception: taken as text and checked by
``gateway.audit.queries.parse_filter``, which the audit web pages use too, a bad value is a 400
``invalid-filter`` naming what the parameter accepts; the document declares the same vocabulary or format.

Digits are ASCII only (``[0-9]``, never ``\\d``, which also matches fullwidth and Arabic-Indic digits);
strings never carry control characters (PostgreSQL refuses NUL); integers stay inside the column type."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Path, Query

from gateway.db.dialect import MAX_BIGINT, MAX_INT  # noqa: F401 - the column ranges, declared once
from gateway.db.paging import MAX_CURSOR_LENGTH
from gateway.schemas import Instant

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
OIN_PATTERN = r"^[0-9]{20}$"
SUBJECT_PATTERN = r"^sub-[0-9a-f]{32}$"
SLUG_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"  # message types, purposes, statuses, activities
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"


MessageId = Annotated[str, Path(pattern=UUID_PATTERN, max_length=36, description="message id (UUID)")]
ConsentId = Annotated[str, Path(pattern=UUID_PATTERN, max_length=36, description="consent id (UUID)")]
SubscriptionId = Annotated[str, Path(pattern=UUID_PATTERN, max_length=36, description="subscription id (UUID)")]
DeadLetterId = Annotated[int, Path(ge=1, le=MAX_INT, description="dead letter id")]
OinPath = Annotated[str, Path(pattern=OIN_PATTERN, description="OIN, 20 digits")]
Kid = Annotated[str, Path(min_length=1, max_length=100, pattern=NO_CONTROL_CHARACTERS, description="key id")]

SubjectFilter = Annotated[str | None, Query(alias="subjectId", pattern=SUBJECT_PATTERN, description="subject pseudonym, never a BSN")]
SubjectParam = Annotated[str, Query(alias="subjectId", pattern=SUBJECT_PATTERN, description="subject pseudonym, never a BSN")]
OinFilter = Annotated[str | None, Query(pattern=OIN_PATTERN, description="OIN as actor or counterparty")]
MessageIdFilter = Annotated[str | None, Query(alias="messageId", pattern=UUID_PATTERN, max_length=36)]
Since = Annotated[Instant | None, Query(description="at or after (RFC 3339 with offset)")]
Until = Annotated[Instant | None, Query(description="before (RFC 3339 with offset)")]
Cursor = Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH, pattern=r"^[A-Za-z0-9_=-]*$", description="as given in nextCursor")]
Seq = Annotated[int, Query(alias="fromSeq", ge=1, le=MAX_BIGINT, description="audit record seq to start from")]


def audit_filter_param(field: str, description: str, values: Sequence[str] | None = None) -> Any:
    """The query parameter of the audit filter's ``field`` (gateway.audit.queries.AuditFilter), named in camelCase:
    text, checked by ``parse_filter`` (400 ``invalid-filter``), its enum (``values`` where a route accepts fewer
    than the vocabulary), pattern or format declared here."""
    from gateway.audit import queries

    schema = {"enum": list(values)} if values is not None else queries.filter_schema(field)
    return Query(alias=queries.PARAMETERS[field], description=description, json_schema_extra={
        "anyOf": [{"type": "string", **schema}, {"type": "null"}]})


def slug(description: str) -> Any:
    """A query parameter holding a catalogue word (type, purpose, status, activity)."""
    return Query(pattern=SLUG_PATTERN, max_length=40, description=description)
