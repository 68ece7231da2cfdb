"""Wire models of the public API (camelCase JSON, PascalCase schema names)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from contracts.common import Bsn, Skn

Purpose = Literal["reintegration", "aftercare", "supervision", "risk-management", "public-order"]


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class SendMessageRequest(Wire):
    type: str = Field(description="message type, e.g. dr-plan", examples=["dr-plan"])
    version: int = Field(1, ge=1, description="contract version")
    purpose: str = Field(description="the purpose of this exchange", examples=["reintegration"])
    recipients: Annotated[list[Annotated[str, Field(max_length=40)]], Field(min_length=1, max_length=20)] = Field(
        description="OIN, 'municipality:<CBS code>' or 'mayor:<CBS code>'", examples=[["municipality:0363"]]
    )
    payload: dict[str, Any] = Field(description="the message itself, as its contract says (contracts/schemas/v<version>/<type>.json)")


class Redaction(Wire):
    section: str
    category: str
    reason: Literal["consent-required", "not-permitted"]
    rule: str | None


class ReleasedSection(Wire):
    """A section that reached the recipient, and the legal basis that let it through."""

    section: str
    category: str
    legal_basis: str = Field(description="pbw-18a, pm-20d-2, pm-20d-3, pm-20d-4, pbw-18b or consent")
    consents: list[str] = Field([], description="for basis consent: the consents that opened it")


class DeliveryStatus(Wire):
    recipient_oin: str
    recipient_kind: str
    status: str
    decision: Literal["allow", "allow-with-redaction", "deny"]
    rule: str | None
    legal_basis: str | None
    redactions: list[Redaction] = []
    released_sections: list[ReleasedSection] = Field([], description="per section that passed, the basis that let it through")
    delivered_at: datetime
    first_read_at: datetime | None = None
    acknowledgement: str | None = None
    acknowledgement_reason: str | None = None
    acknowledged_at: datetime | None = None
    replied_at: datetime | None = None
    purged_at: datetime | None = None


class MessageReceipt(Wire):
    id: str
    type: str
    version: int
    purpose: str
    subject_id: str
    created_at: datetime
    deliveries: list[DeliveryStatus]


class MessageView(Wire):
    id: str
    type: str
    version: int
    sender_oin: str
    subject_id: str
    purpose: str = Field(description="the purpose it was sent for")
    read_purpose: str = Field(description="the purpose it is read for now")
    legal_basis: str | None
    rule: str | None
    created_at: datetime
    due_date: date | None = None
    in_reply_to: str | None = None
    redactions: list[Redaction] = []
    released_sections: list[ReleasedSection] = Field([], description="per section that passed, the basis that let it through")
    payload: dict[str, Any]


class MessageSummary(Wire):
    id: str
    type: str
    version: int
    sender_oin: str
    subject_id: str
    purpose: str
    created_at: datetime
    due_date: date | None = None
    in_reply_to: str | None = None
    deliveries: list[DeliveryStatus] = Field(description="for the sender: every recipient; for a recipient: its own")


class MessagePage(Wire):
    items: list[MessageSummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null at the end")


class AcknowledgementRequest(Wire):
    status: Literal["received", "accepted", "rejected"]
    reason: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


class SubjectIdentifiers(Wire):
    """A person's identifiers: only ever in a request body, never in a URL."""

    bsn: Bsn | None = None
    skn: Skn | None = None
