"""The public API's wire base (camelCase JSON, PascalCase schema names, no control characters) and the
message resource's wire models. Each other resource keeps its wire models with its service module:
organisations in ``gateway/registry.py``, consents in ``gateway/consents.py``, subscriptions in
``gateway/webhooks/subscriptions.py``, audit records in ``gateway/audit/record.py`` and ``report.py``."""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from contracts.common import Bsn, Skn
from gateway.statuses import Acknowledgement, DeliveryState

CONTROL_CHARACTERS_ERROR = "control_characters"
CONTROL_CHARACTER_RANGES = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"  # tab, LF and CR are text; the OpenAPI patterns use these too
CONTROL_CHARACTERS = re.compile(f"[{CONTROL_CHARACTER_RANGES}]")


# What a control character becomes in json.dumps(…, ensure_ascii=False): \u0000-\u001f (or \b, \f; tab, LF and
# CR become \t, \n, \r) and DEL as it is. A literal backslash before such text also matches: then the walk decides.
_SCREEN = re.compile(r"\\u00[01][0-9a-fA-F]|\\[bf]|\x7f")


def _NOT_TEXT(_value: Any) -> None:
    return None


def _may_hold_control_characters(value: Any) -> bool:
    """A screen at C speed before the walk: most bodies hold none, and the walk costs a call per value."""
    try:  # a nested model was checked when it was made, and no other non-JSON value (a time, a UUID) is text
        return _SCREEN.search(json.dumps(value, ensure_ascii=False, default=_NOT_TEXT)) is not None
    except (TypeError, ValueError):  # not plain JSON data: let the walk decide
        return True


def _control_characters(value: Any, path: str = "") -> str | None:
    """The JSON pointer of the first string holding a control character (NUL …), if any. PostgreSQL
    refuses NUL in text, so such a request would fail late; it is refused up front on every backend."""
    if isinstance(value, str):
        return path or "/" if CONTROL_CHARACTERS.search(value) else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and CONTROL_CHARACTERS.search(key):
            return f"{path}/{key!r}"
        found = _control_characters(item, f"{path}/{key}")
        if found:
            return found
    return None


# RFC 3339: a full date, a time and an offset ("Z" or ±hh:mm); no bare numbers, no naive times
_RFC3339 = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("an RFC 3339 date-time with an offset, e.g. 2026-11-01T10:00:00+01:00")
    return value


def _in_utc_range(value: datetime) -> datetime:
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("the date-time lies outside the range of UTC years 1-9999") from None


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_in_utc_range)]
_ISO_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def _iso_day(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DAY.match(value):
        raise ValueError("a calendar date as YYYY-MM-DD, e.g. 2026-12-07")
    return value


# a calendar day, ISO 8601 only (no timestamps, no times)
Day = Annotated[date, BeforeValidator(_iso_day), Field(json_schema_extra={"pattern": _ISO_DAY.pattern})]


class Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Inbound(Wire):
    """A request body. Its text is checked for control characters as it comes in; answers (the other Wire
    models) are built from stored rows by the gateway itself and skip the check (an inbox page builds
    hundreds). tests/integration/test_hardening.py sends NUL to every body; test_api_rules checks every
    route's body is an Inbound."""

    @model_validator(mode="before")
    @classmethod
    def _no_control_characters(cls, data: Any) -> Any:
        where = _control_characters(data) if _may_hold_control_characters(data) else None
        if where:  # the problem's pointer is the model's place plus ``where`` (gateway/app.py)
            raise PydanticCustomError(CONTROL_CHARACTERS_ERROR, "control characters (such as NUL) are not allowed",
                                      {"pointer": "" if where == "/" else where})
        return data


SectionPointer = Annotated[str, Field(max_length=200, pattern=r"^(/[A-Za-z0-9_~-]+){1,3}$",
                                      description="a section's JSON Pointer (RFC 6901), e.g. /sections/housing")]
Base64Url = Annotated[str, Field(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


class MessageSignature(Inbound):
    """The sender's signature over the payload (docs/signatures.md; brb_client.proof.sign_payload makes it)."""

    jws: str = Field(max_length=4000, pattern=r"^[A-Za-z0-9_-]+\.\.[A-Za-z0-9_-]+$",
                     description="compact JWS with a detached payload (<protected header>..<signature>) over the RFC 8785 "
                                 "canonical JSON of the payload's digest form; header alg ES256, RS256 or EdDSA, kid one "
                                 "of your registered keys, typ brb-payload+jws")
    salts: Annotated[dict[SectionPointer, Base64Url], Field(max_length=50)] = Field(
        json_schema_extra={"additionalProperties": False}, description="per section present in the payload (JSON Pointer), the random salt (at least 128 bits, base64url) "
                    "its digest was made with")


class SendMessageRequest(Inbound):
    type: str = Field(max_length=40, pattern=r"^[a-z][a-z0-9-]*$", description="message type, e.g. dr-plan", examples=["dr-plan"])
    version: int = Field(1, ge=1, le=1000, description="contract version")
    purpose: str = Field(max_length=40, pattern=r"^[a-z][a-z0-9-]*$", description="the purpose of this exchange",
                         examples=["reintegration"])
    recipients: Annotated[list[Annotated[str, Field(max_length=40)]], Field(min_length=1, max_length=20)] = Field(
        description="OIN, 'municipality:<CBS code>' or 'mayor:<CBS code>'", examples=[["municipality:0363"]]
    )
    payload: dict[str, Any] = Field(description="the message itself, as its contract says (contracts/schemas/v<version>/<type>.json)")
    signature: MessageSignature | None = Field(None, description=(
        "your signature over the payload, checked against your registered key before anything is stored; "
        "optional while the gateway's BRB_REQUIRE_SIGNED_MESSAGES is off"))


class PayloadProof(Wire):
    """What a reader needs to check its copy of the payload against the sender's signature
    (brb_client.proof.verify_payload): the salts of the sections it got, the digests of those withheld."""

    payload_digest: str = Field(description="sha-256:<base64url> of the canonical JSON of the payload's digest form")
    signature: str | None = Field(description="the sender's detached JWS over the digest form; null: the sender did not sign")
    salts: dict[str, str] = Field(description="per section you got (JSON Pointer), its salt")
    withheld: dict[str, str] = Field(description="per section withheld from you (JSON Pointer), its salted digest")


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
    status: DeliveryState
    decision: Literal["allow", "allow-with-redaction", "deny"]
    rule: str | None
    legal_basis: str | None
    redactions: list[Redaction] = []
    released_sections: list[ReleasedSection] = Field([], description="per section that passed, the basis that let it through")
    delivered_at: datetime
    first_read_at: datetime | None = None
    acknowledgement: Acknowledgement | None = None
    acknowledgement_reason: str | None = None
    acknowledged_at: datetime | None = None
    replied_at: datetime | None = None
    purged_at: datetime | None = None


class MessageHeader(Wire):
    """What every shape of a message shows (receipt, list item, read view)."""

    id: str
    type: str
    version: int
    subject_id: str
    purpose: str = Field(description="the purpose it was sent for")
    created_at: datetime


class MessageReceipt(MessageHeader):
    deliveries: list[DeliveryStatus]
    payload_digest: str | None = Field(None, description="sha-256:<base64url> of the canonical JSON of the payload's digest form")
    signature_digest: str | None = Field(None, description="sha-256:<base64url> of your signature; null: unsigned")
    signed_receipt: str | None = Field(None, description=(
        "this receipt as a compact JWS by the gateway's key (GET /.well-known/jwks.json): message id, payload digest, "
        "recipients, decisions and time (brb_client.receipts.verify_receipt)"))


class _Exchanged(MessageHeader):
    sender_oin: str
    due_date: date | None = None
    in_reply_to: str | None = None


class MessageView(_Exchanged):
    read_purpose: str = Field(description="the purpose it is read for now")
    legal_basis: str | None
    rule: str | None
    redactions: list[Redaction] = []
    released_sections: list[ReleasedSection] = Field([], description="per section that passed, the basis that let it through")
    payload: dict[str, Any]
    proof: PayloadProof | None = Field(None, description="to check the payload against the sender's signature; "
                                                         "null for a message sent before proofs")


class MessageSummary(_Exchanged):
    deliveries: list[DeliveryStatus] = Field(description="for the sender: every recipient; for a recipient: its own")


CURSOR_DESCRIPTION = ("where to go on from: pass as ?cursor= for the next page, or store it and ask again later for what "
                      "arrived since (also given on the last page). Null only for an empty first page of a list that has no start.")
HAS_MORE_DESCRIPTION = "true when more items follow now; false on the last page (the cursor still resumes there later)"


class Paged(Wire):
    """What every cursor-paged list answers beside its ``items`` (gateway/db/paging.py)."""

    next_cursor: str | None = Field(description=CURSOR_DESCRIPTION)
    has_more: bool = Field(description=HAS_MORE_DESCRIPTION)

    @classmethod
    def of(cls, page, items: list):
        """The answer for one ``paging.Page``, its rows turned into ``items``."""
        return cls(items=items, next_cursor=page.next_cursor, has_more=page.has_more)


class MessagePage(Paged):
    items: list[MessageSummary]


class AcknowledgementRequest(Inbound):
    status: Acknowledgement
    reason: Annotated[str, Field(min_length=1, max_length=2000)] | None = None


class SubjectIdentifiers(Inbound):
    """A person's identifiers: only ever in a request body, never in a URL. At least one of the two."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["bsn"]}, {"required": ["skn"]}]})
    bsn: Bsn | None = None
    skn: Skn | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> "SubjectIdentifiers":
        if not (self.bsn or self.skn):
            raise ValueError("give a bsn or an skn")
        return self


class AcknowledgementReceipt(DeliveryStatus):
    """The delivery after your acknowledgement, with the gateway's signed receipt of it."""

    signed_receipt: str = Field(
        pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
        description="the gateway's receipt of this acknowledgement: a compact JWS (ES256, typ brb-receipt+jwt) by the "
        "gateway's own key, published as a JWK Set at /.well-known/jwks.json. Its claims: receipt "
        "'acknowledgement', messageId, recipient, sender, status, acknowledgedAt, payloadDigest (null for a "
        "message sent before payload digests were kept), iss, iat. Keep it: it proves to a third party what "
        "the gateway recorded, without its database (docs/signatures.md)")
