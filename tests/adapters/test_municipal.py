"""The municipal connector (adapters/municipal) against the real gateway (live_server: real HTTP), the real
broker (the gateway's relay publishes the outbox to it) and real SQLite files: Vught sends, Amsterdam's
connector reads, stores, forwards and acknowledges; withdrawal, purge, a SIGKILL and a drop folder."""
import asyncio
import json
import os
import signal
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlmodel import select

from brb_client import GatewayClient, Identity
from adapters.municipal.consumer import Config, Connector
from adapters.municipal.forwarder import CaseSystem
from adapters.municipal.store import Store
from gateway.broker import free_port
from gateway.db.models import AuditRecord
from gateway.exchange.retention import purge_due
from gateway.outbox.relay import Relay
from gateway.services import Services
from tests.conftest import eventually, settings_for
from tests.scenario import BSN, Chain, example, read_body, seed_stay, with_subject

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_REPORT = ROOT / "adapters" / "municipal" / "examples" / "aftercare-report.json"
SCOPE = "messages:read messages:send"
pytestmark = [pytest.mark.broker, pytest.mark.parametrize("database", ["sqlite"], indirect=True)]


@pytest.fixture
async def services(database, broker):
    """The gateway's services with the broker behind them (live_server serves these)."""
    svc = Services.from_settings(settings_for(database, kafka_bootstrap_servers=broker, relay_lease_seconds=3.0))
    yield svc
    await svc.db.dispose()


@pytest.fixture
async def relay(services):
    """The gateway's outbox relay, putting events on ``<prefix>.events`` as in production."""
    stop = asyncio.Event()
    task = asyncio.create_task(Relay(services).run(stop))
    yield
    stop.set()
    await asyncio.wait_for(task, 15)


@pytest.fixture
async def http(live_server):
    async with httpx.AsyncClient(base_url=live_server, timeout=30) as c:
        yield c


@pytest.fixture
def key_file(tmp_path, orgs) -> Path:
    path = tmp_path / "amsterdam.jwk.json"
    path.write_text(json.dumps(orgs.amsterdam.private_jwk))
    return path


class Running:
    """The connector as an asyncio task of the test."""

    def __init__(self, connector: Connector, gateway: GatewayClient):
        self.connector, self.gateway, self.stop = connector, gateway, asyncio.Event()
        self.task = asyncio.create_task(connector.run(self.stop))

    async def close(self):
        self.stop.set()
        await asyncio.wait_for(self.task, 15)
        await self.gateway.aclose()
        if self.connector.case_system is not None:
            await self.connector.case_system.aclose()


@pytest.fixture
async def start(live_server, services, broker, orgs, tmp_path, relay):
    started: list[Running] = []

    def make(case_system: str | None = None, drop: Path | None = None) -> Running:
        config = Config(oin=orgs.amsterdam.oin, bootstrap=broker, topic_prefix=services.settings.kafka_topic_prefix,
                        drop=drop, sweep_seconds=0.2, session_timeout_ms=6000,
                        group_id=f"municipal-{orgs.amsterdam.oin}-{services.settings.kafka_topic_prefix}")
        gw = GatewayClient(live_server, Identity(orgs.amsterdam.oin, orgs.amsterdam.private_jwk, SCOPE, orgs.amsterdam.audience))
        running = Running(Connector(config, gw, Store(tmp_path / "municipal.sqlite3"), CaseSystem(case_system) if case_system else None), gw)
        started.append(running)
        return running

    yield make
    for running in started:
        await running.close()
        running.connector.store.close()


def local(tmp_path) -> Store:
    return Store(tmp_path / "municipal.sqlite3")


async def sent_acknowledgements(http, orgs) -> dict[str, tuple[str, str | None]]:
    """Vught's sent list as Vught sees it: message id -> (Amsterdam's acknowledgement, reason)."""
    r = await http.get("/api/v1/messages", headers=orgs.vught.headers(), params={"pageSize": 200})
    assert r.status_code == 200, r.text
    return {m["id"]: (m["deliveries"][0]["acknowledgement"], m["deliveries"][0].get("acknowledgementReason"))
            for m in r.json()["items"]}


async def audit(services, oin: str) -> list[AuditRecord]:
    async with services.db.read() as s:
        return list((await s.exec(select(AuditRecord).where(AuditRecord.actor_oin == oin))).all())


async def test_dr_plans_from_vught_are_stored_and_accepted_once_each(http, orgs, services, start, tmp_path):
    await seed_stay(services)
    chain = Chain(http, orgs)
    ids = [(await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], version=2)).json()["id"] for _ in range(3)]
    start()
    store = local(tmp_path)

    async def all_accepted():
        acks = await sent_acknowledgements(http, orgs)
        return all(acks.get(i, (None,))[0] == "accepted" for i in ids) and acks
    await eventually(all_accepted, timeout=20)

    for message_id in ids:
        m = store.message(message_id)
        assert m["state"] == "accepted" and m["type"] == "dr-plan" and m["purpose"] == "aftercare"
        assert m["payload"]["subject"]["bsn"] == BSN and "housing" in m["payload"]["sections"]
        assert "health" not in m["payload"]["sections"]  # never reaches a college: the gateway withheld it
    records = await audit(services, orgs.amsterdam.oin)
    for message_id in ids:
        mine = [(r.activity, r.outcome) for r in records if r.message_id == message_id]
        assert [a for a, _ in mine].count("read") == 1, mine
        assert mine.count(("acknowledge", "received")) == 1 and mine.count(("acknowledge", "accepted")) == 1, mine
    assert store.status()["messages"] == {"accepted": 3}
    store.close()


async def test_the_case_system_answer_decides_accepted_or_rejected(http, orgs, services, start, tmp_path):
    await seed_stay(services)
    received: list[dict] = []

    async def case_system(scope, receive, send):  # a minimal ASGI case system: rejects a plan without a debts section
        body = await read_body(receive)
        doc = json.loads(body)
        received.append({"doc": doc, "key": dict(scope["headers"]).get(b"idempotency-key", b"").decode()})
        sections = (doc.get("payload") or {}).get("sections", {})
        answer = {"status": "accepted"} if "debts" in sections else {"status": "rejected", "reason": "geen schuldensectie"}
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(case_system, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    server_task = asyncio.create_task(server.serve())
    try:
        chain = Chain(http, orgs)
        full = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], version=2)).json()["id"]
        minimal = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"],
                                    with_subject(example("dr-plan", "valid-minimal", 2)), version=2)).json()["id"]
        start(case_system=f"http://127.0.0.1:{port}/cases")

        async def settled():
            acks = await sent_acknowledgements(http, orgs)
            return acks.get(full, (None,))[0] and acks.get(minimal, (None,))[0] in ("accepted", "rejected") and acks
        acks = await eventually(settled, timeout=20)
        assert acks[full] == ("accepted", None)
        assert acks[minimal] == ("rejected", "geen schuldensectie")
        assert sorted(r["key"] for r in received) == sorted([full, minimal])
        assert all(r["doc"]["action"] == "deliver" and r["doc"]["payload"]["subject"]["bsn"] == BSN for r in received)
        store = local(tmp_path)
        assert store.message(minimal)["state"] == "rejected" and store.message(full)["state"] == "accepted"
        store.close()
    finally:
        server.should_exit = True
        await server_task


async def test_consent_withdrawal_and_retention_purge_remove_the_local_copy(http, orgs, services, start, tmp_path):
    await seed_stay(services)
    chain = Chain(http, orgs)
    consent = await chain.consent(orgs.vught, categories=["children-family"], recipient_kinds=["municipality"])
    plan = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], version=2)).json()["id"]
    start()
    store = local(tmp_path)

    async def stored(state="accepted"):
        m = store.message(plan)
        return m if m and m["state"] == state else None
    m = await eventually(stored)
    assert "children-family" in m["payload"]["sections"]  # opened by the consent

    await chain.withdraw(orgs.vught, consent["id"])

    async def redacted():
        m = store.message(plan)
        return m if "children-family" not in m["payload"]["sections"] else None
    m = await eventually(redacted)
    assert "housing" in m["payload"]["sections"] and m["deleted_why"].startswith("consent.withdrawn")

    # retention: six months after the release date, the gateway purges Amsterdam's copy, the connector its own
    release = with_subject(example("release-notice"))
    await chain.send(orgs.vught, "release-notice", ["municipality:0363"], release, purpose="aftercare")
    services.clock.advance(timedelta(days=3 * 366))
    assert await purge_due(services) >= 2
    m = await eventually(lambda: stored("purged"))
    assert m["payload"] is None and m["deleted_why"] == "retention.purged"
    assert BSN not in json.dumps(store.status(50), default=str)
    store.close()


async def test_killed_mid_stream_and_restarted_it_handles_every_delivery_exactly_once(
        http, orgs, services, live_server, broker, key_file, tmp_path, relay):
    await seed_stay(services)
    chain = Chain(http, orgs)
    n = 24
    ids = [(await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], version=2)).json()["id"] for _ in range(n)]
    store_file = tmp_path / "killed.sqlite3"
    argv = [sys.executable, "-m", "adapters.municipal.cli", "run", "--gateway", live_server, "--oin", orgs.amsterdam.oin,
            "--key", str(key_file), "--bootstrap", broker, "--topic-prefix", services.settings.kafka_topic_prefix,
            "--store", str(store_file), "--sweep-seconds", "0.2", "--session-timeout-ms", "6000",
            "--group", f"municipal-{orgs.amsterdam.oin}-{services.settings.kafka_topic_prefix}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    async def count_stored():
        if not store_file.exists():
            return 0
        s = Store(store_file)
        try:
            return sum(s.status()["messages"].values())
        finally:
            s.close()

    first = await asyncio.create_subprocess_exec(*argv, env=env, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT)
    try:
        await eventually(lambda: _at_least(count_stored, 5), timeout=25, interval=0.01)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    at_kill = await count_stored()
    print(f"killed after {at_kill} of {n} deliveries stored")
    assert at_kill < n, "the connector finished before the kill; send more"

    second = await asyncio.create_subprocess_exec(*argv, env=env, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT)
    try:
        async def all_accepted():
            acks = await sent_acknowledgements(http, orgs)
            return all(acks.get(i, (None,))[0] == "accepted" for i in ids)
        await eventually(all_accepted, timeout=25)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 15)

    s = Store(store_file)
    try:
        assert s.status()["messages"] == {"accepted": n}
        assert all(s.message(i)["payload"]["subject"]["bsn"] == BSN for i in ids)
    finally:
        s.close()
    records = [r for r in await audit(services, orgs.amsterdam.oin) if r.message_id in ids]
    for message_id in ids:
        mine = [(r.activity, r.outcome) for r in records if r.message_id == message_id]
        assert [a for a, _ in mine].count("read") == 1, mine  # read once, across the kill
        assert mine.count(("acknowledge", "accepted")) == 1, mine
        assert mine.count(("acknowledge", "received")) <= 1, mine  # at most once: skipped if the kill hit mid-call


async def _at_least(count, n):
    return (await count()) >= n


async def test_an_aftercare_report_dropped_in_the_folder_is_sent_once(http, orgs, services, start, tmp_path, key_file, live_server):
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "report-1.json").write_text(EXAMPLE_REPORT.read_text())
    (drop / "broken.json").write_text('{"recipients": ["00000001001234567000"], "payload": {"releaseDate": "x"}}')
    start(drop=drop)

    await eventually(lambda: _done(drop / "done" / "report-1.json"), timeout=20)
    await eventually(lambda: _done(drop / "failed" / "broken.json"))
    assert "not a valid aftercare-report" in (drop / "failed" / "broken.json.error.txt").read_text()

    # the same report again: in the folder, and through the CLI — still one message at the gateway
    (drop / "again.json").write_text(EXAMPLE_REPORT.read_text())
    await eventually(lambda: _done(drop / "done" / "again.json"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.municipal.cli", "report", str(EXAMPLE_REPORT), "--gateway", live_server,
        "--oin", orgs.amsterdam.oin, "--key", str(key_file), "--store", str(tmp_path / "cli.sqlite3"),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 25)
    assert proc.returncode == 0, err.decode()
    cli_receipt = json.loads(out)

    r = await http.get("/api/v1/inbox", headers=orgs.vught.headers(), params={"type": "aftercare-report"})
    reports = [m for m in r.json()["items"] if m["type"] == "aftercare-report"]
    assert [m["id"] for m in reports] == [cli_receipt["id"]]
    probation = await http.get("/api/v1/inbox", headers=orgs.reclassering.headers())
    assert [m["id"] for m in probation.json()["items"] if m["type"] == "aftercare-report"] == [cli_receipt["id"]]
    store = local(tmp_path)
    assert store.status()["reports"] == {"sent": 1, "failed": 1}
    store.close()


async def _done(path: Path):
    return path.exists()



