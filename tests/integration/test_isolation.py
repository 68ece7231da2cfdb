"""Each test starts from the migrated template (tests/conftest.py): what one test writes, revokes or
registers, the next one does not see. The first test writes; the second runs after it (pytest keeps the
order of a module) and finds every table as the migration and the demo registration left it."""
from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlmodel import SQLModel

import gateway.db.models  # noqa: F401 - registers the tables
from gateway.audit.chain import GENESIS
from gateway.auth.mint import mint, new_key_pair
from gateway.db.migrate import alembic_config
from tests.scenario import EMPTY_INBOX, Chain, problem

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
TABLES = sorted(SQLModel.metadata.tables)
UTRECHT = {"oin": "00000001009990344000", "name": "Gemeente Utrecht (nazorg)", "kind": "municipality", "cbsCode": "0344"}
SEEN: dict[str, dict] = {}  # backend -> what the writing test left behind


def backend(database) -> str:
    return "postgresql" if database.url.startswith("postgresql") else "sqlite"


async def row_counts(services) -> dict[str, int]:
    async with services.db.read() as session:
        conn = await session.connection()
        return {t: (await conn.execute(text(f'SELECT COUNT(*) FROM "{t}"'))).scalar_one() for t in TABLES}


async def test_a_test_writes_revokes_a_key_and_registers_an_organisation(client, orgs, services, database, stay):
    chain = Chain(client, orgs)
    mid = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    await chain.consent(orgs.vught, categories=["children-family"], recipient_oins=[orgs.amsterdam.oin])
    assert (await client.post("/api/v1/organisations", json=UTRECHT, headers=orgs.operator.headers())).status_code == 201
    utrecht_private, utrecht_public = new_key_pair("utrecht-1")
    r = await client.post(f"/api/v1/organisations/{UTRECHT['oin']}/keys", json={"jwk": utrecht_public}, headers=orgs.operator.headers())
    assert r.status_code == 201
    kid = orgs.vught.private_jwk["kid"]
    r = await client.post(f"/api/v1/organisations/{orgs.vught.oin}/keys/{kid}/revocation", headers=orgs.operator.headers())
    assert r.status_code == 201
    problem(await client.get("/api/v1/inbox", headers=orgs.vught.headers()), 401, "invalid-token")  # revoked, here

    counts = await row_counts(services)
    assert all(counts[t] > 0 for t in ("messages", "deliveries", "audit_records", "outbox", "consents", "subjects",
                                        "stays", "used_tokens", "idempotency_keys")), counts
    async with services.db.read() as session:
        head = (await session.exec(text("SELECT seq FROM audit_head"))).one()[0]
    assert head > 0
    SEEN[backend(database)] = {"schema": database.schema, "url": database.url, "message": mid,
                               "utrecht": utrecht_private, "counts": counts}


async def test_the_next_test_finds_the_template_again(client, orgs, services, database):
    counts = await row_counts(services)
    assert {t: n for t, n in counts.items() if n} == {"organisations": 10, "organisation_keys": 10, "audit_head": 1,
                                                      "registry_version": 1}
    async with services.db.read() as session:
        conn = await session.connection()
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all() == [HEAD]
        assert (await conn.execute(text("SELECT id, seq, hash FROM audit_head"))).all() == [(1, 0, GENESIS)]
        assert (await conn.execute(text("SELECT COUNT(*) FROM organisation_keys WHERE revoked_at IS NOT NULL"))).scalar_one() == 0

    # the key the writing test revoked works, the organisation it registered does not exist
    assert (await client.get("/api/v1/inbox", headers=orgs.vught.headers())).json() == EMPTY_INBOX
    earlier = SEEN.get(backend(database))
    if earlier:
        r = await client.get(f"/api/v1/messages/{earlier['message']}", params={"purpose": "reintegration"},
                             headers=orgs.vught.headers())
        problem(r, 404, "not-found")
        token = mint(earlier["utrecht"], UTRECHT["oin"], orgs.vught.audience, "messages:read")
        problem(await client.get("/api/v1/inbox", headers={"Authorization": f"Bearer {token}"}), 401, "invalid-token")
        if database.schema:  # PostgreSQL: the same schema, emptied; SQLite: a file of its own
            assert database.schema == earlier["schema"]
        else:
            assert database.url != earlier["url"] and Path(earlier["url"].split("///", 1)[1]).exists()

    # ids start where a new database starts them (sequences reset)
    await Chain(client, orgs).admit(orgs.vught)
    async with services.db.read() as session:
        conn = await session.connection()
        assert (await conn.execute(text("SELECT MIN(id) FROM outbox"))).scalar_one() == 1
        assert (await conn.execute(text("SELECT MIN(id) FROM deliveries"))).scalar_one() == 1
        assert (await conn.execute(text("SELECT MIN(seq) FROM audit_records"))).scalar_one() == 1


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_schema_a_test_altered_is_replaced_by_a_freshly_migrated_one(services, database, request):
    templates = request.getfixturevalue("postgres_templates")
    async with services.db.write() as session:
        await session.exec(text("ALTER TABLE outbox RENAME TO outbox_away"))
    await services.db.dispose()
    fresh = await templates.reset(seeded=False)
    assert fresh.schema != database.schema  # the altered one is not handed out again
    from gateway.services import Services
    from tests.conftest import settings_for

    svc = Services.from_settings(settings_for(fresh))
    try:
        counts = await row_counts(svc)
        assert set(counts) == set(TABLES) and {t: n for t, n in counts.items() if n} == {"audit_head": 1, "registry_version": 1}
        async with svc.db.read() as session:
            assert (await session.exec(text("SELECT COUNT(*) FROM outbox"))).one()[0] == 0  # the table is back
    finally:
        await svc.db.dispose()
