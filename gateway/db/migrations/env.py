"""Alembic environment: runs migrations over the gateway's async engine (SQLite or PostgreSQL)."""
import asyncio

from alembic import context
from sqlmodel import SQLModel

import gateway.db.models  # noqa: F401 - registers the tables
from gateway.db.engine import create_engine

config = context.config
MIGRATION_LOCK = 7_340_119  # advisory lock id held while migrating (PostgreSQL)
target_metadata = SQLModel.metadata


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":  # gateway replicas migrating at once (init containers): one at a time
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()


async def _online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), config.attributes.get("schema"))
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_online())
