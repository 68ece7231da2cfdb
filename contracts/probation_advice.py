"""probation-advice: 3RO advice reports to the prison (and to a municipality only with consent).
v2 adds the basic conditions, the social network and health as sections of their own, so policy can pass
what a municipality needs (Pm 20d lid 2) and withhold the rest."""
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from contracts.common import (
    Contract, DataCategory, MessageContract, NeedsOnCondition, Oin, PerBasicCondition, ShortText, Text, section,
)


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


class HealthNotes(Contract):
    """Health content of an advice, kept apart so it can be withheld on its own (never to a college)."""

    addiction: Text | None = None
    psychiatric_history: Text | None = None
    treatment: Text | None = None


class ProbationAdviceV2(ProbationAdviceV1):
    VERSION = 2
    basic_conditions: PerBasicCondition | None = section(
        DataCategory.BASIC_CONDITIONS, "The advice on the five basic conditions (Pm 20d lid 2)"
    )
    social_network: NeedsOnCondition | None = section(
        DataCategory.SOCIAL_NETWORK, "Social network, including help requests for family (Pm 20d lid 2 h)"
    )
    health: HealthNotes | None = section(DataCategory.HEALTH, "Addiction treatment, psychiatric history")
