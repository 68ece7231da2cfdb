"""The TULP export format (``tulp-export/1``) as pydantic models; documented in FORMAT.md.

One JSON document per export: the source (the prison's TULP installation) and a list of detainees. Per
detainee: identifiers, the stay (arrival, stay kind, prison, municipalities, release dates), the D&R report
tabs 01-14 as TULP keeps them (report type, version, status, a revision counter and ``lastChanged``, and
the tab's own fields) and the transfers. Only what the gateway's contracts need is exported."""
from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

from contracts.common import bsn_is_valid

FORMAT = "tulp-export/1"
OinStr = Annotated[str, StringConstraints(pattern=r"^[0-9]{20}$")]
CbsStr = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
Txt = Annotated[str, StringConstraints(min_length=1, max_length=4000, strip_whitespace=True)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class StayKind(StrEnum):
    """TULP's title of detention: remand (voorlopige hechtenis, HvB) or a sentence (gevangenisstraf)."""

    PREVENTIEVE_HECHTENIS = "preventieve-hechtenis"
    GEVANGENISSTRAF = "gevangenisstraf"


class ReleaseKind(StrEnum):
    EINDE_STRAF = "einde-straf"
    VOORWAARDELIJKE_INVRIJHEIDSTELLING = "voorwaardelijke-invrijheidstelling"
    OPHEFFING_VOORLOPIGE_HECHTENIS = "opheffing-voorlopige-hechtenis"
    SCHORSING_VOORLOPIGE_HECHTENIS = "schorsing-voorlopige-hechtenis"
    OVERPLAATSING_ZORG = "overplaatsing-zorg"
    ANDERS = "anders"


class Arrangement(StrEnum):
    """How far a basic condition is arranged for release (tab 11)."""

    GEREGELD = "geregeld"
    IN_BEHANDELING = "in-behandeling"
    NIET_GEREGELD = "niet-geregeld"
    NIET_NODIG = "niet-nodig"
    ONBEKEND = "onbekend"


class Name(Model):
    given_names: str | None = None
    surname_prefix: str | None = None
    surname: str


class Goal(Model):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    description: Txt


class Action(Model):
    description: Txt
    owner_oin: OinStr
    due_date: date | None = None
    status: Literal["planned", "in-progress", "done", "cancelled"] = "planned"


class Area(Model):
    """One life area as a tab records it: situation, help requests, SMART goals, the action chain."""

    situation: Txt | None = None
    needs: list[Txt] = []
    goals: list[Goal] = []
    actions: list[Action] = []


class AreaWithArrangement(Area):
    arrangement: Arrangement | None = None


class NeedsOnly(Model):
    situation: Txt | None = None
    needs: list[Txt] = []


class Instrument(Model):
    instrument: Literal["reflector", "language-test", "scil"]
    date: date
    conclusion: Txt | None = None


# --- the tabs' own fields ------------------------------------------------------------------------------

class Tab01Algemeen(Model):
    plan_status: Literal["concept", "definitief"] = "concept"


class Tab02Intake(Model):
    screening_date: date
    instruments: list[Instrument] = []
    identity_document: NeedsOnly | None = None
    housing: NeedsOnly | None = None
    work_income: NeedsOnly | None = None
    debts: NeedsOnly | None = None
    care: NeedsOnly | None = None
    social_network: NeedsOnly | None = None
    children_family: NeedsOnly | None = None


class Tab03Mentor(Model):
    notes: Txt | None = None  # stays in TULP


class Tab04Arbeid(Model):
    work: AreaWithArrangement | None = None


class Tab05Onderwijs(Model):
    education: Area | None = None


class Tab06Sport(Model):
    notes: Txt | None = None  # stays in TULP


class Tab07Trainer(Model):
    notes: Txt | None = None  # stays in TULP


class Tab08Casemanager(Model):
    social_network: Area | None = None
    children_family: Area | None = None


class Tab09Zorg(Model):
    care: AreaWithArrangement | None = None  # what is needed to organise care (Pm 20d lid 3)
    treatment: Area | None = None  # other health content


class Tab10Orz(Model):
    restorative: Area | None = None


class Tab11Nazorg(Model):
    identity_document: AreaWithArrangement | None = None
    housing: AreaWithArrangement | None = None
    debts: AreaWithArrangement | None = None
    aftercare_municipality: CbsStr | None = Field(
        None, description="'gemeente nazorg': the municipality the casemanager arranges aftercare with")


class Tab12Dbt(Model):
    behaviour: Area | None = None


class Tab13Mdo(Model):
    plan_established_date: date | None = None
    next_review_date: date | None = None


class Tab14Risicoscreener(Model):
    risk_level: Literal["laag", "gemiddeld", "hoog", "onbekend"] = "onbekend"  # stays in TULP


class TabMeta(Model):
    report_type: str = "Rapportage"
    report_version: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}\.[0-9]+$")] = "2021.1"
    report_status: str = "Definitief"
    revision: Annotated[int, Field(ge=1)] = 1
    last_changed: AwareDatetime


class Report01(TabMeta):
    fields: Tab01Algemeen


class Report02(TabMeta):
    fields: Tab02Intake


class Report03(TabMeta):
    fields: Tab03Mentor


class Report04(TabMeta):
    fields: Tab04Arbeid


class Report05(TabMeta):
    fields: Tab05Onderwijs


class Report06(TabMeta):
    fields: Tab06Sport


class Report07(TabMeta):
    fields: Tab07Trainer


class Report08(TabMeta):
    fields: Tab08Casemanager


class Report09(TabMeta):
    fields: Tab09Zorg


class Report10(TabMeta):
    fields: Tab10Orz


class Report11(TabMeta):
    fields: Tab11Nazorg


class Report12(TabMeta):
    fields: Tab12Dbt


class Report13(TabMeta):
    fields: Tab13Mdo


class Report14(TabMeta):
    fields: Tab14Risicoscreener


class Tabs(Model):
    """The D&R report tabs, keyed by their number; every tab is optional (not every discipline reported)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    t01: Report01 | None = Field(None, alias="01")
    t02: Report02 | None = Field(None, alias="02")
    t03: Report03 | None = Field(None, alias="03")
    t04: Report04 | None = Field(None, alias="04")
    t05: Report05 | None = Field(None, alias="05")
    t06: Report06 | None = Field(None, alias="06")
    t07: Report07 | None = Field(None, alias="07")
    t08: Report08 | None = Field(None, alias="08")
    t09: Report09 | None = Field(None, alias="09")
    t10: Report10 | None = Field(None, alias="10")
    t11: Report11 | None = Field(None, alias="11")
    t12: Report12 | None = Field(None, alias="12")
    t13: Report13 | None = Field(None, alias="13")
    t14: Report14 | None = Field(None, alias="14")


class Stay(Model):
    arrival_date: date
    stay_kind: StayKind
    prison_oin: OinStr = Field(description="OIN of the prison of arrival (the sending prison)")
    municipality_of_residence: CbsStr | None = None
    intended_municipality: CbsStr | None = None
    probation_organisation_oin: OinStr | None = None
    expected_release_date: date | None = None
    release_kind: ReleaseKind | None = None
    actual_release_date: date | None = None
    supervision: bool = False
    special_conditions: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = []


class Transfer(Model):
    to_prison_oin: OinStr
    date: date
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class Detainee(Model):
    skn: Annotated[str, StringConstraints(pattern=r"^[0-9]{8,12}$")]
    bsn: str | None = None
    name: Name | None = None
    date_of_birth: date | None = None
    stay: Stay
    tabs: Tabs = Tabs()
    transfers: list[Transfer] = []

    @field_validator("bsn")
    @classmethod
    def _bsn(cls, value: str | None) -> str | None:
        if value is not None and not bsn_is_valid(value):
            raise ValueError("BSN fails the 11-test")
        return value


class Source(Model):
    system: Literal["TULP"] = "TULP"
    prison_oin: OinStr
    location: str | None = None


class Export(Model):
    format: Literal["tulp-export/1"] = FORMAT
    exported_at: AwareDatetime
    source: Source
    detainees: list[Detainee]

    @property
    def source_id(self) -> str:
        return f"TULP:{self.source.prison_oin}"


def load(path: str | Path) -> list[Export]:
    """Every export in ``path``: one file, or every ``*.json`` in a directory (sorted by name)."""
    path = Path(path)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    return [Export.model_validate(json.loads(f.read_text(encoding="utf-8"))) for f in files]
