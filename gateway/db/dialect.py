"""What SQLite and PostgreSQL spell differently, written once: the INSERT that can say ON CONFLICT DO
NOTHING (idempotent under concurrent writers), and the integer ranges both accept for our columns."""
from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

MAX_INT = 2**31 - 1  # INTEGER columns (delivery and dead-letter ids)
MAX_BIGINT = 2**63 - 1  # BIGINT columns (audit seq, outbox ids)


def insert_ignoring_duplicates(db: AsyncSession | AsyncConnection, table):
    """``INSERT … ON CONFLICT DO NOTHING`` into ``table`` for the database of ``db`` (a session or its
    connection); chain ``.values(…)``. A row another transaction stored first is left as it is, and no error
    aborts the caller's transaction."""
    name = (db.dialect if isinstance(db, AsyncConnection) else db.bind.dialect).name
    dialect = postgresql if name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()
