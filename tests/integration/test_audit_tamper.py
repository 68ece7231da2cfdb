"""Tamper evidence of the audit log, anchored outside the database by signed checkpoints (issue 12, item 3).

A history of real API sends is checkpointed, then each tampering is applied to the stored chain (or the
checkpoint file), verified through ``GET /api/v1/audit/verify``, and undone before the next one."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, insert, text
from sqlmodel import col, select

from gateway.app import create_app
from gateway.audit.chain import GENESIS
from gateway.audit.checkpoint import (
    CheckpointRefused,
    latest_checkpoint,
    read_checkpoints,
    write_checkpoint,
)
from gateway.db.models import AuditHead, AuditRecord, OutboxEvent
from gateway.services import Services
from tests.conftest import register_demo_organisations, settings_env, settings_for
from tests.scenario import BSN, Chain, seed_stay

ROOT = Path(__file__).resolve().parents[2]
CONTENT = ("trace_id", "activity", "actor_oin", "counterparty_oin", "token_id", "scope", "subject_id", "message_id",
           "purpose", "legal_basis", "rule", "outcome", "detail", "recorded_at")


class World:
    """Services with a checkpoint file, the app's client and the demo organisations."""

    def __init__(self, services: Services, client: httpx.AsyncClient, orgs):
        self.services, self.client, self.orgs = services, client, orgs
        self.file = Path(services.settings.audit_checkpoint_file)

    async def history(self) -> None:
        """One send to Amsterdam and its read: nine audit records."""
        chain = Chain(self.client, self.orgs)
        mid = (await chain.send(self.orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
        await chain.read(self.orgs.amsterdam, mid, "aftercare")

    async def verify(self, **params) -> dict:
        r = await self.client.get("/api/v1/audit/verify", params=params, headers=self.orgs.inspectorate.headers())
        assert r.status_code == 200, r.text
        return r.json()

    async def sql(self, *statements: str, **params) -> None:
        async with self.services.db.write() as s:
            for statement in statements:
                await s.exec(text(statement), params=params)

    async def record(self, seq: int) -> AuditRecord:
        async with self.services.db.read() as s:
            return await s.get(AuditRecord, seq)

    async def snapshot(self) -> tuple[list[dict], list[dict], bytes]:
        async with self.services.db.read() as s:
            records = [r.model_dump() for r in (await s.exec(select(AuditRecord).order_by(col(AuditRecord.seq)))).all()]
            heads = [h.model_dump() for h in (await s.exec(select(AuditHead))).all()]
        return records, heads, self.file.read_bytes()

    async def restore(self, snap: tuple[list[dict], list[dict], bytes]) -> None:
        records, heads, file = snap
        async with self.services.db.write() as s:
            await s.exec(delete(AuditRecord))
            await s.exec(delete(AuditHead))
            await s.exec(insert(AuditRecord.__table__), params=records)
            await s.exec(insert(AuditHead.__table__), params=heads)
        self.file.write_bytes(file)


@pytest.fixture
async def world(database, tmp_path):
    services = Services.from_settings(settings_for(database, audit_checkpoint_file=str(tmp_path / "anchor" / "cp.jsonl")))
    try:
        orgs = await register_demo_organisations(services)
        await seed_stay(services)
        app = create_app(services=services)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield World(services, client, orgs)
    finally:
        await services.db.dispose()


async def checkpointed_history(w: World) -> None:
    """Records 1..9, a checkpoint at 9, records 10..18, a checkpoint at 18."""
    await w.history()
    assert (await write_checkpoint(w.services)).seq == 9
    await w.history()
    assert (await write_checkpoint(w.services)).seq == 18


# --- the tamperings: each changes the stored chain (or the checkpoint file) the way an attacker with write
# --- access to the database (but without the chain key) could; `expect` is a fragment of the reason.

async def edit_a_field(w: World) -> None:
    await w.sql("UPDATE audit_records SET purpose = 'public-order' WHERE seq = 3")


async def delete_a_middle_record(w: World) -> None:
    await w.sql("DELETE FROM audit_records WHERE seq = 7")


async def swap_two_records_content(w: World) -> None:
    a, b = await w.record(1), await w.record(2)
    assert [getattr(a, c) for c in CONTENT] != [getattr(b, c) for c in CONTENT]
    sets = ", ".join(f"{c} = :{c}" for c in CONTENT)
    async with w.services.db.write() as s:
        for target, source in ((a, b), (b, a)):
            await s.exec(text(f"UPDATE audit_records SET {sets} WHERE seq = :seq"),
                         params={**{c: getattr(source, c) for c in CONTENT}, "seq": target.seq})


async def reorder_two_records(w: World) -> None:
    await w.sql("UPDATE audit_records SET seq = -1 WHERE seq = 5", "UPDATE audit_records SET seq = 5 WHERE seq = 6",
                "UPDATE audit_records SET seq = 6 WHERE seq = -1")


async def insert_a_forged_record(w: World) -> None:
    last = await w.record(18)
    await w.sql("INSERT INTO audit_records (seq, id, trace_id, activity, actor_oin, outcome, recorded_at, prev_hash, hash) "
                "VALUES (19, 'forged-0001', 'x', 'read', :oin, 'allow', :at, :prev, :hash)",
                oin=w.orgs.rotterdam.oin, at=last.recorded_at, prev=last.hash, hash="a" * 64)
    await w.sql("UPDATE audit_head SET seq = 19, hash = :hash", hash="a" * 64)


async def truncate_the_tail(w: World) -> None:
    await w.sql("DELETE FROM audit_records WHERE seq > 12")


async def truncate_the_tail_and_rewrite_the_head(w: World) -> None:
    twelve = await w.record(12)
    await w.sql("DELETE FROM audit_records WHERE seq > 12", "UPDATE audit_head SET seq = 12, hash = :hash", hash=twelve.hash)


async def delete_everything_and_reset_the_head(w: World) -> None:
    await w.sql("DELETE FROM audit_records", "UPDATE audit_head SET seq = 0, hash = :hash", hash=GENESIS)


async def delete_the_head_row(w: World) -> None:
    await w.sql("DELETE FROM audit_head")


async def edit_a_checkpoint_line(w: World) -> None:
    """Move the newest checkpoint back to record 12, keeping its signature (to hide a truncation to 12)."""
    lines = w.file.read_text().splitlines()
    line = json.loads(lines[-1])
    line.update(seq=12, hash=(await w.record(12)).hash)
    w.file.write_text("\n".join([*lines[:-1], json.dumps(line)]) + "\n")


async def append_a_forged_checkpoint_line(w: World) -> None:
    forged = {"seq": 12, "hash": (await w.record(12)).hash, "recordedAt": "2099-01-01T00:00:00.000000+00:00",
              "signature": "f" * 64}
    with w.file.open("a") as f:
        f.write(json.dumps(forged) + "\n")


TAMPERINGS = [  # (tampering, a fragment of the reason, the reason's code)
    (edit_a_field, "content does not match", "content-mismatch"),
    (delete_a_middle_record, "missing", "records-missing"),
    (swap_two_records_content, "does not match", "content-mismatch"),
    (reorder_two_records, "does not match", "link-mismatch"),
    (insert_a_forged_record, "content does not match", "content-mismatch"),
    (truncate_the_tail, "ends at 12", "end-removed"),
    (truncate_the_tail_and_rewrite_the_head, "the chain ends at 12 but a signed checkpoint", "checkpoint-mismatch"),
    (delete_everything_and_reset_the_head, "every record was removed", "checkpoint-mismatch"),
    (delete_the_head_row, "audit_head", "head-missing"),
    (edit_a_checkpoint_line, "bad signature", "checkpoint-file"),
    (append_a_forged_checkpoint_line, "bad signature", "checkpoint-file"),
]


async def test_every_tampering_is_detected(world):
    await checkpointed_history(world)
    snap = await world.snapshot()
    assert (await world.verify())["intact"] is True

    tried, detected, wrong = 0, 0, []
    for tamper, expect, code in TAMPERINGS:
        await tamper(world)
        tried += 1
        result = await world.verify()
        if result["intact"] is False and result["reason"]:
            detected += 1
            if expect not in result["reason"] or result["reasonCode"] != code:
                wrong.append(f"{tamper.__name__}: {result['reasonCode']} {result['reason']!r} (expected {code} {expect!r})")
        else:
            wrong.append(f"{tamper.__name__}: NOT detected: {result}")
        await world.restore(snap)
        assert (await world.verify())["intact"] is True, f"restore after {tamper.__name__}"

    print(f"audit tamper suite: {detected}/{tried} tamperings detected")
    assert not wrong, "\n".join(wrong)
    assert detected == tried == len(TAMPERINGS)


async def test_truncating_the_tail_and_rewriting_the_head_names_the_checkpoint(world):
    await checkpointed_history(world)
    cp = latest_checkpoint(world.services.settings)
    await truncate_the_tail_and_rewrite_the_head(world)
    result = await world.verify()
    assert result["intact"] is False and result["anchored"] is True and result["checkpointSeq"] == 18
    assert result["reason"] == (f"the chain ends at 12 but a signed checkpoint of {cp.recorded_at} vouches for record 18 "
                                "(records removed at the end)")
    assert result["brokenSeq"] == 18 and result["lastSeq"] == 12
    partial = await world.verify(fromSeq=10)  # a partial walk is checked against the checkpoint too
    assert partial["intact"] is False and "vouches for record 18" in partial["reason"]


async def test_a_deleted_head_row_is_a_finding_not_a_crash(world):
    await checkpointed_history(world)
    await delete_the_head_row(world)
    result = await world.verify()
    assert result["intact"] is False and "audit_head" in result["reason"] and "missing" in result["reason"]


async def test_the_writer_refuses_to_vouch_for_a_chain_that_was_cut_or_forged(world):
    await checkpointed_history(world)
    snap = await world.snapshot()
    lines = world.file.read_bytes()

    await truncate_the_tail_and_rewrite_the_head(world)
    await world.history()  # new records after the cut: the head moves past 12 again, then past 18
    await world.history()
    with pytest.raises(CheckpointRefused, match="link to the previous record"):
        await write_checkpoint(world.services)
    await world.restore(snap)

    await truncate_the_tail_and_rewrite_the_head(world)
    with pytest.raises(CheckpointRefused, match="rolled back"):
        await write_checkpoint(world.services)
    await world.restore(snap)

    await insert_a_forged_record(world)
    with pytest.raises(CheckpointRefused, match="content does not match"):
        await write_checkpoint(world.services)
    await world.restore(snap)

    await delete_the_head_row(world)
    with pytest.raises(CheckpointRefused, match="audit_head"):
        await write_checkpoint(world.services)
    assert world.file.read_bytes() == lines  # nothing was vouched for


async def test_an_untouched_chain_with_checkpoints_verifies_and_the_checkpoint_event_carries_no_personal_data(world):
    assert await write_checkpoint(world.services) is None  # nothing recorded yet: nothing to vouch for
    assert not world.file.exists() or not world.file.read_text().strip()
    await checkpointed_history(world)
    assert await write_checkpoint(world.services) is None  # the head has not moved

    book = read_checkpoints(world.services.settings)
    assert (book.valid, book.findings, book.latest.seq) == (2, (), 18)
    assert book.latest.hash == (await world.record(18)).hash
    async with world.services.db.read() as s:
        head = await s.get(AuditHead, 1)
    assert (head.seq, head.hash) == (18, book.latest.hash)  # writing a checkpoint adds no audit record

    result = await world.verify()
    assert result == {"intact": True, "checked": 18, "lastSeq": 18, "brokenSeq": None, "brokenId": None, "reason": None, "reasonCode": None,
                      "anchored": True, "checkpointSeq": 18, "checkpointAt": result["checkpointAt"]}
    assert result["checkpointAt"].startswith(book.latest.recorded_at[:19])
    await world.history()  # records after the newest checkpoint are fine
    assert (await world.verify())["intact"] is True

    async with world.services.db.read() as s:
        events = (await s.exec(select(OutboxEvent).where(OutboxEvent.type == "audit.checkpoint")
                               .order_by(col(OutboxEvent.id)))).all()
    assert [e.data["seq"] for e in events] == [9, 18]
    assert {e.topic for e in events} == {world.services.settings.audit_topic}
    assert set(events[-1].data) == {"seq", "hash", "recordedAt", "signature", "parties"}
    assert events[-1].data["signature"] == book.latest.signature and events[-1].data["parties"] == []
    assert "subjectId" not in events[-1].data and events[-1].key == "0" * 20
    assert BSN not in json.dumps([e.data for e in events]) + world.file.read_text()


async def test_without_a_checkpoint_file_the_report_says_the_chain_is_not_anchored(client, orgs, stay):
    chain = Chain(client, orgs)
    await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])
    r = (await client.get("/api/v1/audit/verify", headers=orgs.inspectorate.headers())).json()
    assert (r["intact"], r["anchored"], r["checkpointSeq"]) == (True, False, None)


async def test_the_worker_loop_writes_checkpoints_on_its_interval(world):
    from gateway.workers import retention_loop

    world.services.settings.audit_checkpoint_interval_seconds = 0.05
    await world.history()
    stop = asyncio.Event()
    task = asyncio.create_task(retention_loop(world.services, stop))
    try:
        for _ in range(200):
            cp = latest_checkpoint(world.services.settings)
            if cp and cp.seq == 9:
                break
            await asyncio.sleep(0.05)
        assert cp and cp.seq == 9
        await world.history()
        for _ in range(200):
            cp = latest_checkpoint(world.services.settings)
            if cp.seq == 18:
                break
            await asyncio.sleep(0.05)
        assert cp.seq == 18
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    seqs = [json.loads(line)["seq"] for line in world.file.read_text().splitlines()]
    assert seqs == sorted(set(seqs)) and seqs[-1] == 18  # only when the head moved, not once per round


async def test_brb_audit_checkpoint_writes_one(world):
    await world.history()
    env = {**os.environ, **settings_env(world.services.settings)}

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "checkpoint"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    first = await asyncio.to_thread(run)
    assert first.returncode == 0 and "record 9" in first.stdout, first.stdout + first.stderr
    again = await asyncio.to_thread(run)
    assert again.returncode == 0 and "not moved" in again.stdout, again.stdout + again.stderr
    assert latest_checkpoint(world.services.settings).seq == 9


async def test_verifying_a_busy_chain_reports_no_false_break(world):
    """The head is read after the walk (records appended meanwhile are walked too): reading it first made a
    verify during sends report "the chain head says N records but …" for an untouched chain."""
    chain = Chain(world.client, world.orgs)

    async def sends() -> None:
        for _ in range(10):
            await chain.send(world.orgs.vught, "dr-plan", ["municipality:0363"])

    async def verifies() -> list[dict]:
        results = []
        for _ in range(40):
            results.append(await world.verify())
            await asyncio.sleep(0)
        return results

    _, results = await asyncio.gather(sends(), verifies())
    assert [r for r in results if not r["intact"]] == []
    assert (await world.verify())["lastSeq"] == 50
