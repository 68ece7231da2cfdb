"""The inbox's order: each recipient's deliveries numbered 1, 2, 3 ... in the order they committed.

A connector polls ``GET /inbox?cursor=…`` and resumes after the last position it saw. A timestamp
cursor would skip messages: two sends to one recipient may take their times in one order and commit in
the other (PostgreSQL runs them side by side), and a poll between the two commits moves the cursor past
the one not yet visible. Numbering inside the send transaction with a conditional UPDATE of the
recipient's row holds that row until commit, so position n+1 is never visible before position n."""
from __future__ import annotations

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.engine import core
from gateway.db.models import Delivery, Organisation
from gateway.db.paging import BIGINT, Keyset

INBOX = Keyset("inbox", ((Delivery.inbox_position, BIGINT),), start=(0,))


async def take_positions(db: AsyncSession | AsyncConnection, recipients: list[str]) -> dict[str, int]:
    """The next inbox position of each recipient, taken in OIN order (two sends to the same recipients
    lock their rows in the same order, so they queue rather than deadlock)."""
    conn, positions = await core(db), {}
    for oin in sorted(set(recipients)):
        positions[oin] = (await conn.execute(_NEXT_POSITION, {"recipient": oin})).scalar_one()
    return positions


_NEXT_POSITION = (update(Organisation).where(Organisation.oin == bindparam("recipient"))
                  .values(inbox_position=Organisation.inbox_position + 1).returning(Organisation.inbox_position))
