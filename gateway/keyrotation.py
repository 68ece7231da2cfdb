"""Key rotation for data at rest: re-wrap data keys under the newest ring key."""
from __future__ import annotations

from sqlmodel import col, select

from gateway.crypto import Sealed
from gateway.db.models import Consent, Delivery, Message, Subscription
from gateway.services import Services

# every column set sealed with the key ring: (table, ciphertext, wrapped data key, key id)
SEALED_COLUMNS = (
    (Message, "payload_ciphertext", "wrapped_key", "key_id"),
    (Subscription, "secret_ciphertext", "secret_wrapped_key", "secret_key_id"),
    (Delivery, "acknowledgement_reason_ciphertext", "acknowledgement_reason_wrapped_key", "acknowledgement_reason_key_id"),
    (Consent, "withdrawal_reason_ciphertext", "withdrawal_reason_wrapped_key", "withdrawal_reason_key_id"),
)


async def rewrap_all(services: Services, batch: int = 500, progress=None) -> int:
    """Re-wrap every data key not yet under the newest ring key; ``progress(n)`` after each batch."""
    ring, done = services.keyring, 0
    for model, ct, wk, kid in SEALED_COLUMNS:
        while True:
            async with services.db.write() as session:
                rows = (await session.exec(select(model).where(
                    getattr(model, kid) != ring.current_id, col(getattr(model, ct)).is_not(None)).limit(batch))).all()
                for row in rows:
                    sealed = ring.rewrap(Sealed(getattr(row, ct), getattr(row, wk), getattr(row, kid)))
                    setattr(row, wk, sealed.wrapped_key)
                    setattr(row, kid, sealed.key_id)
                    session.add(row)
            done += len(rows)
            if progress:
                progress(len(rows))
            if len(rows) < batch:
                break
    return done
