"""Messages: send, sent list, read, acknowledge, delivery status; and the inbox."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response

from contracts.parties import Scope
from gateway.api.common import PageSize, Svc, answer, caller_in_transaction, caller_with
from gateway.api.params import Cursor, MessageId, Since, SubjectFilter, Until, slug
from gateway.exchange import listing
from gateway.exchange.acknowledge import acknowledge
from gateway.exchange.read import read_message
from gateway.exchange.send import send_message
from gateway.schemas import AcknowledgementReceipt, AcknowledgementRequest, DeliveryStatus, MessagePage, MessageReceipt, MessageView, SendMessageRequest
from gateway.openapi import problems

router = APIRouter(tags=["messages"])
Sender = caller_in_transaction(Scope.MESSAGES_SEND)  # send, read and acknowledge open their unit of work first
Reader = caller_with(Scope.MESSAGES_READ)
ReaderInTransaction = caller_in_transaction(Scope.MESSAGES_READ)
Purpose = Annotated[str, slug("the purpose you read for; policy is decided again for it")]


async def list_filter(
    type: Annotated[str | None, slug("message type")] = None,
    status: Annotated[str | None, slug("delivery status")] = None,
    subject_id: SubjectFilter = None,
    since: Since = None,
    until: Until = None,
    open_requests: Annotated[bool, Query(alias="open", description="only information-requests not yet answered")] = False,
) -> listing.ListFilter:
    return listing.ListFilter(type, status, subject_id, since, until, open_requests)


ListQuery = Annotated[listing.ListFilter, Depends(list_filter)]


@router.post("/messages", status_code=201, summary="Send a message", name="send_message", response_model=MessageReceipt,
              responses=problems("exchange-not-allowed", "purpose-not-allowed", "consent-required", "recipient-not-competent", "condition-not-met",
                                 "idempotency-conflict", "unknown-recipient", "unknown-contract"))
async def post_message(
    body: SendMessageRequest,
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=200)],
    caller: Sender, svc: Svc,
) -> Response:
    """Validate the payload against its contract, decide policy per recipient, and store the message, its deliveries, audit records and events in one transaction. Send an `Idempotency-Key`: the same key and body answer the first receipt again; the same key with another body is a 409."""
    return answer(await send_message(svc, caller, body, idempotency_key), 201)


@router.get("/messages", summary="Messages you sent")
async def list_sent_messages(
    f: ListQuery, size: PageSize, caller: Reader, svc: Svc,
    direction: Annotated[Literal["sent"], Query(description="only 'sent'; received messages are in /inbox")] = "sent",
    cursor: Cursor = None,
) -> MessagePage:
    """Messages your organisation sent, oldest first, with every recipient's delivery, read and acknowledgement status. Filter with `type`, `status`, `subjectId`, `since`, `until`, `open`; page with `cursor`."""
    return await listing.sent(svc, caller, f, cursor, size)


@router.get("/inbox", summary="Messages delivered to you", response_model=MessagePage)
async def list_inbox(
    f: ListQuery, size: PageSize, caller: Reader, svc: Svc, cursor: Cursor = None,
) -> Response:
    """Messages delivered to your organisation, oldest first, without payload. Poll onwards with `cursor`; `open=true` lists information-requests you have not answered yet."""
    return answer(await listing.inbox(svc, caller, f, cursor, size))


@router.get("/messages/{message_id}", summary="Read a message for a stated purpose", name="read_message", response_model=MessageView,
            responses=problems("gone", "exchange-not-allowed", "purpose-not-allowed", "consent-required", "recipient-not-competent", "condition-not-met"))
async def get_message(message_id: MessageId, purpose: Purpose, caller: ReaderInTransaction, svc: Svc) -> Response:
    """The message with the payload as you may see it now: policy is decided again for the purpose you state and the consents in force now. Withheld sections are listed in `redactions`. 404 when you are no party; 410 after the retention purge."""
    return answer(await read_message(svc, caller, message_id, purpose))


@router.post("/messages/{message_id}/acknowledgements", status_code=201, summary="Acknowledge a message",
             responses=problems("forbidden", "conflict", "gone"))
async def acknowledge_message(
    message_id: MessageId, body: AcknowledgementRequest, caller: ReaderInTransaction, svc: Svc,
) -> AcknowledgementReceipt:
    """Tell the sender you `received`, `accepted` or `rejected` (with a reason) the message. The answer carries `signedReceipt`, the gateway's signed receipt of your acknowledgement: verify it with the keys at `/.well-known/jwks.json`."""
    return await acknowledge(svc, caller, message_id, body)


@router.get("/messages/{message_id}/deliveries", summary="Delivery, read and acknowledgement status per recipient")
async def list_deliveries(message_id: MessageId, caller: Reader, svc: Svc) -> list[DeliveryStatus]:
    """For the sender: delivery, read, acknowledgement and reply status per recipient, with the decision and redactions."""
    return await listing.deliveries(svc, caller, message_id)
