"""transfer-notice: plan and ownership move to another PI. v2 can state the intended municipality."""
from datetime import date

from pydantic import Field, field_validator

from contracts.common import CbsCode, MessageContract, Oin, ShortText


class TransferNoticeV1(MessageContract):
    MESSAGE_TYPE = "transfer-notice"
    from_prison_oin: Oin
    to_prison_oin: Oin
    transfer_date: date
    reason: ShortText | None = None

    @field_validator("to_prison_oin")
    @classmethod
    def _other_prison(cls, value: str, info) -> str:
        if value == info.data.get("from_prison_oin"):
            raise ValueError("the receiving prison must differ from the sending prison")
        return value


class TransferNoticeV2(TransferNoticeV1):
    VERSION = 2
    intended_municipality: CbsCode | None = Field(
        None, description="The intended municipality after release, when it is known or changes at transfer"
    )

    def stated_municipalities(self) -> dict[str, str]:
        return {"intended": self.intended_municipality} if self.intended_municipality else {}
