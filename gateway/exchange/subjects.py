"""Subject pseudonyms: find or create the subject behind a BSN/SKN. Only the pseudonym is kept."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam
from sqlmodel import select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.dialect import insert_ignoring_duplicates
from gateway.db.engine import core
from gateway.db.models import SubjectIdentifier, SubjectRecord
from gateway.pseudonym import Pseudonymizer


def identifiers(bsn: str | None, skn: str | None) -> list[tuple[str, str]]:
    return [(kind, value) for kind, value in (("bsn", bsn), ("skn", skn)) if value]


@dataclass(frozen=True)
class SubjectLookup:
    """What one query knows of the person behind the given identifiers."""

    subject_id: str  # the stored pseudonym, or the one the subject gets when first stored
    stored: bool  # the subject row exists
    unlinked: tuple[str, ...]  # identifier hashes given but not yet linked to any subject
    release_date: date | None


_BY_IDENTIFIERS = (select(SubjectIdentifier.identifier_hash, SubjectIdentifier.subject_id, SubjectRecord.release_date)
                   .join(SubjectRecord, SubjectRecord.id == SubjectIdentifier.subject_id)
                   .where(SubjectIdentifier.identifier_hash.in_(bindparam("hashes", expanding=True))))


async def look_up(db: AsyncSession | AsyncConnection, pseudonyms: Pseudonymizer, bsn: str | None, skn: str | None) -> SubjectLookup:
    """The subject and its release date in one round trip. BSN first: it wins when both identifiers are
    known under different subjects. An unknown person's pseudonym derives from the first identifier."""
    given = identifiers(bsn, skn)
    hashes = [pseudonyms.identifier_hash(k, v) for k, v in given]
    rows = (await (await core(db)).execute(_BY_IDENTIFIERS, {"hashes": hashes})).all() if hashes else []
    found = {h: (subject_id, release) for h, subject_id, release in rows}
    unlinked = tuple(h for h in hashes if h not in found)
    for h in hashes:
        if h in found:
            subject_id, release = found[h]
            return SubjectLookup(subject_id, True, unlinked, release)
    return SubjectLookup(pseudonyms.subject_id(*given[0]), False, unlinked, None)


async def find_subject(session: AsyncSession, pseudonyms: Pseudonymizer, bsn: str | None, skn: str | None) -> str | None:
    if not identifiers(bsn, skn):
        return None
    found = await look_up(session, pseudonyms, bsn, skn)
    return found.subject_id if found.stored else None


async def subject_for(session: AsyncSession, pseudonyms: Pseudonymizer, bsn: str | None, skn: str | None) -> str:
    """The pseudonym this person has, or will get when first stored (derived from the first identifier)."""
    return (await look_up(session, pseudonyms, bsn, skn)).subject_id


async def ensure_subject(db: AsyncSession | AsyncConnection, pseudonyms: Pseudonymizer, bsn: str | None, skn: str | None,
                         now, lookup: SubjectLookup | None = None) -> str:
    """The subject's pseudonym, creating it (and linking every given identifier) inside the caller's
    transaction; ``lookup``: what ``look_up`` found earlier in this transaction (then a known subject costs
    no statement). Idempotent under concurrency: inserts are ON CONFLICT DO NOTHING."""
    conn = await core(db)
    lookup = lookup or await look_up(conn, pseudonyms, bsn, skn)
    if not lookup.stored:
        await conn.execute(insert_ignoring_duplicates(conn, SubjectRecord).values(id=lookup.subject_id, created_at=now))
    for identifier_hash in lookup.unlinked:
        await conn.execute(insert_ignoring_duplicates(conn, SubjectIdentifier)
                           .values(identifier_hash=identifier_hash, subject_id=lookup.subject_id))
    return lookup.subject_id
