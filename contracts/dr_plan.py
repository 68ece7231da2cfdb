"""dr-plan: the detention & re-integration plan (art. 18a Pbw), one section per life area.
v2 splits v1's mixed social-network section and keeps health apart from organising care (Pm 20d)."""
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from contracts.common import Contract, DataCategory, MessageContract, Oin, ShortText, Text, section


class PlanStatus(StrEnum):
    DRAFT = "draft"
    FINAL = "final"


class TulpTab(StrEnum):
    """The TULP report tabs the plan is assembled from today (D&R 01-14)."""

    ALGEMEEN = "D&R 01 Algemeen"
    INTAKE = "D&R 02 Intake"
    MENTOR = "D&R 03 Mentor PIW"
    ARBEID = "D&R 04 Arbeid"
    ONDERWIJS = "D&R 05 Onderwijs"
    SPORT = "D&R 06 Sport"
    REINTEGRATIETRAINER = "D&R 07 Re-integratietrainer"
    CASEMANAGER = "D&R 08 Casemanager"
    ZORG = "D&R 09 Zorg"
    ORZ = "D&R 10 ORZ"
    NAZORG = "D&R 11 Re-integratie en Resocialisatie"
    DBT = "D&R 12 DBT"
    MDO = "D&R 13 MDO/Actielijst"
    RISICOSCREENER = "D&R 14 Risicoscreener"


class ActionStatus(StrEnum):
    PLANNED = "planned"
    IN_PROGRESS = "in-progress"
    DONE = "done"
    CANCELLED = "cancelled"


class Goal(Contract):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    description: Text


class Action(Contract):
    description: Text
    owner_oin: Oin = Field(description="OIN of the organisation that carries out the action")
    due_date: date | None = None
    status: ActionStatus = ActionStatus.PLANNED


class Provenance(Contract):
    tulp_tab: TulpTab
    report_type: ShortText | None = None
    report_version: Annotated[str, Field(pattern=r"^[0-9]{4}\.[0-9]+$")] | None = None
    report_status: ShortText | None = None


class PlanSection(Contract):
    current_situation: Text | None = None
    needs: Annotated[list[Text], Field(max_length=20, description="hulpvragen of the detainee")] = []
    goals: Annotated[list[Goal], Field(max_length=20)] = []
    actions: Annotated[list[Action], Field(max_length=50)] = []
    provenance: Provenance | None = None


def _plan_section(category: DataCategory, description: str, alias: str):
    return section(category, description, alias=alias)


class PlanSections(Contract):
    """v1 sections. ``social-network`` mixes social network, family and children; they cannot be told
    apart, so it carries the stricter category children-family."""

    identity_document: PlanSection | None = _plan_section(DataCategory.BASIC_CONDITIONS, "Valid identity document", "identity-document")
    housing: PlanSection | None = _plan_section(DataCategory.BASIC_CONDITIONS, "Housing", "housing")
    work_income: PlanSection | None = _plan_section(DataCategory.BASIC_CONDITIONS, "Work, income and daytime activity", "work-income")
    debts: PlanSection | None = _plan_section(DataCategory.BASIC_CONDITIONS, "Debts", "debts")
    care: PlanSection | None = _plan_section(DataCategory.BASIC_CONDITIONS, "Continuity of care", "care")
    social_network: PlanSection | None = _plan_section(
        DataCategory.CHILDREN_FAMILY,
        "Social network, family, children (v1 mixes them in one section, so it is treated as children-family)",
        "social-network",
    )
    restorative_work: PlanSection | None = _plan_section(DataCategory.RESTORATIVE_WORK, "Herstel and victim awareness", "restorative-work")
    behaviour: PlanSection | None = _plan_section(DataCategory.OFFENCE_RELATED, "Offence-related goals", "behaviour")

    @model_validator(mode="after")
    def _at_least_one(self) -> "PlanSections":
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("a D&R-plan needs at least one section")
        return self


class DrPlanV1(MessageContract):
    MESSAGE_TYPE = "dr-plan"
    plan_version: Annotated[int, Field(ge=1, le=10_000)]  # bounded: canonical JSON (RFC 8785) holds integers up to 2^53
    status: PlanStatus
    prison_oin: Oin
    established_date: date | None = None
    review_date: date | None = None
    sections: PlanSections


class PlanSectionsV2(PlanSections):
    """v2 sections: care holds only what is needed to organise it; family help requests stay in the social
    network, children and family beyond that, and other health content, get sections of their own."""

    care: PlanSection | None = _plan_section(
        DataCategory.BASIC_CONDITIONS,
        "Continuity of care: only what is needed to organise care (Wmo, Wvggz, Wzd, Jeugdwet, Wfz trajectories,"
        " health insurance); Pm 20d lid 3",
        "care",
    )
    social_network: PlanSection | None = _plan_section(
        DataCategory.SOCIAL_NETWORK, "Social network, including help requests for family (Pm 20d lid 2 h)", "social-network"
    )
    children_family: PlanSection | None = _plan_section(
        DataCategory.CHILDREN_FAMILY,
        "Children and family beyond a help request, e.g. children left at home, youth-care history",
        "children-family",
    )
    health: PlanSection | None = _plan_section(
        DataCategory.HEALTH, "Other health content: treatment, addiction, psychiatric history", "health"
    )


class DrPlanV2(DrPlanV1):
    VERSION = 2
    sections: PlanSectionsV2
