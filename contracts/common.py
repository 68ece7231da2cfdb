"""Building blocks shared by every message contract: identifiers, subject, sections, text limits,
and the art. 18b Pbw block the sender asserts."""
from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

SECTION_CATEGORY_KEY = "x-data-category"


class DataCategory(StrEnum):
    """What kind of personal data a section carries; the policy catalogue decides per category."""

    BASIC_CONDITIONS = "basic-conditions"  # the five basisvoorwaarden (art. 18a lid 4 Pbw); care only as far as needed to organise it
    SOCIAL_NETWORK = "social-network"  # social network, including help requests for family (Pm 20d lid 2 h)
    # children and family beyond a help request (children left at home, youth-care history):
    # needs consent of the detainee or of the other parent with authority
    CHILDREN_FAMILY = "children-family"
    # health beyond what is needed to organise care (treatment, addiction, psychiatric history, screening
    # for intellectual disability): never to a municipality's college, never opened by consent
    HEALTH = "health"
    RESTORATIVE_WORK = "restorative-work"  # herstel, victim awareness
    OFFENCE_RELATED = "offence-related"  # behaviour and offence-related goals
    RISK_SUMMARY = "risk-summary"
    RISK_DETAIL = "risk-detail"
    TRIAGE = "triage"  # SOM triage between DJI and 3RO
    PROBATION_ADVICE = "probation-advice"


def bsn_is_valid(value: str) -> bool:
    """The BSN 11-test: weights 9..2 and -1 over nine digits, sum divisible by 11."""
    if not re.fullmatch(r"[0-9]{9}", value):
        return False
    total = sum(int(d) * w for d, w in zip(value, (9, 8, 7, 6, 5, 4, 3, 2, -1)))
    return total % 11 == 0 and value != "000000000"


def _check_bsn(value: str) -> str:
    if not re.fullmatch(r"[0-9]{9}", value):
        raise ValueError("a BSN is exactly 9 digits")
    if not bsn_is_valid(value):
        raise ValueError("BSN fails the 11-test (check digit is wrong)")
    return value


def _check_oin(value: str) -> str:
    if not re.fullmatch(r"[0-9]{20}", value):
        raise ValueError("an OIN is exactly 20 digits")
    return value


def _check_cbs(value: str) -> str:
    if not re.fullmatch(r"[0-9]{4}", value):
        raise ValueError("a CBS municipality code is exactly 4 digits, e.g. 0363")
    return value


Bsn = Annotated[str, AfterValidator(_check_bsn), Field(description="Burgerservicenummer, 9 digits, 11-test valid",
                                                       examples=["999990019"], json_schema_extra={"pattern": "^[0-9]{9}$"})]
Skn = Annotated[str, StringConstraints(pattern=r"^[0-9]{8,12}$"), Field(description="Strafrechtketennummer (justice chain person number)")]
Oin = Annotated[str, AfterValidator(_check_oin), Field(description="Organisatie-identificatienummer, 20 digits", json_schema_extra={"pattern": "^[0-9]{20}$"})]
CbsCode = Annotated[str, AfterValidator(_check_cbs), Field(description="CBS municipality code, 4 digits", json_schema_extra={"pattern": "^[0-9]{4}$"})]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000, strip_whitespace=True)]


class Contract(BaseModel):
    """Base of every contract model: camelCase on the wire, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True)


class PersonName(Contract):
    given_names: ShortText | None = None
    surname_prefix: Annotated[str, StringConstraints(max_length=20)] | None = None
    surname: ShortText


class Subject(Contract):
    """The detainee. At least one identifier; the gateway replaces it by a pseudonym everywhere but the payload."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": [f], "properties": {f: {"type": "string"}}} for f in ("bsn", "skn")]})

    bsn: Bsn | None = None
    skn: Skn | None = None
    name: PersonName | None = None
    date_of_birth: date | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> "Subject":
        if not self.bsn and not self.skn:
            raise ValueError("a subject needs at least one identifier: bsn or skn")
        return self


def section(category: DataCategory, description: str, *, default: Any = None, **kwargs: Any) -> Any:
    """Declare a field as a section carrying personal data of ``category`` (read by consent/)."""
    return Field(default, description=description, json_schema_extra={SECTION_CATEGORY_KEY: category.value}, **kwargs)


class OffenceKind(StrEnum):
    VIOLENT = "violent"
    SEXUAL = "sexual"


class Risk18b(Contract):
    """The sender's assertion of the art. 18b Pbw condition: a risk of a serious violent or sexual offence,
    and sharing is necessary for the safety of others. Asserted by a named official, so it can be checked."""

    offence_kind: OffenceKind
    justification: Text = Field(description="Why the risk exists and why sharing is necessary for the safety of others")
    asserted_by: ShortText = Field(description="The official or role who asserts the condition")
    asserted_at: AwareDatetime = Field(description="When it was asserted; a timezone is required")


class AssertsRisk18b(Contract):
    """Mixin for a message that may carry the art. 18b Pbw assertion. The block is risk data itself
    (category risk-summary), so it never reaches a college. Put it first among the bases."""

    risk18b: Risk18b | None = section(
        DataCategory.RISK_SUMMARY, "The art. 18b Pbw condition as the sender asserts it", alias="risk18b"
    )

    def risk_18b(self) -> Risk18b | None:
        return self.risk18b


class MessageContract(Contract):
    """Base of the eleven message contracts. The hooks tell the gateway what it must act on without
    knowing the model: a release date (retention), a due date, a reply link, the asserted art. 18b
    condition, the competent municipality the message states, and the arrival date of the stay."""

    MESSAGE_TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    # sections (by wire name) only one kind of organisation fills in, e.g. the casemanager's part of a SOM triage
    AUTHORS: ClassVar[dict[str, str]] = {}
    subject: Subject

    def announced_release_date(self) -> date | None:
        return None

    def answer_due(self) -> date | None:
        return None

    def replies_to(self) -> str | None:
        return None

    def risk_18b(self) -> Risk18b | None:
        """The art. 18b Pbw condition as asserted in this message, if it carries one."""
        return None

    def stated_municipalities(self) -> dict[str, str]:
        """What this message says about the competent municipality, as CBS codes: ``residence`` (before
        detention) and/or ``intended`` (after release); only the keys the message actually states."""
        return {}

    def stay_arrival(self) -> date | None:
        """The arrival date that identifies the prison stay, where the message states one."""
        return None


def not_before(other_field: str, label: str, other_label: str):
    """A field validator factory: this date may not lie before ``other_field`` (validated earlier)."""

    def check(value: date | None, info) -> date | None:
        other = info.data.get(other_field)
        if value is not None and other is not None and value < other:
            raise ValueError(f"{label} ({value.isoformat()}) lies before the {other_label} ({other.isoformat()})")
        return value

    return check


class ConditionStatus(StrEnum):
    ARRANGED = "arranged"
    IN_PROGRESS = "in-progress"
    NOT_ARRANGED = "not-arranged"
    NOT_NEEDED = "not-needed"
    UNKNOWN = "unknown"


class ConditionState(Contract):
    """Status of one basic condition with a short explanation."""

    status: ConditionStatus
    note: Text | None = None


class NeedsOnCondition(Contract):
    """The situation on one life area and the detainee's help requests (hulpvragen)."""

    situation: Text | None = None
    needs: Annotated[list[Text], Field(max_length=20)] = []


class PerBasicCondition(Contract):
    """One entry per basic condition (basisvoorwaarde); all optional."""

    identity_document: ConditionState | None = Field(None, alias="identityDocument")
    housing: ConditionState | None = None
    work_income: ConditionState | None = Field(None, alias="workIncome")
    debts: ConditionState | None = None
    care: ConditionState | None = None
