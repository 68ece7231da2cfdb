"""screening-result: the detainee's needs on the basic conditions and social network (10-day norm)."""
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator

from contracts.common import Contract, DataCategory, MessageContract, Text, not_before, section


class Instrument(StrEnum):
    REFLECTOR = "reflector"  # short self-assessment at intake
    LANGUAGE_TEST = "language-test"
    SCIL = "scil"  # screener for (mild) intellectual disability


class InstrumentResult(Contract):
    instrument: Instrument
    date: date
    conclusion: Text | None = None


class NeedsOnCondition(Contract):
    situation: Text | None = None
    needs: Annotated[list[Text], Field(max_length=20)] = []


class BasicConditionNeeds(Contract):
    identity_document: NeedsOnCondition | None = None
    housing: NeedsOnCondition | None = None
    work_income: NeedsOnCondition | None = None
    debts: NeedsOnCondition | None = None
    care: NeedsOnCondition | None = None


class ScreeningResultV1(MessageContract):
    MESSAGE_TYPE = "screening-result"
    arrival_date: date
    screening_date: date
    instruments: Annotated[list[InstrumentResult], Field(max_length=10)] = []
    basic_conditions: BasicConditionNeeds | None = section(
        DataCategory.BASIC_CONDITIONS, "Needs on the five basic conditions (basisvoorwaarden)"
    )
    social_network: NeedsOnCondition | None = section(
        DataCategory.SOCIAL_NETWORK, "Social network, family, children left at home"
    )

    _screened_after_arrival = field_validator("screening_date")(
        not_before("arrival_date", "the screening date", "arrival date")
    )
