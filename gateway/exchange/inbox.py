"""The inbox's order: each recipient's deliveries numbered 1, 2, 3 ... in the order they committed.

A connector polls ``GET /inbox?cursor=…`` and resumes after the last position it saw. A timestamp
cursor would skip messages: two sends to one recipient may take their times in one order and commit in
the other (PostgreSQL runs them side by side), and a poll between the two commits moves the cursor past
the one not yet visible. Numbering inside the send transaction with a conditional UPDATE of the
recipient's row holds that row until commit, so position n+1 is never visible before position n."""
from __future__ import annotations

from sqlalchemy import update
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import Delivery, Organisation
from gateway.db.paging import BIGINT, Keyset

INBOX = Keyset("inbox", ((Delivery.inbox_position, BIGINT),), start=(0,))


async def take_positions(session: AsyncSession, recipients: list[str]) -> dict[str, int]:
    """The next inbox position of each recipient, taken in OIN order (two sends to the same recipients
    lock their rows in the same order, so they queue rather than deadlock)."""
    positions = {}
    for oin in sorted(set(recipients)):
        positions[oin] = (await session.exec(
            update(Organisation).where(Organisation.oin == oin)
            .values(inbox_position=Organisation.inbox_position + 1).returning(Organisation.inbox_position)
        )).scalar_one()
    return positions
