"""transfer-notice: plan and ownership move to another PI."""
from datetime import date

from pydantic import field_validator

from contracts.common import MessageContract, Oin, ShortText


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
