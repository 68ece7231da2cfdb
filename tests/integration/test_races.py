"""Check-then-write steps that race on PostgreSQL (READ COMMITTED) when several gateway processes hit the
same row at once: a final acknowledgement, a consent withdrawal, the first read, a CBS code. Each round
fires the same kind of request from several OS processes at one instant; exactly one may change the
state, and the audit log and the outbox must say so exactly once. SQLite serialises its writers; the
same rounds run there as well, to keep the answers the same on both backends."""
from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select, update

from gateway.db.models import AuditRecord, Organisation, OutboxEvent
from gateway.problems import PROBLEM_BASE, PROBLEM_JSON
from gateway.statuses import Acknowledgement, DeliveryState
from tests.scenario import Chain
from tests.support.processes import wait_or_kill

ROOT = Path(__file__).resolve().parents[2]
WORKERS, ROUNDS = 3, 10


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str | None
    body: dict | list | None

    @property
    def is_conflict(self) -> bool:
        return (self.status == 409 and (self.content_type or "").startswith(PROBLEM_JSON)
                and self.body["type"] == PROBLEM_BASE + "conflict")


class Gateways:
    """Several gateway processes (tests/support/race_worker.py) against the test's database."""

    def __init__(self, procs: list[asyncio.subprocess.Process], logs: list):
        self.procs, self._logs = procs, logs

    @classmethod
    async def start(cls, services, count: int, log_dir: Path) -> "Gateways":
        settings = services.settings.model_dump(mode="json")
        for secret in ("pseudonym_key", "encryption_keys", "audit_chain_key", "receipt_signing_key"):
            settings[secret] = getattr(services.settings, secret).get_secret_value()
        logs = [(log_dir / f"worker-{i}.log").open("wb") for i in range(count)]
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.race_worker", json.dumps(settings), cwd=ROOT, limit=1 << 22,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log) for log in logs]
        gateways = cls(procs, logs)
        try:
            for p in procs:
                line = await asyncio.wait_for(p.stdout.readline(), 60)
                assert line == b"ready\n", (line, gateways.logs(log_dir))
        except BaseException:
            await gateways.stop()
            raise
        return gateways

    @staticmethod
    def logs(log_dir: Path) -> str:
        return "\n".join(f.read_text(errors="replace")[-2000:] for f in sorted(log_dir.glob("worker-*.log")))

    async def fire(self, requests: list[dict]) -> list[Answer]:
        """Request i goes to process i; all are sent at the same instant, a moment from now."""
        at = time.time() + 0.15
        for p, request in zip(self.procs, requests, strict=True):
            p.stdin.write(json.dumps({**request, "at": at}).encode() + b"\n")
        await asyncio.gather(*(p.stdin.drain() for p in self.procs))
        lines = await asyncio.wait_for(asyncio.gather(*(p.stdout.readline() for p in self.procs)), 60)
        answers = [json.loads(line) for line in lines]
        return [Answer(a["status"], a["contentType"], a["body"]) for a in answers]

    async def stop(self) -> None:
        for p in self.procs:
            p.stdin.close()
        await wait_or_kill(self.procs)
        for log in self._logs:
            log.close()


@pytest.fixture
async def gateways(services, tmp_path):
    g = await Gateways.start(services, WORKERS, tmp_path)
    yield g
    await g.stop()


def call(org, method: str, path: str, *, scopes: str | None = None, **rest) -> dict:
    """One request for a worker, with a fresh token (a token is single use)."""
    return {"method": method, "path": path, "headers": org.headers(scopes), **rest}


async def audit_records(services, activity: str) -> list[AuditRecord]:
    async with services.db.read() as s:
        return list((await s.exec(select(AuditRecord).where(AuditRecord.activity == activity))).all())


async def events(services, event_type: str) -> list[dict]:
    async with services.db.read() as s:
        return [e.data for e in (await s.exec(select(OutboxEvent).where(OutboxEvent.type == event_type))).all()]


def one_winner(answers: list[Answer], success: int) -> Answer | None:
    """The one answer that changed the state, when all the others are the conflict a later request gets."""
    winners = [a for a in answers if a.status == success]
    if len(winners) == 1 and all(a.is_conflict for a in answers if a is not winners[0]):
        return winners[0]
    return None


def verdict(faults: list[str]) -> str:
    return f"{len(faults)} of {ROUNDS} rounds raced: " + "; ".join(faults)


async def test_of_concurrent_final_acknowledgements_exactly_one_wins(client, orgs, services, stay, gateways):
    chain = Chain(client, orgs)
    rounds = []
    for _ in range(ROUNDS):
        mid = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
        verdicts = [Acknowledgement.ACCEPTED, Acknowledgement.REJECTED, Acknowledgement.ACCEPTED][:WORKERS]
        rounds.append((mid, await gateways.fire([
            call(orgs.amsterdam, "POST", f"/api/v1/messages/{mid}/acknowledgements",
                 json={"status": v, **({"reason": "Niet ingeschreven in Amsterdam"} if v == Acknowledgement.REJECTED else {})})
            for v in verdicts])))

    records, acknowledged = await audit_records(services, "acknowledge"), await events(services, "message.acknowledged")
    faults = []
    for mid, answers in rounds:
        winner = one_winner(answers, 201)
        said = winner.body["acknowledgement"] if winner else None
        seen = (await client.get(f"/api/v1/messages/{mid}/deliveries", headers=orgs.vught.headers())).json()[0]
        outcome = ([a.status for a in answers], [r.outcome for r in records if r.message_id == mid],
                   [e["acknowledgement"] for e in acknowledged if e["messageId"] == mid], seen["status"], seen["acknowledgement"])
        if winner is None or outcome[1:] != ([said], [said], said, said):
            faults.append(f"{mid}: {outcome}")
    assert faults == [], verdict(faults)


async def test_of_concurrent_withdrawals_exactly_one_records_it(client, orgs, services, stay, gateways):
    chain = Chain(client, orgs)
    rounds = []
    for _ in range(ROUNDS):
        cid = (await chain.consent(orgs.vught, categories=["children-family"], recipient_kinds=["municipality"]))["id"]
        rounds.append((cid, await gateways.fire([
            call(orgs.vught, "POST", f"/api/v1/consents/{cid}/withdrawal", json={"reason": f"ingetrokken ({i})"})
            for i in range(WORKERS)])))

    records, withdrawn = await audit_records(services, "consent-withdraw"), await events(services, "consent.withdrawn")
    listed = {c["id"]: c for c in (await client.get("/api/v1/consents", params={"subjectId": stay},
                                                    headers=orgs.vught.headers())).json()["items"]}
    faults = []
    for cid, answers in rounds:  # the losers get what a second withdrawal after it gets: 409 conflict
        winner = one_winner(answers, 201)
        outcome = ([a.status for a in answers], len([r for r in records if cid in (r.detail or "")]),
                   len([e for e in withdrawn if e["consentId"] == cid]), listed[cid]["withdrawnAt"])
        if winner is None or outcome[1:] != (1, 1, winner.body["withdrawnAt"]):
            faults.append(f"{cid}: {outcome}")
    assert faults == [], verdict(faults)


async def test_concurrent_first_reads_tell_the_sender_once(client, orgs, services, stay, gateways):
    chain = Chain(client, orgs)
    rounds = []
    for _ in range(ROUNDS):
        mid = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
        rounds.append((mid, await gateways.fire([
            call(orgs.amsterdam, "GET", f"/api/v1/messages/{mid}", params={"purpose": "aftercare"}) for _ in range(WORKERS)])))

    reads, told = await audit_records(services, "read"), await events(services, "message.read")
    faults = []
    for mid, answers in rounds:
        seen = (await client.get(f"/api/v1/messages/{mid}/deliveries", headers=orgs.vught.headers())).json()[0]
        outcome = ([a.status for a in answers],
                   len([r for r in reads if r.message_id == mid and r.actor_oin == orgs.amsterdam.oin]),  # every read logged
                   len([e for e in told if e["messageId"] == mid]),  # the sender told once
                   seen["status"], bool(seen["firstReadAt"]))
        if outcome != ([200] * WORKERS, WORKERS, 1, DeliveryState.READ, True):
            faults.append(f"{mid}: {outcome}")
    assert faults == [], verdict(faults)


async def test_of_concurrent_registrations_of_one_cbs_code_exactly_one_is_registered(client, orgs, gateways):
    rounds = []
    for n in range(ROUNDS):
        kind, code = ("municipality", "mayor")[n % 2], f"{7000 + n:04d}"
        rounds.append((f"{kind}:{code}", await gateways.fire([
            call(orgs.operator, "POST", "/api/v1/organisations", json={
                "oin": f"0000000170{n:04d}{i:06d}", "name": f"Gemeente {code} ({i})", "kind": kind, "cbsCode": code})
            for i in range(WORKERS)])))

    registered = (await client.get("/api/v1/organisations", headers=orgs.operator.headers())).json()["items"]
    faults = []
    for key, answers in rounds:
        winner = one_winner(answers, 201)
        holders = [o["oin"] for o in registered if f"{o['kind']}:{o['cbsCode']}" == key and o["active"]]
        if winner is None or holders != [winner.body["oin"]]:
            faults.append(f"{key}: {[a.status for a in answers]} held by {holders}")
    assert faults == [], verdict(faults)


async def test_a_cbs_code_is_free_again_once_its_organisation_is_inactive(client, orgs, services):
    """The database itself refuses a second active holder of a code (whoever writes the row), and only an active one."""
    body = {"oin": "00000001009990363001", "name": "Gemeente Amsterdam (tweede)", "kind": "municipality", "cbsCode": "0363"}
    r = await client.post("/api/v1/organisations", json=body, headers=orgs.operator.headers())
    assert r.status_code == 409 and r.json()["type"] == PROBLEM_BASE + "conflict" and orgs.amsterdam.oin in r.json()["detail"]

    with pytest.raises(IntegrityError):  # past the API's own check: the index answers
        async with services.db.write() as s:
            s.add(Organisation(oin=body["oin"], name=body["name"], kind="municipality", cbs_code="0363",
                               created_at=services.clock.now()))

    async with services.db.write() as s:
        await s.exec(update(Organisation).where(Organisation.oin == orgs.amsterdam.oin).values(active=False))
    r = await client.post("/api/v1/organisations", json=body, headers=orgs.operator.headers())
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/organisations", json={**body, "oin": "00000001009990363002"}, headers=orgs.operator.headers())
    assert r.status_code == 409 and body["oin"] in r.json()["detail"]


async def test_two_purge_jobs_at_once_purge_each_copy_once(client, orgs, services, stay):
    """Two retention jobs (two CronJob pods, or the loop and `brb retention --once`) overlap: each due copy
    is purged, audited and announced exactly once (SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL)."""
    from datetime import timedelta

    from gateway.exchange.retention import purge_due
    from gateway.services import Services

    chain = Chain(client, orgs)
    sent = {(await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"] for _ in range(12)}
    services.clock.advance(timedelta(days=400))  # past the municipal copy's retention without a release date
    other = Services.from_settings(services.settings)
    other.clock = services.clock
    try:
        counts = await asyncio.gather(purge_due(services, batch=2), purge_due(other, batch=2))
    finally:
        await other.db.dispose()
    async with services.db.read() as s:
        audited = (await s.exec(select(AuditRecord.message_id).where(
            AuditRecord.activity == "purge", AuditRecord.counterparty_oin == orgs.amsterdam.oin))).all()
        told = (await s.exec(select(OutboxEvent.data).where(OutboxEvent.type == "retention.purged"))).all()
    assert sorted(audited) == sorted(sent), "each municipal copy is audited as purged exactly once"
    assert sorted(e["messageId"] for e in told) == sorted(sent), "each purge is announced exactly once"
    assert sum(counts) == len(sent), counts
