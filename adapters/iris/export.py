"""The IRIS export, one JSON document per client (documented in FORMAT.md).

IRIS speaks Dutch in its value lists (``laag``/``gemiddeld``/``hoog``, ``gebiedsverbod``, ``vi-advies``);
the keys are camelCase. Unknown keys are refused, so a changed export shows up at once instead of being
silently dropped. Identifiers reuse the contract package's checks (BSN 11-test, SKN, OIN, CBS code)."""
from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from contracts.common import Bsn, CbsCode, Oin, Skn

Short = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Long = Annotated[str, StringConstraints(min_length=1, max_length=4000, strip_whitespace=True)]
SourceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$")]


class IrisModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel, frozen=True)


class Level(StrEnum):
    LOW = "laag"
    MEDIUM = "gemiddeld"
    HIGH = "hoog"


class Status(StrEnum):
    DRAFT = "concept"
    FINAL = "definitief"


class Name(IrisModel):
    given_names: Short | None = None
    surname_prefix: Annotated[str, StringConstraints(max_length=20)] | None = None
    surname: Short


class Client(IrisModel):
    client_number: SourceId = Field(description="IRIS client number (cliëntnummer)")
    skn: Skn
    bsn: Bsn | None = None
    name: Name | None = None
    date_of_birth: date | None = None


class Detention(IrisModel):
    """Where the client is detained, as probation knows it (from the detention-notice or the casemanager)."""

    prison_oin: Oin
    prison_name: Short | None = None
    arrival_date: date | None = None
    expected_release_date: date | None = None
    municipality_of_residence: CbsCode | None = None
    intended_municipality: CbsCode | None = None

    @model_validator(mode="after")
    def _a_municipality(self) -> "Detention":
        if not self.municipality_of_residence and not self.intended_municipality:
            raise ValueError("name municipalityOfResidence and/or intendedMunicipality")
        return self

    @property
    def municipality_of_return(self) -> str:
        """Art. 18b: the intended municipality; the municipality of residence while none is stated."""
        return self.intended_municipality or self.municipality_of_residence  # type: ignore[return-value]


class ConditionKind(StrEnum):
    CONTACT_BAN = "contactverbod"
    AREA_BAN = "gebiedsverbod"
    REPORTING_DUTY = "meldplicht"
    ELECTRONIC_MONITORING = "enkelband"
    OTHER = "overig"


class SpecialCondition(IrisModel):
    """A special condition (bijzondere voorwaarde) under supervision."""

    kind: ConditionKind
    description: Short | None = None
    start_date: date
    end_date: date | None = None

    def active_on(self, day: date) -> bool:
        return self.start_date <= day and (self.end_date is None or day <= self.end_date)


class Supervision(IrisModel):
    start_date: date
    end_date: date | None = None
    supervisor_role: Short | None = None
    conditions: Annotated[list[SpecialCondition], Field(max_length=20)] = []


class Scale(IrisModel):
    """One RISc scale as IRIS scores it: raw score against the scale's maximum; ``criminogenic`` when the
    assessor marked the scale as related to the offence behaviour."""

    scale: Short
    score: Annotated[int, Field(ge=0)]
    max_score: Annotated[int, Field(gt=0)]
    criminogenic: bool = True

    @model_validator(mode="after")
    def _within(self) -> "Scale":
        if self.score > self.max_score:
            raise ValueError(f"score {self.score} exceeds maxScore {self.max_score}")
        return self


class OffenceKind(StrEnum):
    VIOLENT = "geweld"
    SEXUAL = "zeden"


class Art18b(IrisModel):
    """The assessor's assertion of the art. 18b Pbw condition: risk of a serious violent or sexual offence,
    and sharing necessary for the safety of others (the mayor is told only with it)."""

    offence_kind: OffenceKind
    justification: Long
    asserted_by: Short
    asserted_at: AwareDatetime


class Instrument(StrEnum):
    RISC = "RISc"
    QUICKSCAN = "Quickscan"
    OTHER = "anders"


class RiskAssessment(IrisModel):
    assessment_id: SourceId
    instrument: Instrument = Instrument.RISC
    status: Status
    assessment_date: date
    recidivism_risk: Level
    risk_of_harm: Level = Field(description="risico op letselschade")
    violence_risk: Level
    scales: Annotated[list[Scale], Field(max_length=30)] = []
    explanation: Long | None = None
    art18b: Art18b | None = Field(None, alias="art18b")


class AdviceKind(StrEnum):
    DR = "dr-advies"
    PLACEMENT = "plaatsingsadvies"
    CONDITIONAL_RELEASE = "vi-advies"


class ConditionStatus(StrEnum):
    ARRANGED = "geregeld"
    IN_PROGRESS = "in behandeling"
    NOT_ARRANGED = "niet geregeld"
    NOT_NEEDED = "niet nodig"
    UNKNOWN = "onbekend"


class BasicCondition(IrisModel):
    status: ConditionStatus
    note: Long | None = None


class BasicConditions(IrisModel):
    identity_document: BasicCondition | None = None
    housing: BasicCondition | None = None
    work_income: BasicCondition | None = None
    debts: BasicCondition | None = None
    care: BasicCondition | None = None


class SocialNetwork(IrisModel):
    situation: Long | None = None
    needs: Annotated[list[Long], Field(max_length=20)] = []


class Health(IrisModel):
    addiction: Long | None = None
    psychiatric_history: Long | None = None
    treatment: Long | None = None


class AdviceReport(IrisModel):
    report_id: SourceId
    kind: AdviceKind
    status: Status
    report_date: date
    summary: Long | None = None
    advised_interventions: Annotated[list[Short], Field(max_length=20)] = []
    special_conditions: Annotated[list[Short], Field(max_length=20)] = []
    basic_conditions: BasicConditions | None = None
    social_network: SocialNetwork | None = None
    health: Health | None = None


class IrisExport(IrisModel):
    format: Literal["iris-client-export"]
    format_version: Literal[1]
    exported_at: AwareDatetime
    probation_organisation_oin: Oin
    client: Client
    detention: Detention
    supervision: Supervision | None = None
    risk_assessments: Annotated[list[RiskAssessment], Field(max_length=100)] = []
    advice_reports: Annotated[list[AdviceReport], Field(max_length=100)] = []
