"""A worked municipal connector on a client generated from ``openapi.yaml`` (openapi-python-client, package
``brb_api``), signing every request with brb-client's ``TokenAuth``. It polls the inbox from the cursor it
kept, reads each new message for its purpose, hands it to the case system, acknowledges it and keeps the
new cursor: stopped and started again, it resumes where it stopped, missing nothing and repeating nothing.

    openapi-python-client generate --path openapi.yaml --meta none --config gen.yaml   # gen.yaml: package_name_override: brb_api
    python generated_connector.py https://gateway.example/api/v1 <OIN> key.jwk state/cursor

A message whose delivery already carries an acknowledgement was handled before a crash cut the run short
(after the acknowledgement, before the cursor was saved): it is skipped, so handling stays exactly once."""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from brb_api import AuthenticatedClient
from brb_api.api.messages import acknowledge_message, list_inbox, read_message
from brb_api.models import (
    Acknowledgement,
    AcknowledgementRequest,
    MessagePage,
    MessageSummary,
    MessageView,
    Problem,
    ReadMessagePurpose,
)
from brb_api.types import UNSET, Unset
from brb_client import CursorFile, Identity, TokenAuth

Handler = Callable[[MessageView], Awaitable[None]]
SCOPE = "messages:read"


class ConnectorError(Exception):
    """The gateway answered with a problem (RFC 9457) the connector cannot get past on its own."""

    def __init__(self, step: str, answer: Problem | None):
        detail = f"{answer.status} {answer.title}: {answer.detail}" if answer is not None else "no parsable answer"
        super().__init__(f"{step}: {detail}")


def connect(base_url: str, identity: Identity, **httpx_args: Any) -> AuthenticatedClient:
    """The generated client with a fresh signed token per request (the gateway accepts a token once). The
    generated class wants one static token; ``TokenAuth`` replaces the Authorization header on every request."""
    return AuthenticatedClient(base_url=base_url, token="signed-per-request", raise_on_unexpected_status=True,
                               httpx_args={"auth": TokenAuth(identity), **httpx_args})


def _acknowledged(item: MessageSummary) -> bool:
    return any(d.acknowledgement is not None for d in item.deliveries)


async def handle_one(client: AuthenticatedClient, item: MessageSummary, purpose: ReadMessagePurpose, handle: Handler) -> None:
    view = await read_message.asyncio(item.id, client=client, purpose=purpose)
    if not isinstance(view, MessageView):
        raise ConnectorError(f"read {item.id}", view)
    await handle(view)
    ack = await acknowledge_message.asyncio(item.id, client=client,
                                            body=AcknowledgementRequest(status=Acknowledgement.RECEIVED))
    if isinstance(ack, Problem) and ack.status != 409:  # 409: acknowledged already (a run cut short)
        raise ConnectorError(f"acknowledge {item.id}", ack)


async def poll(client: AuthenticatedClient, cursor_file: CursorFile, handle: Handler,
               purpose: ReadMessagePurpose = ReadMessagePurpose.AFTERCARE) -> int:
    """Every message that arrived since the kept cursor, page by page; the cursor is saved after each page."""
    handled = 0
    while True:
        kept = cursor_file.load()
        cursor: str | Unset = kept if kept is not None else UNSET
        page = await list_inbox.asyncio(client=client, cursor=cursor)
        if not isinstance(page, MessagePage):
            raise ConnectorError("list the inbox", page)
        for item in page.items:
            if _acknowledged(item):
                continue
            await handle_one(client, item, purpose, handle)
            handled += 1
        if isinstance(page.next_cursor, str):
            cursor_file.save(page.next_cursor)
        if not page.has_more:
            return handled


async def main(base_url: str, oin: str, key_file: str, state: str) -> None:
    async def print_it(view: MessageView) -> None:
        print(view.id, view.type_.value, view.subject_id, sorted(view.payload.to_dict()))

    identity = Identity.from_file(oin, key_file, SCOPE)
    async with connect(base_url, identity) as client:
        while True:
            await poll(client, CursorFile(Path(state)), print_it)
            await asyncio.sleep(30)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
