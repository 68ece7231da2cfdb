"""probation-advice: 3RO advice reports to the prison (and to a municipality only with consent)."""
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from contracts.common import Contract, DataCategory, MessageContract, Oin, ShortText, Text, section


class AdviceKind(StrEnum):
    DR_ADVICE = "dr-advice"
    PLACEMENT_ADVICE = "placement-advice"
    CONDITIONAL_RELEASE_ADVICE = "conditional-release-advice"


class Advice(Contract):
    summary: Text
    advised_interventions: Annotated[list[ShortText], Field(max_length=20)] = []
    special_conditions: Annotated[list[ShortText], Field(max_length=20)] = []


class ProbationAdviceV1(MessageContract):
    MESSAGE_TYPE = "probation-advice"
    advice_kind: AdviceKind
    report_date: date
    probation_organisation_oin: Oin
    advice: Advice | None = section(DataCategory.PROBATION_ADVICE, "The advice report itself")
