"""Migration 0005 numbers the deliveries already stored: per recipient 1, 2, 3 ... in the inbox's former
order (time, then id), and each organisation's counter goes on from its last number — on a real SQLite
file and a real PostgreSQL schema, upgraded from 0004 as `brb db upgrade` would."""
from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.db.migrate import upgrade
from tests.conftest import PG_URL

T0, T1 = datetime(2026, 11, 2, 9, tzinfo=timezone.utc), datetime(2026, 11, 3, 9, tzinfo=timezone.utc)
VUGHT = "00000001003214345000"
AMSTERDAM, ROTTERDAM, UTRECHT = "00000001009990363000", "00000001009990599000", "00000001009990344000"
# (id, recipient, created_at) — ids out of time order, as rows stored across two sends would be
STORED = [(1, AMSTERDAM, T1), (2, AMSTERDAM, T0), (3, AMSTERDAM, T1), (4, ROTTERDAM, T0)]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def at_0004(request, tmp_path):
    """A database at revision 0004 with three organisations and four deliveries; yields (engine, table prefix)."""
    if request.param == "sqlite":
        url, schema = f"sqlite+aiosqlite:///{tmp_path / 'upgrade.db'}", None
    else:
        url, schema = PG_URL, f"m0005_{uuid.uuid4().hex[:8]}"
    engine = create_async_engine(url)
    prefix = f'"{schema}".' if schema else ""
    if schema:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await asyncio.to_thread(upgrade, url, schema, "0004")
    async with engine.begin() as conn:
        for oin, cbs in ((AMSTERDAM, "0363"), (ROTTERDAM, "0599"), (UTRECHT, "0344")):
            await conn.execute(text(f"INSERT INTO {prefix}organisations (oin, name, kind, cbs_code, active, created_at) "
                                    "VALUES (:oin, 'x', 'municipality', :cbs, true, :at)"), {"oin": oin, "cbs": cbs, "at": T0})
        for ident, oin, at in STORED:
            message = str(uuid.uuid4())
            await conn.execute(text(f"INSERT INTO {prefix}messages (id, type, version, sender_oin, subject_id, purpose, trace_id, "
                                    "created_at) VALUES (:m, 'dr-plan', 1, :vught, 'p', 'reintegration', 't', :at)"),
                               {"m": message, "vught": VUGHT, "at": at})
            await conn.execute(text(f"INSERT INTO {prefix}deliveries (id, message_id, recipient_oin, recipient_kind, status, decision, "
                                    "created_at) VALUES (:id, :m, :oin, 'municipality', 'delivered', '{}', :at)"),
                               {"id": ident, "m": message, "oin": oin, "at": at})
    try:
        yield url, schema, engine, prefix
    finally:
        if schema:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def test_upgrading_numbers_stored_deliveries_in_the_former_inbox_order(at_0004):
    url, schema, engine, prefix = at_0004
    await asyncio.to_thread(upgrade, url, schema, "0005")
    async with engine.connect() as conn:
        positions = dict((await conn.execute(text(f"SELECT id, inbox_position FROM {prefix}deliveries"))).all())
        counters = dict((await conn.execute(text(f"SELECT oin, inbox_position FROM {prefix}organisations"))).all())
    assert positions == {2: 1, 1: 2, 3: 3, 4: 1}  # Amsterdam: T0 first, then T1 by id; Rotterdam its own 1
    assert counters == {AMSTERDAM: 3, ROTTERDAM: 1, UTRECHT: 0}  # the next send to Amsterdam gets 4

    with pytest.raises(IntegrityError):  # one position, one delivery, per recipient
        async with engine.begin() as conn:
            await conn.execute(text(f"UPDATE {prefix}deliveries SET inbox_position = 3 WHERE id = 2"))
