"""som-triage: the Selectie Ondersteunend Model (test form 1-3-2021), DJI and 3RO decide together
whether probation gets involved. Part 1 by the casemanager, part 2 by probation, part 3 the joint decision.
v2 lets the casemanager override a "no priority" first pass, with a reason (gateway/triage)."""
from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from contracts.common import Contract, DataCategory, MessageContract, ShortText, Skn, Text, section


class DetentionStatus(StrEnum):
    REMAND = "remand"
    CONVICTED = "convicted"


class CaseManagerPart(Contract):
    """Part 1, filled in by the DJI casemanager."""

    skn: Skn
    entry_date: date
    detention_status: DetentionStatus
    hearing_date: date | None = None
    expected_end_of_detention: date | None = None
    offence_article_code: Annotated[str, Field(max_length=40)] | None = None
    screening_date: date | None = None
    scil_done: bool = False
    scil_conclusion: Text | None = None
    supervision_after_detention: bool = False
    art_43_3_placement: bool = Field(False, alias="art433Placement")
    no_residence_status: bool = False
    tbs_imposed: bool = False
    isd_imposed: bool = False
    outflow_with_care_authorisation: bool = False
    attention_points: Text | None = None


class SelfReliance(Contract):
    lvb: bool | None = Field(None, description="mild intellectual disability")
    literacy_problems: bool | None = None
    psychiatric_problems: bool | None = None
    social_support: bool | None = None


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    UNKNOWN = "unknown"


class ProbationPart(Contract):
    """Part 2, filled in by probation (3RO)."""

    recent_information_available: bool
    hearing_advice_requested: bool = False
    prosecutor_asked_to_examine_isd_tbs: bool = False
    recidivism_risk: RiskLevel = RiskLevel.UNKNOWN
    injury_risk: RiskLevel = RiskLevel.UNKNOWN
    absconding_risk: RiskLevel = RiskLevel.UNKNOWN
    risk_estimate_date: date | None = None
    criminogenic_factors: Annotated[list[ShortText], Field(max_length=20)] = []
    protective_factors: Annotated[list[ShortText], Field(max_length=20)] = []
    self_reliance: SelfReliance | None = None
    motivable: bool | None = None
    young_adult_asr_not_applied: bool = False
    special_conditions: Annotated[list[ShortText], Field(max_length=20)] = []
    ongoing_care_contacts: Annotated[list[ShortText], Field(max_length=20)] = []


class TriageOutcome(StrEnum):
    NO_PRIORITY = "no-priority"
    TOO_LITTLE_INFORMATION_REPEAT_AFTER_VERDICT = "too-little-information-repeat-after-verdict"
    TOO_LITTLE_INFORMATION_REQUEST_ADVICE = "too-little-information-request-advice"
    INVOLVEMENT_PREPARE_SUPERVISION = "involvement-prepare-supervision"
    INVOLVEMENT_BEHAVIOURAL_TRAINING = "involvement-behavioural-training"
    INVOLVEMENT_COUNSELLING = "involvement-counselling"
    INVOLVEMENT_SUPPORT_ART_43_3 = "involvement-support-art-43-3-placement"
    INVOLVEMENT_INITIATE_CARE = "involvement-initiate-care-after-detention"
    INVOLVEMENT_SUSPEND_REMAND = "involvement-initiate-suspension-of-remand"
    OTHER = "other"


class JointDecision(Contract):
    """Part 3: always justified in writing; deviation from the guideline is allowed but explained."""

    outcome: TriageOutcome
    justification: Text
    deviates_from_guideline: bool = False
    decided_on: date


class SomTriageV1(MessageContract):
    MESSAGE_TYPE = "som-triage"
    # who fills in which part: the casemanager part 1, probation part 2; the joint decision either of them
    AUTHORS: ClassVar[dict[str, str]] = {"caseManagerPart": "dji", "probationPart": "probation"}
    moment: Annotated[str, Field(pattern=r"^(week-3|after-verdict|new-admission)$")] = "week-3"
    case_manager_part: CaseManagerPart | None = section(DataCategory.TRIAGE, "Part 1 (casemanager DJI)")
    probation_part: ProbationPart | None = section(DataCategory.TRIAGE, "Part 2 (probation)")
    decision: JointDecision | None = section(DataCategory.TRIAGE, "Part 3 (joint decision)")

    @model_validator(mode="after")
    def _some_part(self) -> "SomTriageV1":
        if not (self.case_manager_part or self.probation_part or self.decision):
            raise ValueError("a SOM triage message carries at least one part")
        return self


class CaseManagerPartV2(CaseManagerPart):
    override_reason: Text | None = Field(None, description=(
        "The casemanager overrides a no-priority first pass: why the professionals should weigh this detainee anyway"))


class SomTriageV2(SomTriageV1):
    """Version 2: part 1 may carry the casemanager's override of a no-priority outcome, with its reason."""

    VERSION = 2
    case_manager_part: CaseManagerPartV2 | None = section(DataCategory.TRIAGE, "Part 1 (casemanager DJI)")
