"""detention-notice: on arrival in a PI, the prison tells the municipality (and probation if known)."""
from datetime import date
from enum import StrEnum

from pydantic import field_validator

from contracts.common import CbsCode, MessageContract, Oin, not_before


class DetentionKind(StrEnum):
    REMAND = "remand"  # voorlopige hechtenis (HvB)
    SENTENCE = "sentence"


class DetentionNoticeV1(MessageContract):
    MESSAGE_TYPE = "detention-notice"
    prison_oin: Oin
    arrival_date: date
    detention_kind: DetentionKind
    known_release_date: date | None = None
    municipality_of_residence: CbsCode | None = None
    intended_municipality: CbsCode | None = None
    probation_organisation_oin: Oin | None = None

    _release_after_arrival = field_validator("known_release_date")(
        not_before("arrival_date", "the known release date", "arrival date")
    )

    def announced_release_date(self) -> date | None:
        return self.known_release_date

    def stated_municipalities(self) -> dict[str, str]:
        stated = {"residence": self.municipality_of_residence, "intended": self.intended_municipality}
        return {key: code for key, code in stated.items() if code}

    def stay_arrival(self) -> date | None:
        return self.arrival_date
