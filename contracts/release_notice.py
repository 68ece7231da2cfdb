"""release-notice: release date, how certain it is, and what is arranged per basic condition.
An unexpected release (e.g. from remand by a judge's decision) is announced at once.
v2 may carry the art. 18b condition as the sender asserts it (for the mayor)."""
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator

from contracts.common import (
    AssertsRisk18b, CbsCode, Contract, DataCategory, MessageContract, PerBasicCondition, ShortText, not_before, section,
)


class ReleaseCertainty(StrEnum):
    PLANNED = "planned"
    PROVISIONAL = "provisional"
    UNEXPECTED = "unexpected"


class ReleaseType(StrEnum):
    END_OF_SENTENCE = "end-of-sentence"
    CONDITIONAL_RELEASE = "conditional-release"
    RELEASE_FROM_REMAND = "release-from-remand"
    SUSPENSION_OF_REMAND = "suspension-of-remand"
    TRANSFER_TO_CARE = "transfer-to-care"
    OTHER = "other"


class AftercareLead(StrEnum):
    PROBATION = "probation"
    MUNICIPALITY = "municipality"


class LegalFramework(Contract):
    """Whether a legal framework follows release; it decides who leads aftercare."""

    supervision: bool
    special_conditions: Annotated[list[ShortText], Field(max_length=20)] = []
    aftercare_lead: AftercareLead


class ReleaseNoticeV1(MessageContract):
    MESSAGE_TYPE = "release-notice"
    arrival_date: date | None = None
    expected_release_date: date
    certainty: ReleaseCertainty
    release_type: ReleaseType
    destination_municipality: CbsCode
    legal_framework: LegalFramework | None = None
    arrangements: PerBasicCondition | None = section(
        DataCategory.BASIC_CONDITIONS, "What is arranged per basic condition at release"
    )

    _release_after_arrival = field_validator("expected_release_date")(
        not_before("arrival_date", "the expected release date", "arrival date")
    )

    def announced_release_date(self) -> date | None:
        return self.expected_release_date

    def stated_municipalities(self) -> dict[str, str]:
        return {"intended": self.destination_municipality}

    def stay_arrival(self) -> date | None:
        return self.arrival_date


class ReleaseNoticeV2(AssertsRisk18b, ReleaseNoticeV1):
    """Version 2: may carry the sender's ``risk18b`` assertion (art. 18b Pbw)."""

    VERSION = 2
