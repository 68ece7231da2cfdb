"""Key rotation's guards (issue 16): `promote`, `rewrap` and `retire` refuse while some live process is not
ready for them; a key file is re-read without a restart; the CLI works in a demo checkout. Other
processes are stood in for by their own Services and KeyKeeper, recording what they hold in the shared
database exactly as a running process does (the fleet test, test_key_rotation_fleet.py, runs real ones)."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from gateway.crypto import write_key_file
from gateway.db.models import Message
from gateway.keyrotation import KeyKeeper, Refused, live_holders, promote, retire, rewrap_all, ring_state, wrapped_counts
from gateway.metrics import KEYRING_KEYS
from gateway.services import Services
from tests.conftest import settings_env, settings_for
from tests.scenario import Chain

ROOT = Path(__file__).resolve().parents[2]
BRB = [sys.executable, "-m", "gateway.cli"]
K1, K2 = b"\x01" * 32, b"\x02" * 32  # K1 is the key of settings_for()
SPEC = {"k1": "k1:" + base64.b64encode(K1).decode(), "k2": "k2:" + base64.b64encode(K2).decode()}


def ring_spec(*kids: str) -> str:
    return ",".join(SPEC[k] for k in kids)


@pytest.fixture
async def fleet(database):
    """Services standing in for other processes of the fleet (closed at the end)."""
    made: list[Services] = []

    def make(*kids: str) -> Services:
        made.append(Services.from_settings(settings_for(database, encryption_keys=ring_spec(*kids))))
        return made[-1]

    yield make
    for svc in made:
        await svc.db.dispose()


async def test_promote_rewrap_and_retire_refuse_until_every_live_process_is_ready(client, orgs, services, stay, fleet, database):
    chain = Chain(client, orgs)
    gateway_keeper = KeyKeeper(services, "gateway")
    await gateway_keeper.beat()  # the fleet's ring row is seeded with k1, the only key so far
    old = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    relay = fleet("k1")
    relay_keeper = KeyKeeper(relay, "relay")
    await relay_keeper.beat()
    cli = fleet("k1", "k2")

    # step 1, half done: the gateway knows k2, the relay does not
    services.keyring.replace({"k1": K1, "k2": K2})
    await gateway_keeper.beat()
    with pytest.raises(Refused, match=f"{relay_keeper.process_id} \\(relay\\) do not"):
        await promote(cli, "k2")
    with pytest.raises(Refused, match="is the sealing key"):
        await retire(cli, "k1")
    assert (await ring_state(cli)).current_id == "k1"
    # the same refusal from the command line: a clear message and exit code 1, no traceback
    env = {**os.environ, **settings_env(cli.settings), "PYTHONPATH": str(ROOT)}
    refused = subprocess.run(BRB + ["key", "promote", "k2"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "refused: not every live process holds key 'k2'" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr

    # step 1 done: promote is allowed; but rewrap waits until every process seals with k2
    relay.keyring.replace({"k1": K1, "k2": K2})
    await relay_keeper.beat()
    assert (await promote(cli, "k2")).current_id == "k2"
    with pytest.raises(Refused, match="not every live process seals with key 'k2' yet"):
        await rewrap_all(cli)
    with pytest.raises(Refused, match="still seals in"):
        await retire(cli, "k1")
    await gateway_keeper.beat()
    await relay_keeper.beat()
    assert services.keyring.current_id == relay.keyring.current_id == "k2"
    new = (await chain.send(orgs.vught, "dr-plan", ["municipality:0599"])).json()["id"]

    # step 2: everything sealed under k1 is still there; retire refuses until rewrap moved it
    with pytest.raises(Refused, match="still wrapped under key 'k1'"):
        await retire(cli, "k1")
    assert await rewrap_all(cli) >= 1
    assert (await wrapped_counts(cli)).keys() == {"k2"}
    async with cli.db.read() as s:
        assert dict((await s.exec(select(Message.id, Message.key_id))).all()) == {old: "k2", new: "k2"}

    # step 3: retire k1; a retired key is never promoted again; old and new messages read with k2 alone
    assert "k1" in (await retire(cli, "k1")).retired
    with pytest.raises(Refused, match="was retired"):
        await promote(cli, "k1")
    services.keyring.replace({"k2": K2})
    for org, mid in ((orgs.amsterdam, old), (orgs.rotterdam, new)):
        assert (await chain.read(org, mid, "aftercare")).status_code == 200


async def test_a_process_that_stopped_recording_its_keys_no_longer_blocks_a_promotion(services, fleet):
    await KeyKeeper(services, "gateway").beat()
    gone = fleet("k1")
    await KeyKeeper(gone, "dispatcher").beat()
    cli = fleet("k1", "k2")
    services.keyring.replace({"k1": K1, "k2": K2})
    await KeyKeeper(services, "gateway").beat()
    with pytest.raises(Refused, match="dispatcher"):
        await promote(cli, "k2")
    cli.clock.advance(timedelta(seconds=cli.settings.key_holder_window_seconds + 1))  # both heartbeats are now old
    assert await live_holders(cli) == []
    assert (await promote(cli, "k2")).current_id == "k2"


async def test_a_changed_key_file_is_reloaded_without_a_restart_and_a_bad_one_is_refused(database, tmp_path):
    path = tmp_path / "ring.json"
    write_key_file(path, {"k1": K1}, "k1")
    svc = Services.from_settings(settings_for(database, encryption_keys=None, encryption_keys_file=str(path)))
    try:
        keeper = KeyKeeper(svc, "gateway")
        await keeper.beat()
        assert svc.keyring.held == ["k1"] and not keeper.reload()
        write_key_file(path, {"k1": K1, "k2": K2}, "k2")  # step 1: k2 is known, but does not seal
        assert keeper.reload()
        assert svc.keyring.held == ["k1", "k2"] and svc.keyring.current_id == "k1"
        await keeper.beat()
        assert [(h.held, h.current_id) for h in await live_holders(svc)] == [(["k1", "k2"], "k1")]
        assert KEYRING_KEYS.labels("k2", "0")._value.get() == 1 and KEYRING_KEYS.labels("k1", "1")._value.get() == 1

        write_key_file(path, {"k2": K2}, "k2")  # a file without the sealing key: refused, the ring stays
        assert not keeper.reload()
        assert svc.keyring.held == ["k1", "k2"]
        path.write_text("{not json")
        assert not keeper.reload()
        assert svc.keyring.held == ["k1", "k2"]
    finally:
        await svc.db.dispose()


def test_the_cli_reads_the_demo_secrets_in_a_demo_checkout_and_says_what_is_missing_elsewhere(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRB_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["PYTHONPATH"] = str(ROOT)

    def brb(*args: str, cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run(BRB + list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=60)

    bare = tmp_path / "bare"
    bare.mkdir()
    missing = brb("key", "rewrap", cwd=bare)
    assert missing.returncode == 2 and "missing secrets: BRB_PSEUDONYM_KEY, BRB_ENCRYPTION_KEYS" in missing.stderr
    assert "Traceback" not in missing.stderr

    demo = tmp_path / "demo"
    (demo / ".var").mkdir(parents=True)
    (demo / ".var" / "demo-secrets.json").write_text(json.dumps({
        "BRB_PSEUDONYM_KEY": "demo-pseudonym", "BRB_ENCRYPTION_KEYS": SPEC["k1"], "BRB_AUDIT_CHAIN_KEY": "demo-chain"}))
    assert brb("db", "upgrade", cwd=demo).returncode == 0
    rewrapped = brb("key", "rewrap", cwd=demo)
    assert rewrapped.returncode == 0, rewrapped.stderr
    assert "re-wrapped 0 item(s)" in rewrapped.stdout
    status = brb("key", "status", cwd=demo)
    assert status.returncode == 0 and "sealing key: k1" in status.stdout, status.stderr
