"""information-response: the answer to an information-request; ``inReplyTo`` closes the request."""
from typing import Annotated

from pydantic import Field

from contracts.common import Contract, MessageContract, Text


class Answer(Contract):
    question_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    text: Text


class InformationResponseV1(MessageContract):
    MESSAGE_TYPE = "information-response"
    in_reply_to: Annotated[str, Field(min_length=1, max_length=64, description="id of the information-request message")]
    answers: Annotated[list[Answer], Field(min_length=1, max_length=50)]

    def replies_to(self) -> str | None:
        return self.in_reply_to
