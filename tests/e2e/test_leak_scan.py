"""Leak scan (issue 12): run the chain end to end through real HTTP, with the relay draining the outbox
into the broker, then look for the detainee's BSN, SKN and name, and for a free-text marker, everywhere
the gateway leaves traces: every log line (gateway, uvicorn and libraries, at DEBUG), every Kafka event on both
topics, the /metrics text, the database (SQLite file and WAL bytes; on PostgreSQL every column of every
table in the test schema) and the audit exports and subject report (pseudonyms, never a BSN or a name).
The payloads and reasons go only to the parties, through the API; nothing else may carry them."""
import asyncio
import json
import logging
import uuid
from pathlib import Path

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.app import create_app
from gateway.broker import free_port
from gateway.services import Services
from tests.conftest import register_demo_organisations, settings_for
from tests.integration.test_events import drain
from tests.scenario import Chain, example

pytestmark = pytest.mark.broker

BSN, SKN, NAME = "999990019", "12345678", "Vries"
MARKER = "LEAKMARKER-" + uuid.uuid4().hex[:12]
NEEDLES = {"bsn": BSN, "skn": SKN, "name": NAME, "marker": MARKER}
LOGGERS = ("brb", "gateway", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def findings(place: str, data: bytes | str) -> list[str]:
    raw = data.encode() if isinstance(data, str) else bytes(data)
    return [f"{place}: {label}" for label, needle in NEEDLES.items() if needle.encode() in raw]


@pytest.fixture
async def leak_services(database, broker):
    svc = Services.from_settings(settings_for(database, kafka_bootstrap_servers=broker))
    yield svc
    await svc.db.dispose()


@pytest.fixture
async def served(leak_services):
    """The app on a loopback port; uvicorn's own loggers propagate, so the scan sees its lines too."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services=leak_services), host="127.0.0.1", port=port,
                                           log_config=None, log_level="debug", access_log=True, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    server.should_exit = True
    await task


async def all_records(bootstrap: str, topic: str) -> list:
    """Every record of a topic, from the beginning to its end offsets now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            await consumer.client.force_metadata_update()
            partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records = []
        deadline = asyncio.get_running_loop().time() + 20
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            assert asyncio.get_running_loop().time() < deadline, f"{topic}: not read to its end within 20 s"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def database_dump(services, database) -> dict[str, bytes]:
    """SQLite: the database file and its WAL, byte for byte. PostgreSQL: every column of every table."""
    url = make_url(database.url)
    if url.get_backend_name() == "sqlite":
        path = Path(url.database)
        return {f"sqlite file {p.name}": p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists()}
    dump: dict[str, bytes] = {}
    async with services.db.read() as session:
        conn = await session.connection()  # raw SQL over every table: the core connection, not the ORM session
        tables = (await conn.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s AND table_type = 'BASE TABLE'"),
            {"s": database.schema})).scalars().all()
        for table in tables:
            rows = (await conn.execute(text(f'SELECT * FROM "{database.schema}"."{table}"'))).mappings().all()
            for column in (rows[0].keys() if rows else ()):
                values = [r[column] for r in rows]
                dump[f"postgresql {table}.{column}"] = b"\n".join(
                    bytes(v) if isinstance(v, (bytes, memoryview)) else json.dumps(v, default=str, ensure_ascii=False).encode()
                    for v in values)
    return dump


async def test_no_identifier_or_free_text_leaks_outside_the_api(served, leak_services, database, broker, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, libraries too (SQLAlchemy then logs its statements)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    client, svc = served, leak_services
    orgs = await register_demo_organisations(svc)
    chain = Chain(client, orgs)
    started = asyncio.get_running_loop().time()

    # the chain: admission, plan, consent, read, a rejection with a reason, release, a withdrawal
    await chain.send(orgs.vught, "detention-notice", ["municipality:0363", orgs.reclassering.oin], example("detention-notice"))
    plan = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], example("dr-plan", version=2), version=2)).json()
    consent = await chain.consent(orgs.vught, categories=["children-family"], recipient_kinds=["municipality"])
    view = (await chain.read(orgs.amsterdam, plan["id"], "aftercare")).json()
    assert view["payload"]["subject"]["bsn"] == BSN and view["payload"]["subject"]["name"]["surname"] == NAME  # it went in
    await chain.read(orgs.vught, plan["id"], "reintegration")
    r = await client.post(f"/api/v1/messages/{plan['id']}/acknowledgements", headers=orgs.amsterdam.headers(),
                          json={"status": "rejected", "reason": f"{MARKER}: plan mist de woonplek bij de zus"})
    assert r.status_code == 201 and MARKER in r.json()["acknowledgementReason"]
    await chain.send(orgs.vught, "release-notice", ["municipality:0363"], example("release-notice"), purpose="aftercare")
    r = await client.post(f"/api/v1/consents/{consent['id']}/withdrawal", headers=orgs.vught.headers(),
                          json={"reason": f"{MARKER}: ingetrokken na gesprek"})
    assert r.status_code == 201

    # what leaves the gateway for auditors
    exports = {}
    for fmt in ("csv", "jsonl"):
        r = await client.get("/api/v1/audit/export", params={"format": fmt}, headers=orgs.inspectorate.headers())
        assert r.status_code == 200 and r.text.count("\n") > 20
        exports[f"audit export {fmt}"] = r.content
    for accept in ("application/json", "text/html"):
        r = await client.post("/api/v1/audit/subject-report", json={"bsn": BSN},
                              headers=orgs.inspectorate.headers(Accept=accept))
        assert r.status_code == 200 and (accept == "text/html" or r.json()["subjectId"] == plan["subjectId"])
        exports[f"subject report {accept}"] = r.content
    metrics = (await client.get("/metrics")).text
    assert "brb_http_requests_total" in metrics

    await drain(svc)
    events = {t: await all_records(broker, t) for t in (svc.settings.events_topic, svc.settings.audit_topic)}
    assert len(events[svc.settings.events_topic]) >= 8 and len(events[svc.settings.audit_topic]) >= 20
    dump = await database_dump(svc, database)

    places: list[tuple[str, bytes | str]] = []
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    places += [(f"log {rec.name}#{i}", formatter.format(rec)) for i, rec in enumerate(caplog.records)]
    for topic, records in events.items():
        places += [(f"kafka {topic}@{r.partition}:{r.offset}",
                    (r.key or b"") + (r.value or b"") + b"".join(k.encode() + v for k, v in r.headers or ())) for r in records]
    places.append(("/metrics", metrics))
    places += list(dump.items()) + list(exports.items())
    assert sum(p.startswith("log uvicorn.access") for p, _ in places) > 10  # the scan saw the access log
    assert findings("control", json.dumps(view)) == ["control: bsn", "control: skn", "control: name"]  # the scan can see

    found = [f for place, data in places for f in findings(place, data)]
    kinds = {"log": 0, "kafka": 0, "database": len(dump), "metrics": 1, "exports": len(exports)}
    kinds["log"] = sum(p.startswith("log ") for p, _ in places)
    kinds["kafka"] = sum(p.startswith("kafka ") for p, _ in places)
    elapsed = asyncio.get_running_loop().time() - started
    print(f"\nleak scan [{database.url.split(':')[0]}]: {len(places)} places scanned "
          f"({', '.join(f'{n} {k}' for k, n in kinds.items())}), {len(found)} findings, {elapsed:.1f} s")
    assert found == [], "\n".join(found)
