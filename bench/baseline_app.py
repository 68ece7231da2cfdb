"""The benchmark's baselines: a bare FastAPI app on the gateway's own database settings, served the same way.

    GET  /ping    a JSON answer, no database (what the framework and server cost)
    POST /insert  one INSERT of a row about the size of a stored message, then COMMIT, through the same
                  engine and write unit as the gateway (``gateway.db.engine``: SQLite WAL, synchronous=FULL,
                  BEGIN IMMEDIATE, one writer per process; PostgreSQL through asyncpg)

Run: ``python bench/baseline_app.py --port N`` with ``BRB_DATABASE_URL`` (and ``BRB_DATABASE_SCHEMA``) set;
uvicorn with an import string and ``factory=True``, log_config=None, access_log=False, proxy_headers=True,
one process, as ``brb serve`` runs the gateway."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

from fastapi import FastAPI, Request
from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, String, Table, insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.db.engine import Database, create_engine  # noqa: E402

log = logging.getLogger("brb.bench.baseline")
ROW_BYTES = int(os.environ.get("BENCH_ROW_BYTES", "2048"))  # about a sealed dr-plan with its wrapped key

metadata = MetaData()
rows = Table(
    "bench_rows", metadata,
    Column("id", String(36), primary_key=True),
    Column("sender_oin", String(20), nullable=False),
    Column("type", String(40), nullable=False),
    Column("version", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def create_app() -> FastAPI:
    """The baseline app; its database comes from BRB_DATABASE_URL / BRB_DATABASE_SCHEMA like the gateway's."""
    url = os.environ["BRB_DATABASE_URL"]
    schema = os.environ.get("BRB_DATABASE_SCHEMA") or None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        db = Database(create_engine(url, schema))
        async with db.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        app.state.db = db
        log.info("bench.baseline.started", extra={"backend": db.engine.dialect.name})
        yield
        await db.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/ping")
    async def ping() -> dict:
        return {"status": "ok"}

    @app.post("/insert", status_code=201)
    async def insert_row(request: Request) -> dict:
        body = await request.body()
        row_id = str(uuid.uuid4())
        payload = (body + secrets.token_bytes(ROW_BYTES))[:ROW_BYTES]
        async with request.app.state.db.write() as session:
            await session.exec(insert(rows).values(
                id=row_id, sender_oin="0" * 20, type="dr-plan", version=1, payload=payload,
                created_at=datetime.now(timezone.utc)))
        return {"id": row_id}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run("bench.baseline_app:create_app", factory=True, host=args.host, port=args.port, log_level="info",
                proxy_headers=True, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
