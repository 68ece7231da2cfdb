"""In-process micro figures of the gateway (the app through httpx's ASGI transport, no server, no load
generator), each as a ratio against a baseline measured in the same run. For where the time of one
operation goes; the user-facing figures are the HTTP benchmark's (bench/benchmark.py, `make bench`).

    make bench-micro                     # SQLite and the loopback broker
    make bench-micro ARGS="--postgres"   # also PostgreSQL (BRB_TEST_POSTGRES_URL or 127.0.0.1:5432/test)

Figures:
  send      POST /api/v1/messages (contract, policy, encryption, one transaction with audit + outbox)
            against an authenticated GET /api/v1/inbox (token check, replay guard, one query)
  read      GET /api/v1/messages/{id} (decrypt, policy again, audit) against the same baseline
  decide    the policy decision for one recipient against validating the payload's contract
  chain     appending audit records to the hash chain against inserting the same rows unchained
  relay     outbox -> Kafka through the relay against producing the same records straight with aiokafka
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table
from sqlalchemy import insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consent import Exchange, decide  # noqa: E402
from contracts import sections_present, validate_payload  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.audit.record import AuditEntry  # noqa: E402
from gateway.broker import LoopbackBroker  # noqa: E402
from gateway.db.migrate import upgrade_async  # noqa: E402
from gateway.db.models import AuditRecord  # noqa: E402
from gateway.outbox.cloudevent import to_kafka  # noqa: E402
from gateway.outbox.relay import Relay, producer_for  # noqa: E402
from gateway.services import Actor, Services  # noqa: E402
from tests.conftest import PG_URL, TestDatabase, register_demo_organisations, settings_for  # noqa: E402
from tests.scenario import example  # noqa: E402

console = Console()
cli = typer.Typer(add_completion=False)


def per_op(seconds: float, n: int) -> float:
    return seconds / n * 1e6  # microseconds


async def timed(label: str, n: int, op) -> float:
    started = time.perf_counter()
    for i in track(range(n), description=label, console=console, transient=True):
        await op(i)
    return per_op(time.perf_counter() - started, n)


async def bench_api(svc: Services, n: int) -> dict[str, tuple[float, float]]:
    orgs = await register_demo_organisations(svc)
    body = {"type": "dr-plan", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"], "payload": example("dr-plan")}
    ids: list[str] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services=svc)), base_url="http://b") as c:
        notice = {"type": "detention-notice", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"],
                  "payload": example("detention-notice")}  # establishes Amsterdam as the competent municipality
        r = await c.post("/api/v1/messages", json=notice, headers=orgs.vught.headers(**{"Idempotency-Key": uuid.uuid4().hex}))
        assert r.status_code == 201, r.text

        async def baseline(_i):
            assert (await c.get("/api/v1/inbox", params={"pageSize": 1}, headers=orgs.amsterdam.headers())).status_code == 200

        async def send(_i):
            r = await c.post("/api/v1/messages", json=body, headers=orgs.vught.headers(**{"Idempotency-Key": uuid.uuid4().hex}))
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])

        async def read(i):
            r = await c.get(f"/api/v1/messages/{ids[i]}", params={"purpose": "aftercare"}, headers=orgs.amsterdam.headers())
            assert r.status_code == 200

        base = await timed("baseline GET /inbox", n, baseline)
        sent = await timed("POST /messages", n, send)
        read_ = await timed("GET /messages/{id}", n, read)
    return {"send": (sent, base), "read": (read_, base)}


def bench_decide(svc: Services, n: int) -> tuple[float, float]:
    payload = example("dr-plan")
    started = time.perf_counter()
    for _ in range(n):
        validate_payload("dr-plan", 1, payload)
    validate = per_op(time.perf_counter() - started, n)
    sections = sections_present("dr-plan", 1, payload)
    ex = Exchange("dji", "municipality", "0" * 20, "dr-plan", "aftercare", "sub-1", sections, datetime.now(timezone.utc),
                  frozenset({"competent-municipality"}))
    started = time.perf_counter()
    for _ in range(n):
        decide(svc.catalogue, ex, [])
    return per_op(time.perf_counter() - started, n), validate


async def bench_chain(svc: Services, n: int) -> tuple[float, float]:
    entries = [AuditEntry("read", "1" * 20, "allow", subject_id="sub-b", purpose="aftercare")] * 100
    rounds = max(1, n // 100)

    async def chained(_i):
        async with svc.unit_of_work(Actor("1" * 20, "bench")) as uow:
            await svc.audit.append(uow.session, entries, trace_id="b", token_id=None, scope=None, now=uow.now)

    plain_seq = [10**9]

    async def unchained(_i):
        async with svc.db.write() as session:
            rows = []
            for e in entries:
                plain_seq[0] += 1
                rows.append({**e.__dict__, "seq": plain_seq[0], "id": uuid.uuid4().hex, "trace_id": "b", "token_id": None, "scope": None,
                             "recorded_at": datetime.now(timezone.utc), "prev_hash": "", "hash": ""})
            await session.exec(insert(AuditRecord.__table__), params=rows)

    plain = await timed("baseline plain insert x100", rounds, unchained) / 100
    chain = await timed("chained append x100", rounds, chained) / 100
    return chain, plain


async def bench_relay(svc: Services, bootstrap: str, n: int) -> tuple[float, float]:
    relay = Relay(svc)
    while await relay.publish_once():  # what earlier figures left in the outbox is not part of this one
        pass
    async with svc.unit_of_work(Actor("1" * 20, "bench")) as uow:
        for i in range(n):
            uow.emit("message.read", f"sub-{i % 50}", {"messageId": str(uuid.uuid4()), "parties": ["1" * 20]})
    started, published = time.perf_counter(), 0
    while batch := await relay.publish_once():
        published += batch
    relay_us = per_op(time.perf_counter() - started, published)
    await relay._drop_producer()

    async with svc.db.read() as s:
        from sqlmodel import select

        from gateway.db.models import OutboxEvent

        rows_value = [to_kafka(r) for r in (await s.exec(select(OutboxEvent).where(OutboxEvent.type == "message.read").limit(n))).all()]
    producer = producer_for(bootstrap)
    await producer.start()
    started = time.perf_counter()
    futures = [await producer.send("bench.raw", value=m.value, key=m.key) for m in rows_value]
    await asyncio.gather(*futures)
    raw_us = per_op(time.perf_counter() - started, len(rows_value))
    await producer.stop()
    return relay_us, raw_us


async def run(n: int, postgres: bool) -> None:
    broker = LoopbackBroker().start()
    table = Table(title=f"Berichtenbox Re-integratie benchmark (n={n})")
    for col in ("backend", "figure", "µs/op", "baseline µs/op", "ratio"):
        table.add_column(col, justify="right" if col != "figure" else "left")
    backends = [("sqlite", None)] + ([("postgresql", PG_URL)] if postgres else [])
    try:
        for name, url in backends:
            tmp = tempfile.mkdtemp()
            schema = None
            if url is None:
                url = f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
                await upgrade_async(url)
            else:
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                from gateway.db.engine import create_engine

                admin = create_engine(url)
                async with admin.begin() as conn:
                    await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                await upgrade_async(url, schema)
            svc = Services.from_settings(settings_for(TestDatabase(url, schema), kafka_bootstrap_servers=broker.bootstrap))
            try:
                figures = await bench_api(svc, n)
                figures["decide"] = bench_decide(svc, n * 10)
                figures["chain"] = await bench_chain(svc, n * 10)
                figures["relay"] = await bench_relay(svc, broker.bootstrap, n * 5)
                for figure, (value, base) in figures.items():
                    table.add_row(name, figure, f"{value:,.0f}", f"{base:,.0f}", f"{value / base:.2f}×")
            finally:
                await svc.db.dispose()
                if schema:
                    async with admin.begin() as conn:
                        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                    await admin.dispose()
    finally:
        broker.stop()
    console.print(table)


@cli.command()
def main(n: int = typer.Option(200, help="operations per API figure"), postgres: bool = typer.Option(False, help="also PostgreSQL")) -> None:
    asyncio.run(run(n, postgres))


if __name__ == "__main__":
    cli()
