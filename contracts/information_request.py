"""information-request: within 10 days of arrival the PI asks municipality and probation what they know."""
from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from contracts.common import Contract, MessageContract, Oin, ShortText, Text


INFORMATION_REQUEST = "information-request"  # the one message type that is answered (inReplyTo), by its due date


class QuestionTopic(StrEnum):
    IDENTITY_DOCUMENT = "identity-document"
    HOUSING = "housing"
    WORK_INCOME = "work-income"
    DEBTS = "debts"
    CARE = "care"
    GENERAL = "general"


class Question(Contract):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
    topic: QuestionTopic
    text: Text


class InformationRequestV1(MessageContract):
    MESSAGE_TYPE = INFORMATION_REQUEST
    prison_oin: Oin
    questions: Annotated[list[Question], Field(min_length=1, max_length=50)]
    due_date: date
    contact: ShortText | None = None

    def answer_due(self) -> date | None:
        return self.due_date
