"""The audit log: tamper evidence, a linear chain under concurrency, auditor scoping, export, subject report."""
import json
import subprocess
import sys
import os
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlmodel import col, func, select

from gateway import API_VERSION
from gateway.audit.record import AuditEntry
from gateway.db.models import AuditRecord
from gateway.broker import free_port
from tests.conftest import eventually, settings_env
from tests.scenario import BSN, Chain, detention_notice, example

ROOT = Path(__file__).resolve().parents[2]


async def verify(client, orgs, **params) -> dict:
    r = await client.get("/api/v1/audit/verify", params=params, headers=orgs.inspectorate.headers())
    assert r.status_code == 200, r.text
    return r.json()


async def some_history(client, orgs) -> str:
    chain = Chain(client, orgs)
    mid = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]  # 5 records
    await chain.read(orgs.amsterdam, mid, "aftercare")  # 4 records
    return mid


async def sql(services, statement: str) -> None:
    async with services.db.write() as s:
        await s.exec(text(statement))


async def test_untouched_chain_verifies(client, orgs, stay):
    await some_history(client, orgs)
    result = await verify(client, orgs)
    assert result["intact"] is True and result["checked"] == result["lastSeq"] == 9


async def test_a_changed_field_is_detected_naming_the_record(client, orgs, services, stay):
    await some_history(client, orgs)
    await sql(services, "UPDATE audit_records SET purpose = 'public-order' WHERE seq = 3")
    result = await verify(client, orgs)
    assert (result["intact"], result["brokenSeq"]) == (False, 3) and "content does not match" in result["reason"]
    assert result["brokenId"]


async def test_a_deleted_record_is_detected(client, orgs, services, stay):
    await some_history(client, orgs)
    await sql(services, "DELETE FROM audit_records WHERE seq = 4")
    result = await verify(client, orgs)
    assert (result["intact"], result["brokenSeq"]) == (False, 5) and "missing" in result["reason"]


async def test_a_deleted_last_record_is_detected(client, orgs, services, stay):
    await some_history(client, orgs)
    await sql(services, "DELETE FROM audit_records WHERE seq = 9")
    result = await verify(client, orgs)
    assert result["intact"] is False and "ends at 8" in result["reason"]


async def test_two_reordered_records_are_detected(client, orgs, services, stay):
    await some_history(client, orgs)
    for statement in ("UPDATE audit_records SET seq = -1 WHERE seq = 6", "UPDATE audit_records SET seq = 6 WHERE seq = 7",
                      "UPDATE audit_records SET seq = 7 WHERE seq = -1"):
        await sql(services, statement)
    result = await verify(client, orgs)
    assert (result["intact"], result["brokenSeq"]) == (False, 6)


async def test_a_forged_record_is_detected(client, orgs, services, stay):
    await some_history(client, orgs)
    async with services.db.read() as s:
        last = (await s.exec(select(AuditRecord).where(AuditRecord.seq == 9))).one()
    forged = (f"INSERT INTO audit_records (seq, id, trace_id, activity, actor_oin, outcome, recorded_at, prev_hash, hash) "
              f"VALUES (10, 'forged-0001', 'x', 'read', '{orgs.rotterdam.oin}', 'allow', '2026-11-22 10:00:00', '{last.hash}', '{'a' * 64}')")
    await sql(services, forged)
    await sql(services, "UPDATE audit_head SET seq = 10")
    result = await verify(client, orgs)
    assert (result["intact"], result["brokenSeq"], result["brokenId"]) == (False, 10, "forged-0001")


async def test_verify_from_a_checkpoint(client, orgs, services, stay):
    await some_history(client, orgs)
    await some_history(client, orgs)
    result = await verify(client, orgs, fromSeq=10)
    assert result["intact"] is True and result["checked"] == 9 and result["lastSeq"] == 18


async def test_parallel_sends_from_several_processes_leave_one_intact_chain(client, orgs, services, database, stay):
    processes, per_process = 3, 15
    settings = services.settings.model_dump(mode="json")
    for secret in ("pseudonym_key", "encryption_keys", "audit_chain_key", "receipt_signing_key"):
        settings[secret] = getattr(services.settings, secret).get_secret_value()
    body = json.dumps({"type": "dr-plan", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"],
                       "payload": example("dr-plan")})
    sender = json.dumps({"oin": orgs.vught.oin, "jwk": orgs.vught.private_jwk})
    procs = [subprocess.Popen([sys.executable, "-m", "tests.support.send_burst", json.dumps(settings), sender, str(per_process), "5"],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(processes)]
    outputs = [p.communicate(body, timeout=240) for p in procs]
    assert [int(out.strip()) for out, _err in outputs] == [per_process] * processes, [err[-2000:] for _o, err in outputs]

    sends = processes * per_process
    async with services.db.read() as s:
        seqs = (await s.exec(select(AuditRecord.seq).order_by(col(AuditRecord.seq)))).all()
        per_activity = dict((await s.exec(select(AuditRecord.activity, func.count()).group_by(AuditRecord.activity))).all())
    assert per_activity == {"send": sends, "deliver": sends, "redact": 3 * sends}  # exactly one record per processing
    assert seqs == list(range(1, 5 * sends + 1))  # no gap, no fork
    assert (await verify(client, orgs))["intact"] is True


async def test_an_auditor_sees_only_its_own_organisation_and_the_inspectorate_sees_all(client, orgs, stay):
    chain = Chain(client, orgs)
    ams = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    rdam = (await chain.send(orgs.vught, "dr-plan", ["municipality:0599"])).json()["id"]
    await chain.read(orgs.rotterdam, rdam, "aftercare")

    own = (await client.get("/api/v1/audit/records", params={"pageSize": 200}, headers=orgs.fg_amsterdam.headers())).json()["items"]
    assert own and {r["messageId"] for r in own if r["messageId"]} == {ams}
    assert all(orgs.amsterdam.oin in (r["actorOin"], r["counterpartyOin"]) for r in own)
    peek = (await client.get("/api/v1/audit/records", params={"organisation": orgs.rotterdam.oin},
                             headers=orgs.fg_amsterdam.headers())).json()["items"]
    assert all(r["messageId"] != rdam for r in peek)

    everything = (await client.get("/api/v1/audit/records", params={"pageSize": 200}, headers=orgs.inspectorate.headers())).json()["items"]
    assert {ams, rdam} <= {r["messageId"] for r in everything}


async def test_audit_queries_and_exports_are_themselves_audited(client, orgs, stay):
    await some_history(client, orgs)
    await client.get("/api/v1/audit/records", params={"activity": "read"}, headers=orgs.fg_amsterdam.headers())
    export = await client.get("/api/v1/audit/export", params={"format": "csv"}, headers=orgs.fg_amsterdam.headers())
    assert export.status_code == 200 and export.text.startswith("\ufeffseq,id,recordedAt")
    logged = (await client.get("/api/v1/audit/records", params={"organisation": orgs.fg_amsterdam.oin, "pageSize": 200},
                               headers=orgs.inspectorate.headers())).json()["items"]
    assert [(r["activity"], r["actorOin"]) for r in logged] == [("audit-query", orgs.fg_amsterdam.oin), ("export", orgs.fg_amsterdam.oin)]
    assert "activity=read" in logged[0]["detail"]


async def test_records_filter_and_page(client, orgs, stay):
    mid = await some_history(client, orgs)
    seen, cursor = [], None
    while True:
        params = {"messageId": mid, "pageSize": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/audit/records", params=params, headers=orgs.inspectorate.headers())).json()
        seen += page["items"]
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            break
    processing = [r["activity"] for r in seen if r["activity"] != "audit-query"]
    assert processing == ["send", "deliver", "redact", "redact", "redact", "read", "redact", "redact", "redact"]
    # each page query is itself a processing about that message, so it shows up too
    assert sum(r["activity"] == "audit-query" for r in seen) >= 4


async def test_subject_report_lists_every_processing_about_one_person(client, orgs, stay):
    await some_history(client, orgs)
    await Chain(client, orgs).send(orgs.vught, "detention-notice", ["municipality:0599"],
                                   detention_notice("111222333", residence="0599"))
    r = await client.post("/api/v1/audit/subject-report", json={"bsn": BSN}, headers=orgs.inspectorate.headers())
    report = r.json()
    assert {x["subjectId"] for x in report["records"]} == {report["subjectId"]}
    activities = [x["activity"] for x in report["records"]]
    # nine processings by prison and municipality, and this very look-up, which is audited first
    assert activities == ["send", "deliver", "redact", "redact", "redact", "read", "redact", "redact", "redact", "audit-query"]
    html = await client.post("/api/v1/audit/subject-report", json={"bsn": BSN},
                             headers=orgs.inspectorate.headers(Accept="text/html"))
    assert html.headers["content-type"].startswith("text/html")
    assert "PI Vught" in html.text and "Gemeente Amsterdam (nazorg)" in html.text and BSN not in html.text
    unknown = (await client.post("/api/v1/audit/subject-report", json={"bsn": "123456782"}, headers=orgs.inspectorate.headers())).json()
    assert unknown["count"] == 0 and unknown["subjectId"] is None


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


async def test_export_of_100k_records_streams_in_bounded_memory(orgs, services):
    entries = [AuditEntry("read", orgs.amsterdam.oin, "allow", counterparty_oin=orgs.vught.oin, subject_id="sub-bulk",
                          purpose="aftercare", legal_basis="pbw-18a", rule="dr-plan/dji-to-municipality")] * 5000
    for _ in range(20):
        async with services.unit_of_work(services_actor(orgs)) as uow:
            await services.audit.append(uow.session, entries, trace_id="bulk", token_id=None, scope=None, now=uow.now)

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)], cwd=ROOT,
                              env={**os.environ, **settings_env(services.settings)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            await eventually(lambda: _live(client))
            warm = await client.get("/api/v1/audit/export", params={"activity": "send"}, headers=orgs.inspectorate.headers())
            assert warm.status_code == 200
            baseline = peak_rss_kib(server.pid)
            lines, size = 0, 0
            async with client.stream("GET", "/api/v1/audit/export", params={"format": "jsonl"},
                                     headers=orgs.inspectorate.headers()) as r:
                assert r.status_code == 200 and r.headers["api-version"] == API_VERSION
                async for chunk in r.aiter_text():
                    lines += chunk.count("\n")
                    size += len(chunk)
            growth = (peak_rss_kib(server.pid) - baseline) * 1024
    finally:
        server.terminate()
        server.wait(10)
    assert lines == 100_002  # the 100k records, plus the records of the warm-up export and of this one
    print(f"export: {lines} lines, {size / 1e6:.1f} MB, gateway peak RSS grew {growth / 1e6:.1f} MB")
    assert growth < size / 4, f"gateway grew {growth / 1e6:.1f} MB while exporting {size / 1e6:.1f} MB"


async def _live(client) -> bool:
    try:
        return (await client.get("/health/live")).status_code == 200
    except httpx.TransportError:
        return False


def services_actor(orgs):
    from gateway.services import Actor

    return Actor(oin=orgs.amsterdam.oin, kind="municipality")


async def test_the_callers_traceparent_becomes_the_trace_id_of_every_audit_record_of_the_request(client, orgs, services, stay):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    body = {"type": "dr-plan", "version": 1, "purpose": "reintegration", "recipients": ["municipality:0363"], "payload": example("dr-plan")}
    r = await client.post("/api/v1/messages", json=body, headers=orgs.vught.headers(
        **{"Idempotency-Key": "trace-1", "traceparent": f"00-{trace}-00f067aa0ba902b7-01"}))
    assert r.status_code == 201 and r.headers["traceparent"].startswith(f"00-{trace}-")
    async with services.db.read() as s:
        traces = set((await s.exec(select(AuditRecord.trace_id).where(AuditRecord.message_id == r.json()["id"]))).all())
    assert traces == {trace}
    other = await client.get("/api/v1/inbox", headers=orgs.amsterdam.headers(traceparent="garbage"))
    assert other.headers["traceparent"].split("-")[1] != trace
