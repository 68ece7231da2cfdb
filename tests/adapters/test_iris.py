"""The IRIS adapter (3RO) against the real gateway over real HTTP: RISc risk information and advice
reports reach probation's partners as the catalogue allows, re-runs send nothing, a new assessment sends
one new message, refusals are counted per problem type, and the ``brb-iris`` CLI does the same."""
from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

from brb_client import GatewayClient, GatewayProblem, Identity
from adapters.iris.sender import SCOPE, send_exports
from adapters.iris.state import State
from tests.scenario import seed_stay

EXAMPLES = Path(__file__).resolve().parents[2] / "adapters" / "iris" / "examples"
ROOT = EXAMPLES.parents[2]
BAKKER, VAN_DIJK = "999900134", "999900146"  # the two example clients (fictitious, 11-test valid)


def client_for(live_server: str, org, scope: str = SCOPE) -> GatewayClient:
    return GatewayClient(live_server, Identity(org.oin, org.private_jwk, scope, org.audience))


async def competence(services) -> None:
    """As detention-notices of PI Vught would leave it: Bakker lived in Amsterdam and returns to
    Rotterdam; Van Dijk lives in Rotterdam."""
    await seed_stay(services, bsn=BAKKER, residence="0363", intended="0599")
    await seed_stay(services, bsn=VAN_DIJK, residence="0599", intended=None)


async def inbox(live_server: str, org) -> list[dict]:
    async with client_for(live_server, org) as gw:
        return [item async for item in gw.pages("/api/v1/inbox")]


async def read(live_server: str, org, message_id: str, purpose: str) -> dict:
    async with client_for(live_server, org) as gw:
        return await gw.read(message_id, purpose)


def sections(view: dict) -> tuple[set[str], dict[str, str]]:
    """(sections released, {withheld section: reason}) of a read view."""
    return ({s["section"] for s in view["releasedSections"]}, {r["section"]: r["reason"] for r in view["redactions"]})


async def run(live_server, orgs, path: Path, state_file: Path):
    async with client_for(live_server, orgs.reclassering) as gw, _state(state_file) as state:
        return await send_exports(path, gw, state)


class _state:
    def __init__(self, path: Path):
        self.path = path

    async def __aenter__(self) -> State:
        self.state = State(self.path)
        return self.state

    async def __aexit__(self, *exc) -> None:
        self.state.close()


def receipt(summary, message_type: str, skn: str, role: str) -> dict:
    [found] = [r for p, r in summary.receipts if p.type == message_type and p.skn == skn and p.recipient_role == role]
    return found


async def test_iris_risk_information_reaches_the_prison_in_full_and_the_mayor_only_at_summary_level(
        live_server, orgs, services, tmp_path):
    await competence(services)
    summary = await run(live_server, orgs, EXAMPLES, tmp_path / "iris.sqlite3")
    assert (summary.sent, summary.skipped, dict(summary.refused), summary.invalid) == (7, 0, {}, {})

    # the prison (PI Vught) reads Bakker's RISc in full, on art. 18b Pbw (the assessment asserts the condition)
    risk = receipt(summary, "risk-information", "20261234", "prison")
    view = await read(live_server, orgs.vught, risk["id"], "supervision")
    assert sections(view) == ({"summary", "detail", "risk18b"}, {})
    assert view["legalBasis"] == "pbw-18b"
    assert view["payload"]["summary"]["recidivismRisk"] == "high" and view["payload"]["summary"]["violenceRisk"] is True
    assert [c["kind"] for c in view["payload"]["summary"]["activeConditions"]] == ["contact-ban", "area-ban"]  # reporting duty ended
    factors = {f["factor"]: f["score"] for f in view["payload"]["detail"]["criminogenicFactors"]}
    assert factors["Middelengebruik (alcohol)"] == 8 and "Inkomen en omgaan met geld" not in factors  # 9/12 -> 8; not criminogenic
    assert view["payload"]["risk18b"]["offenceKind"] == "violent"

    # the mayor of the municipality of return (Rotterdam) reads the summary and the 18b block, never the detail
    mayor = receipt(summary, "risk-information", "20261234", "mayor")
    view = await read(live_server, orgs.mayor_rotterdam, mayor["id"], "public-order")
    assert sections(view) == ({"summary", "risk18b"}, {"detail": "not-permitted"})
    assert "detail" not in view["payload"] and view["legalBasis"] == "pbw-18b"
    # Van Dijk's assessment asserts no art. 18b condition: no mayor hears of it; Amsterdam's mayor of neither
    assert [(m["type"], m["id"]) for m in await inbox(live_server, orgs.mayor_rotterdam)] == [("risk-information", mayor["id"])]
    assert await inbox(live_server, orgs.mayor_amsterdam) == []
    async with client_for(live_server, orgs.mayor_amsterdam) as gw:
        try:
            await gw.read(mayor["id"], "public-order")
            raise AssertionError("another mayor read the risk information")
        except GatewayProblem as problem:
            assert problem.type == "not-found"

    # the competent municipality (Rotterdam) gets no risk information at all, and of each advice only the
    # basic conditions and the social network (Pm 20d lid 2); the prison gets the whole advice
    rotterdam = await inbox(live_server, orgs.rotterdam)
    assert sorted(m["type"] for m in rotterdam) == ["probation-advice", "probation-advice"]
    advice = receipt(summary, "probation-advice", "20261234", "municipality")
    view = await read(live_server, orgs.rotterdam, advice["id"], "reintegration")
    assert sections(view) == ({"basicConditions", "socialNetwork"}, {"advice": "not-permitted", "health": "not-permitted"})
    assert view["payload"]["basicConditions"]["housing"]["status"] == "not-arranged"
    assert "health" not in view["payload"] and "advice" not in view["payload"]
    prison_advice = receipt(summary, "probation-advice", "20261234", "prison")
    view = await read(live_server, orgs.vught, prison_advice["id"], "reintegration")
    assert sections(view)[0] == {"advice", "basicConditions", "socialNetwork", "health"} and sections(view)[1] == {}
    assert view["payload"]["adviceKind"] == "conditional-release-advice"
    assert await inbox(live_server, orgs.amsterdam) == []  # Amsterdam is competent for Bakker but not his return


async def test_a_rerun_sends_nothing_and_a_lost_state_sends_no_second_message(live_server, orgs, services, tmp_path):
    await competence(services)
    first = await run(live_server, orgs, EXAMPLES, tmp_path / "iris.sqlite3")
    again = await run(live_server, orgs, EXAMPLES, tmp_path / "iris.sqlite3")
    assert (first.sent, again.sent, again.skipped) == (7, 0, 7)
    # even without the state file the keys are the same: the gateway answers the first receipts
    lost = await run(live_server, orgs, EXAMPLES, tmp_path / "fresh.sqlite3")
    assert lost.sent == 7 and {r["id"] for _, r in lost.receipts} == {r["id"] for _, r in first.receipts}
    async with client_for(live_server, orgs.reclassering) as gw:
        assert len([m async for m in gw.pages("/api/v1/messages")]) == 7
    assert len(await inbox(live_server, orgs.vught)) == 4


async def test_a_new_assessment_sends_one_new_risk_information(live_server, orgs, services, tmp_path):
    await competence(services)
    folder = tmp_path / "export"
    shutil.copytree(EXAMPLES, folder)
    state = tmp_path / "iris.sqlite3"
    assert (await run(live_server, orgs, folder, state)).sent == 7

    path = folder / "client-20265678-van-dijk.json"
    export = json.loads(path.read_text())
    export["riskAssessments"].append({
        "assessmentId": "RISC-2026-0266", "instrument": "RISc", "status": "definitief", "assessmentDate": "2026-11-30",
        "recidivismRisk": "laag", "riskOfHarm": "laag", "violenceRisk": "laag",
        "scales": [{"scale": "Inkomen en omgaan met geld", "score": 3, "maxScore": 8}]})
    path.write_text(json.dumps(export))
    summary = await run(live_server, orgs, folder, state)
    assert (summary.sent, summary.skipped, dict(summary.refused)) == (1, 7, {})
    [(planned, new)] = summary.receipts
    assert (planned.type, planned.recipient, planned.source_id) == ("risk-information", orgs.vught.oin, "RISC-2026-0266")
    risk = [m for m in await inbox(live_server, orgs.vught) if m["type"] == "risk-information"]
    assert len(risk) == 3 and new["id"] in {m["id"] for m in risk}
    view = await read(live_server, orgs.vught, new["id"], "supervision")
    assert view["payload"]["summary"]["recidivismRisk"] == "low" and view["legalBasis"] == "pm-20d-4"


async def test_refused_sends_are_counted_per_problem_type_and_tried_again(live_server, orgs, services, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(EXAMPLES, folder)
    hague = json.loads((folder / "client-20265678-van-dijk.json").read_text())
    hague["client"] |= {"clientNumber": "RN-2026-004400", "skn": "20269999", "bsn": "999900158"}
    hague["detention"]["municipalityOfResidence"] = "0518"  # 's-Gravenhage: not connected in the demo
    (folder / "client-20269999-den-haag.json").write_text(json.dumps(hague))
    broken = json.loads((folder / "client-20265678-van-dijk.json").read_text())
    broken["client"]["bsn"] = "999900147"  # fails the 11-test
    (folder / "client-broken.json").write_text(json.dumps(broken))
    state = tmp_path / "iris.sqlite3"

    # no detention-notice has made any municipality competent yet
    summary = await run(live_server, orgs, folder, state)
    assert summary.sent == 6  # risk information and advice of each of the three clients to PI Vught
    assert dict(summary.refused) == {"recipient-not-competent": 3, "unknown-recipient": 1}
    assert list(summary.invalid) == [str(folder / "client-broken.json")] and "11-test" in summary.invalid[str(folder / "client-broken.json")]
    with State(state) as s:
        refused = {(r.recipient, r.problem_type) for r in s.rows() if r.outcome == "refused"}
    assert refused == {("mayor:0599", "recipient-not-competent"), ("municipality:0599", "recipient-not-competent"),
                       ("municipality:0518", "unknown-recipient")}

    # once competence is established, the next run sends what was refused and nothing else
    await competence(services)
    summary = await run(live_server, orgs, folder, state)
    assert (summary.sent, summary.skipped, dict(summary.refused)) == (3, 6, {"unknown-recipient": 1})
    assert len(await inbox(live_server, orgs.rotterdam)) == 2 and len(await inbox(live_server, orgs.mayor_rotterdam)) == 1


async def test_the_cli_sends_the_examples_and_reports_status(live_server, orgs, services, tmp_path):
    await competence(services)
    key = tmp_path / "reclassering.jwk.json"
    key.write_text(json.dumps(orgs.reclassering.private_jwk))
    state = tmp_path / "iris.sqlite3"

    async def cli(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.iris.cli", *args, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(process.communicate(), 25)
        return process.returncode, out.decode()

    common = ("--gateway", live_server, "--oin", orgs.reclassering.oin, "--key", str(key), "--state", str(state))
    code, out = await cli("send", str(EXAMPLES), *common)
    assert code == 0 and "sent: 7  skipped (sent before): 0  refused: 0" in out, out
    code, out = await cli("send", str(EXAMPLES / "client-20261234-bakker.json"), *common)
    assert code == 0 and "sent: 0  skipped (sent before): 4" in out, out
    code, out = await cli("status", "--state", str(state))
    assert code == 0 and "risk-information" in out and "probation-advice" in out, out
    assert len(await inbox(live_server, orgs.mayor_rotterdam)) == 1


def bsns(n: int) -> list[str]:
    """n fictitious BSNs (the 9999xxxxx test range) that pass the 11-test."""
    found, i = [], 100
    while len(found) < n:
        value = f"9998{i:05d}"
        if sum(int(d) * w for d, w in zip(value, (9, 8, 7, 6, 5, 4, 3, 2, -1))) % 11 == 0:
            found.append(value)
        i += 1
    return found


async def test_a_caseload_of_60_clients_is_sent_once_with_bounded_concurrency(live_server, orgs, services, tmp_path):
    import time

    template = json.loads((EXAMPLES / "client-20265678-van-dijk.json").read_text())
    folder = tmp_path / "caseload"
    folder.mkdir()
    for n, bsn in enumerate(bsns(60)):
        export = json.loads(json.dumps(template))
        export["client"] |= {"clientNumber": f"RN-2026-{n:06d}", "skn": f"3026{n:05d}", "bsn": bsn}
        (folder / f"client-{n:03d}.json").write_text(json.dumps(export))
        await seed_stay(services, bsn=bsn, residence="0599", intended=None)
    started = time.perf_counter()
    summary = await run(live_server, orgs, folder, tmp_path / "iris.sqlite3")
    first = time.perf_counter() - started
    assert (summary.sent, dict(summary.refused), dict(summary.failed)) == (180, {}, {})
    started = time.perf_counter()
    again = await run(live_server, orgs, folder, tmp_path / "iris.sqlite3")
    assert (again.sent, again.skipped) == (0, 180)
    rerun = time.perf_counter() - started
    print(f"\nIRIS caseload: 60 clients, 180 sends in {first:.1f} s ({180 / first:.0f}/s); re-run {rerun:.2f} s")
    assert first < 25 and rerun < 3
