"""Building blocks shared by every message contract: identifiers, subject, sections, text limits."""
from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

SECTION_CATEGORY_KEY = "x-data-category"


class DataCategory(StrEnum):
    """What kind of personal data a section carries; the policy catalogue decides per category."""

    BASIC_CONDITIONS = "basic-conditions"  # the five basisvoorwaarden (art. 18a lid 4 Pbw)
    SOCIAL_NETWORK = "social-network"  # family, children left at home, network
    RESTORATIVE_WORK = "restorative-work"  # herstel, victim awareness
    OFFENCE_RELATED = "offence-related"  # behaviour and offence-related goals
    RISK_SUMMARY = "risk-summary"
    RISK_DETAIL = "risk-detail"
    TRIAGE = "triage"  # SOM triage between DJI and 3RO
    PROBATION_ADVICE = "probation-advice"


def bsn_is_valid(value: str) -> bool:
    """The BSN 11-test: weights 9..2 and -1 over nine digits, sum divisible by 11."""
    if not re.fullmatch(r"\d{9}", value):
        return False
    total = sum(int(d) * w for d, w in zip(value, (9, 8, 7, 6, 5, 4, 3, 2, -1)))
    return total % 11 == 0 and value != "000000000"


def _check_bsn(value: str) -> str:
    if not re.fullmatch(r"\d{9}", value):
        raise ValueError("a BSN is exactly 9 digits")
    if not bsn_is_valid(value):
        raise ValueError("BSN fails the 11-test (check digit is wrong)")
    return value


def _check_oin(value: str) -> str:
    if not re.fullmatch(r"\d{20}", value):
        raise ValueError("an OIN is exactly 20 digits")
    return value


def _check_cbs(value: str) -> str:
    if not re.fullmatch(r"\d{4}", value):
        raise ValueError("a CBS municipality code is exactly 4 digits, e.g. 0363")
    return value


Bsn = Annotated[str, AfterValidator(_check_bsn), Field(description="Burgerservicenummer, 9 digits, 11-test valid", examples=["999990019"])]
Skn = Annotated[str, StringConstraints(pattern=r"^\d{8,12}$"), Field(description="Strafrechtketennummer (justice chain person number)")]
Oin = Annotated[str, AfterValidator(_check_oin), Field(description="Organisatie-identificatienummer, 20 digits")]
CbsCode = Annotated[str, AfterValidator(_check_cbs), Field(description="CBS municipality code, 4 digits")]
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

    bsn: Bsn | None = None
    skn: Skn | None = None
    name: PersonName | None = None
    date_of_birth: date | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> "Subject":
        if not self.bsn and not self.skn:
            raise ValueError("a subject needs at least one identifier: bsn or skn")
        return self


def section(category: DataCategory, description: str, **kwargs: Any) -> Any:
    """Declare a field as a section carrying personal data of ``category`` (read by consent/)."""
    return Field(None, description=description, json_schema_extra={SECTION_CATEGORY_KEY: category.value}, **kwargs)


class MessageContract(Contract):
    """Base of the eleven message contracts. The three hooks tell the gateway what it must act on
    without knowing the model: a release date (retention), a due date and a reply link."""

    MESSAGE_TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    subject: Subject

    def announced_release_date(self) -> date | None:
        return None

    def answer_due(self) -> date | None:
        return None

    def replies_to(self) -> str | None:
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


class PerBasicCondition(Contract):
    """One entry per basic condition (basisvoorwaarde); all optional."""

    identity_document: ConditionState | None = Field(None, alias="identityDocument")
    housing: ConditionState | None = None
    work_income: ConditionState | None = Field(None, alias="workIncome")
    debts: ConditionState | None = None
    care: ConditionState | None = None
