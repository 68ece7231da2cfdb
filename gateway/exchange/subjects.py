"""Subject pseudonyms: find or create the subject behind a BSN/SKN. Only the pseudonym is kept."""
from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.dialect import insert_ignoring_duplicates
from gateway.db.models import SubjectIdentifier, SubjectRecord
from gateway.pseudonym import Pseudonymizer


def identifiers(bsn: str | None, skn: str | None) -> list[tuple[str, str]]:
    return [(kind, value) for kind, value in (("bsn", bsn), ("skn", skn)) if value]


async def find_subject(session: AsyncSession, pseudonyms: Pseudonymizer, bsn: str | None, skn: str | None) -> str | None:
    hashes = [pseudonyms.identifier_hash(k, v) for k, v in identifiers(bsn, skn)]
    if not hashes:
        return None
    rows = (await session.exec(select(SubjectIdentifier).where(SubjectIdentifier.identifier_hash.in_(hashes)))).all()
    by_hash = {r.identifier_hash: r.subject_id for r in rows}
    for h in hashes:  # BSN first: it wins when both are known under different subjects
        if h in by_hash:
            return by_hash[h]
    return None


async def subject_for(session: AsyncSession, pseudonyms: Pseudonymizer, bsn: str | None, skn: str | None) -> str:
    """The pseudonym this person has, or will get when first stored (derived from the first identifier)."""
    return await find_subject(session, pseudonyms, bsn, skn) or pseudonyms.subject_id(*identifiers(bsn, skn)[0])


async def ensure_subject(session: AsyncSession, pseudonyms: Pseudonymizer, bsn: str | None, skn: str | None, now,
                         subject_id: str | None = None) -> str:
    """The subject's pseudonym, creating it (and linking every given identifier) inside the caller's
    transaction; ``subject_id``: the pseudonym already looked up in this transaction (``subject_for``).
    Idempotent under concurrency: inserts are ON CONFLICT DO NOTHING."""
    subject_id = subject_id or await subject_for(session, pseudonyms, bsn, skn)
    await session.exec(insert_ignoring_duplicates(session, SubjectRecord).values(id=subject_id, created_at=now))
    for kind, value in identifiers(bsn, skn):
        await session.exec(insert_ignoring_duplicates(session, SubjectIdentifier)
                           .values(identifier_hash=pseudonyms.identifier_hash(kind, value), subject_id=subject_id))
    return subject_id
