"""screening-result: the detainee's needs on the basic conditions and social network (10-day norm).
v2 keeps help requests for family in the social network and moves children and family to a section of
their own; screening instruments are health data (SCIL screens for intellectual disability)."""
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator

from contracts.common import Contract, DataCategory, MessageContract, NeedsOnCondition, Text, not_before, section


class Instrument(StrEnum):
    REFLECTOR = "reflector"  # short self-assessment at intake
    LANGUAGE_TEST = "language-test"
    SCIL = "scil"  # screener for (mild) intellectual disability


class InstrumentResult(Contract):
    instrument: Instrument
    date: date
    conclusion: Text | None = None


class BasicConditionNeeds(Contract):
    identity_document: NeedsOnCondition | None = None
    housing: NeedsOnCondition | None = None
    work_income: NeedsOnCondition | None = None
    debts: NeedsOnCondition | None = None
    care: NeedsOnCondition | None = None


_INSTRUMENTS = "Screening instruments and their conclusions; health data (SCIL screens for intellectual disability)"


class ScreeningResultV1(MessageContract):
    """v1: ``socialNetwork`` mixes social network, family and children; they cannot be told apart, so it
    carries the stricter category children-family."""

    MESSAGE_TYPE = "screening-result"
    arrival_date: date
    screening_date: date
    # the default stays [] so the v1 wire is unchanged; an empty list does not count as a present section
    instruments: Annotated[list[InstrumentResult], Field(max_length=10)] = section(
        DataCategory.HEALTH, _INSTRUMENTS, default=[]
    )
    basic_conditions: BasicConditionNeeds | None = section(
        DataCategory.BASIC_CONDITIONS, "Needs on the five basic conditions (basisvoorwaarden)"
    )
    social_network: NeedsOnCondition | None = section(
        DataCategory.CHILDREN_FAMILY,
        "Social network, family, children left at home (v1 mixes them, so it is treated as children-family)",
    )

    _screened_after_arrival = field_validator("screening_date")(
        not_before("arrival_date", "the screening date", "arrival date")
    )

    def stay_arrival(self) -> date | None:
        return self.arrival_date


class ScreeningResultV2(ScreeningResultV1):
    VERSION = 2
    instruments: Annotated[list[InstrumentResult], Field(max_length=10)] | None = section(DataCategory.HEALTH, _INSTRUMENTS)
    social_network: NeedsOnCondition | None = section(
        DataCategory.SOCIAL_NETWORK, "Social network, including help requests for family (Pm 20d lid 2 h)"
    )
    children_family: NeedsOnCondition | None = section(
        DataCategory.CHILDREN_FAMILY, "Children and family beyond a help request, e.g. children left at home"
    )
