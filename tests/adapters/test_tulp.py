"""The TULP adapter against the real gateway (live_server: real HTTP), as PI Vught: what an export sends,
that a re-run sends nothing (its state; and the gateway's idempotency when the state is lost), that a
changed tab or a moved release date sends exactly one new message, and that refusals are counted."""
from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from brb_client import GatewayClient, Identity
from adapters.tulp import export, mapping
from adapters.tulp.sender import send_exports
from adapters.tulp.state import State

EXAMPLES = Path(__file__).resolve().parents[2] / "adapters" / "tulp" / "examples"
SCOPE = "messages:send messages:read"


def identity(org) -> Identity:
    return Identity(org.oin, org.private_jwk, SCOPE, org.audience)


async def run(live_server, orgs, path: Path, state_file: Path):
    async with GatewayClient(live_server, identity(orgs.vught)) as gw:
        with State(state_file) as state:
            return await send_exports(gw, state, export.load(path))


async def sent_list(live_server, orgs) -> list[dict]:
    async with GatewayClient(live_server, identity(orgs.vught)) as gw:
        return [m async for m in gw.pages("/api/v1/messages", {"pageSize": 200})]


async def read(live_server, orgs, message_id: str) -> dict:
    async with GatewayClient(live_server, identity(orgs.vught)) as gw:
        return await gw.read(message_id, "reintegration")


def edit(folder: Path, name: str, change) -> None:
    path = folder / f"{name}.json"
    doc = json.loads(path.read_text())
    change(doc["detainees"][0])
    path.write_text(json.dumps(doc))


@pytest.fixture
def exports(tmp_path) -> Path:
    folder = tmp_path / "export"
    shutil.copytree(EXAMPLES, folder)
    return folder


EXPECTED_KINDS = {"detention-notice": 3, "transfer-notice": 1, "screening-result": 3, "dr-plan": 3, "release-notice": 3}


def test_every_planned_payload_satisfies_its_contract():
    planned = [m for e in export.load(EXAMPLES) for d in e.detainees for m in mapping.plan(d)]
    for m in planned:
        m.validate()  # contracts.validate_payload
    assert {k: sum(m.kind == k for m in planned) for k in EXPECTED_KINDS} == EXPECTED_KINDS
    assert all(d.bsn is None or mapping.plan(d)[0].payload["subject"]["bsn"] == d.bsn
               for e in export.load(EXAMPLES) for d in e.detainees)


async def test_examples_send_the_expected_messages_and_a_rerun_sends_nothing(live_server, orgs, exports, tmp_path):
    state_file = tmp_path / "tulp.sqlite3"
    summary = await run(live_server, orgs, exports, state_file)
    assert summary.sent == 13 and dict(summary.sent_by_kind) == EXPECTED_KINDS, summary.as_dict()
    assert not summary.refused and not summary.failed and summary.urgent_sent == 1
    sent = await sent_list(live_server, orgs)
    assert sorted(m["type"] for m in sent) == sorted(k for k, n in EXPECTED_KINDS.items() for _ in range(n))
    # the unexpected release from remand goes first in the run: its detention-notice, then the release-notice
    assert [m["type"] for m in sent[:2]] == ["detention-notice", "release-notice"]
    urgent = await read(live_server, orgs, sent[1]["id"])
    assert urgent["payload"]["certainty"] == "unexpected" and urgent["payload"]["subject"]["skn"] == "34567890"
    # Amsterdam and Rotterdam (the competent municipalities) and probation received Youssef's detention-notice
    youssef = next(m for m in sent if m["type"] == "transfer-notice")
    assert {d["recipientOin"] for d in youssef["deliveries"]} == {
        orgs.amsterdam.oin, orgs.rotterdam.oin, orgs.zwolle.oin, orgs.reclassering.oin}

    again = await run(live_server, orgs, exports, state_file)
    assert (again.sent, again.skipped) == (0, 13)
    assert len(await sent_list(live_server, orgs)) == 13

    state_file.unlink()  # the state is lost: the gateway answers every key with its first receipt
    lost = await run(live_server, orgs, exports, tmp_path / "tulp.sqlite3")
    assert lost.sent == 13 and not lost.refused
    after = await sent_list(live_server, orgs)
    assert sorted(m["id"] for m in after) == sorted(m["id"] for m in sent)


async def test_a_changed_housing_tab_sends_one_new_plan_version(live_server, orgs, exports, tmp_path):
    state_file = tmp_path / "tulp.sqlite3"
    await run(live_server, orgs, exports, state_file)
    before = await sent_list(live_server, orgs)
    plans = [(await read(live_server, orgs, m["id"]))["payload"] for m in before if m["type"] == "dr-plan"]
    jan_old = next(p for p in plans if p["subject"]["skn"] == "12345678")

    def housing(d):
        tab = d["tabs"]["11"]
        tab["fields"]["housing"]["situation"] = "Plek in begeleid wonen Amsterdam-Noord toegezegd"
        tab["revision"] += 1
        tab["lastChanged"] = "2026-11-30T10:00:00+01:00"

    edit(exports, "jan-de-vries", housing)
    summary = await run(live_server, orgs, exports, state_file)
    assert summary.sent == 1 and dict(summary.sent_by_kind) == {"dr-plan": 1}, summary.as_dict()
    after = await sent_list(live_server, orgs)
    assert len(after) == len(before) + 1 and after[-1]["type"] == "dr-plan"
    new = (await read(live_server, orgs, after[-1]["id"]))["payload"]
    assert new["subject"]["skn"] == "12345678" and new["planVersion"] == jan_old["planVersion"] + 1
    assert new["sections"]["housing"]["currentSituation"].startswith("Plek in begeleid wonen")


async def test_a_moved_release_date_sends_one_new_release_notice(live_server, orgs, exports, tmp_path):
    state_file = tmp_path / "tulp.sqlite3"
    await run(live_server, orgs, exports, state_file)
    before = await sent_list(live_server, orgs)
    edit(exports, "youssef-el-amrani", lambda d: d["stay"].update(expectedReleaseDate="2027-01-06"))
    summary = await run(live_server, orgs, exports, state_file)
    assert summary.sent == 1 and dict(summary.sent_by_kind) == {"release-notice": 1}, summary.as_dict()
    after = await sent_list(live_server, orgs)
    assert len(after) == len(before) + 1 and after[-1]["type"] == "release-notice"
    payload = (await read(live_server, orgs, after[-1]["id"]))["payload"]
    assert payload["expectedReleaseDate"] == "2027-01-06" and payload["destinationMunicipality"] == "0363"
    # and once more with the same export: nothing
    assert (await run(live_server, orgs, exports, state_file)).sent == 0


async def test_refusals_are_counted_per_problem_type(live_server, orgs, exports, tmp_path):
    # a detainee from 's-Gravenhage (0518), a municipality not connected in the demo: unknown-recipient;
    # Jan's casemanager arranges aftercare with Rotterdam, which is neither residence nor intended
    edit(exports, "kevin-jansen", lambda d: d["stay"].update(municipalityOfResidence="0518"))
    edit(exports, "jan-de-vries", lambda d: d["tabs"]["11"]["fields"].update(aftercareMunicipality="0599"))
    state_file = tmp_path / "tulp.sqlite3"
    summary = await run(live_server, orgs, exports, state_file)
    assert dict(summary.refused) == {"unknown-recipient": 1, "recipient-not-competent": 2}, summary.as_dict()
    assert summary.blocked == 3  # Kevin's screening-result, dr-plan and release-notice wait for his detention-notice
    assert summary.sent == 13 - 2 - 4
    assert len(await sent_list(live_server, orgs)) == summary.sent
    with State(state_file) as state:
        assert state.status()[f"TULP:{orgs.vught.oin}"]["refused"] == {"unknown-recipient": 1, "recipient-not-competent": 2}
    # refused messages are tried again on the next run (and refused again): nothing is skipped for them
    again = await run(live_server, orgs, exports, state_file)
    assert again.sent == 0 and sum(again.refused.values()) == 3


async def test_the_cli_sends_the_examples_and_reports_status(live_server, orgs, exports, tmp_path):
    key = tmp_path / "vught.jwk.json"
    key.write_text(json.dumps(orgs.vught.private_jwk))
    state_file = tmp_path / "state.sqlite3"

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.tulp.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 25)
        return proc.returncode, out.decode() + err.decode()

    common = ["--gateway", live_server, "--oin", orgs.vught.oin, "--key", str(key), "--state", str(state_file)]
    code, out = await cli("send", str(exports), *common, "--json")
    assert code == 0, out
    assert json.loads(out.splitlines()[0])["sent"] == 13
    code, out = await cli("send", str(exports), *common, "--json")
    assert code == 0 and json.loads(out.splitlines()[0])["skipped"] == 13
    code, out = await cli("status", "--state", str(state_file), "--json")
    status = json.loads(out)[f"TULP:{orgs.vught.oin}"]
    assert code == 0 and status["sent"] == EXPECTED_KINDS and status["detainees"] == 3
    assert len(await sent_list(live_server, orgs)) == 13
