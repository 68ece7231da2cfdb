"""Key rotation for data at rest: re-wrap data keys under the newest ring key."""
from __future__ import annotations

from sqlmodel import col, select

from gateway.db.models import SEALED
from gateway.services import Services

async def rewrap_all(services: Services, batch: int = 500, progress=None) -> int:
    """Re-wrap every data key not yet under the newest ring key; ``progress(n)`` after each batch."""
    ring, done = services.keyring, 0
    for model, columns in SEALED:
        while True:
            async with services.db.write() as session:
                rows = (await session.exec(select(model).where(
                    getattr(model, columns.key_id) != ring.current_id, col(getattr(model, columns.ciphertext)).is_not(None))
                    .limit(batch))).all()
                for row in rows:
                    columns.put(row, ring.rewrap(columns.get(row)))
                    session.add(row)
            done += len(rows)
            if progress:
                progress(len(rows))
            if len(rows) < batch:
                break
    return done
