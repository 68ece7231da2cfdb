"""risk-information (art. 18b Pbw): a summary level kept apart from the detail level, so policy can
pass the summary (mayor, municipality with consent) and withhold the full assessment.
v2 adds the art. 18b condition as the sender asserts it, so policy can check it was asserted."""
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from contracts.common import AssertsRisk18b, Contract, DataCategory, MessageContract, ShortText, Text, section


class RiskInstrument(StrEnum):
    RISC = "RISc"
    QUICKSCAN = "quickscan"
    OTHER = "other"


class RecidivismRisk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ConditionKind(StrEnum):
    CONTACT_BAN = "contact-ban"
    AREA_BAN = "area-ban"
    REPORTING_DUTY = "reporting-duty"
    ELECTRONIC_MONITORING = "electronic-monitoring"
    OTHER = "other"


class ActiveCondition(Contract):
    kind: ConditionKind
    description: ShortText | None = None


class RiskSummary(Contract):
    instrument: RiskInstrument
    assessment_date: date
    recidivism_risk: RecidivismRisk
    violence_risk: bool
    active_conditions: Annotated[list[ActiveCondition], Field(max_length=20)] = []


class CriminogenicFactor(Contract):
    factor: ShortText
    score: Annotated[int, Field(ge=0, le=10)] | None = None


class RiskDetail(Contract):
    criminogenic_factors: Annotated[list[CriminogenicFactor], Field(max_length=30)] = []
    narrative: Text | None = None


class RiskInformationV1(MessageContract):
    MESSAGE_TYPE = "risk-information"
    summary: RiskSummary = section(DataCategory.RISK_SUMMARY, "Summary level: instrument, risk levels, active conditions")
    detail: RiskDetail | None = section(DataCategory.RISK_DETAIL, "Detail level: criminogenic factors and narrative")


class RiskInformationV2(AssertsRisk18b, RiskInformationV1):
    """Version 2: may carry the sender's ``risk18b`` assertion (art. 18b Pbw)."""

    VERSION = 2
