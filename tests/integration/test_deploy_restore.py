"""deploy/README.md's restore test, done for real: pg_dump a populated schema with the installed server's
binaries, pg_restore it into a fresh database, and check there what an operator checks after a restore:
the audit chain verifies and a sealed payload opens (same keys, new database)."""
import subprocess
import uuid

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from gateway.app import create_app
from gateway.audit.queries import verify_chain
from gateway.services import Services
from tests.conftest import PG_URL, settings_for
from tests.scenario import BSN, Chain

pytestmark = pytest.mark.postgres


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.set(database=database or parsed.database).render_as_string(hide_password=False)


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
async def test_a_pg_dump_restores_into_a_fresh_database_with_the_chain_intact_and_payloads_readable(
        client, orgs, services, stay, database, tmp_path):
    chain = Chain(client, orgs)
    sent = [(await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"] for _ in range(3)]
    assert (await chain.read(orgs.amsterdam, sent[0], "aftercare")).status_code == 200  # an audited read too
    before = await verify_chain(services)
    assert before.intact and before.checked >= 4

    dump = tmp_path / "brb.dump"
    subprocess.run(["pg_dump", "--format=custom", "--no-owner", f"--schema={database.schema}", f"--file={dump}",
                    _dsn(PG_URL)], check=True, capture_output=True)
    fresh = f"brb_restore_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_dsn(PG_URL))
    await admin.execute(f'CREATE DATABASE "{fresh}"')
    restored = None
    try:
        subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={_dsn(PG_URL, fresh)}", str(dump)],
                       check=True, capture_output=True)
        url = make_url(database.url).set(database=fresh).render_as_string(hide_password=False)
        restored = Services.from_settings(settings_for(database, database_url=url))
        after = await verify_chain(restored)
        assert after.intact, after.reason
        assert (after.checked, after.last_seq) == (before.checked, before.last_seq)

        app = create_app(services=restored)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
            for mid in sent:
                view = (await Chain(c, orgs).read(orgs.amsterdam, mid, "aftercare")).json()
                assert view["payload"]["subject"]["bsn"] == BSN  # decrypted with the same key ring
        assert (await verify_chain(restored)).intact  # the reads after the restore extend the chain
    finally:
        if restored is not None:
            await restored.db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')
        await admin.close()
