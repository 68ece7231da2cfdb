"""deploy/k8s runs the migration as an init container of every gateway replica: replicas that start
together must migrate one at a time (an advisory lock in the Alembic environment), not race."""
import asyncio
import os
import sys
import uuid

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL

pytestmark = pytest.mark.postgres


async def test_replicas_migrating_at_once_all_succeed_and_leave_one_schema_at_head():
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    dsn = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        env = {**os.environ, "BRB_DATABASE_URL": PG_URL, "BRB_DATABASE_SCHEMA": schema}
        brb = os.path.join(os.path.dirname(sys.executable), "brb")
        procs = [await asyncio.create_subprocess_exec(brb, "db", "upgrade", env=env, stdout=asyncio.subprocess.PIPE,
                                                      stderr=asyncio.subprocess.PIPE) for _ in range(4)]
        results = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, [err.decode()[-2000:] for _out, err in results]
        versions = await admin.fetch(f'SELECT version_num FROM "{schema}".alembic_version')
        assert len(versions) == 1
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
