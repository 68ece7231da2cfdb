"""The OpenAPI document as the contract a connector developer builds on: a client generated from the committed
``openapi.yaml`` (openapi-python-client) type-checks the worked connector in
adapters/brb-client/examples/generated_connector.py (mypy, strict), and that connector, run against a real
gateway per backend, polls, reads, acknowledges and resumes after each restart handling every message once."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from tests.scenario import Chain, seed_stay

ROOT = Path(__file__).resolve().parents[2]
CONNECTOR = ROOT / "adapters" / "brb-client" / "examples" / "generated_connector.py"
BIN = Path(sys.executable).parent
GENERATOR_CONFIG = "post_hooks: []\npackage_name_override: brb_api\nproject_name_override: brb-api\n"
MYPY_CONFIG = """[mypy]
strict = True
[mypy-brb_api.*]
follow_imports = silent
[mypy-brb_client.*]
follow_imports = silent
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A folder holding the package ``brb_api``, generated from the committed openapi.yaml."""
    folder = tmp_path_factory.mktemp("generated")
    (folder / "config.yaml").write_text(GENERATOR_CONFIG)
    run = subprocess.run([BIN / "openapi-python-client", "generate", "--path", ROOT / "openapi.yaml", "--meta", "none",
                          "--config", folder / "config.yaml", "--output-path", folder / "brb_api"],
                         capture_output=True, text=True)
    out = run.stdout + run.stderr
    assert run.returncode == 0 and "Warning" not in out and "WARNING" not in out, out
    return folder


def test_the_worked_connector_type_checks_against_the_generated_client(generated, tmp_path):
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    run = subprocess.run([BIN / "mypy", "--config-file", tmp_path / "mypy.ini", "--no-incremental",
                          "--cache-dir", tmp_path / "cache", CONNECTOR], capture_output=True, text=True,
                         env={"MYPYPATH": f"{generated}:{ROOT / 'adapters' / 'brb-client'}", "PATH": str(BIN)})
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture
def connector(generated, monkeypatch):
    monkeypatch.syspath_prepend(str(generated))
    spec = importlib.util.spec_from_file_location("generated_connector", CONNECTOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_connector_handles_each_message_once_across_restarts(connector, services, orgs, client, tmp_path):
    from brb_client import CursorFile, Identity

    await seed_stay(services)
    chain = Chain(client, orgs)
    app = create_app(services=services)
    amsterdam = Identity(orgs.amsterdam.oin, orgs.amsterdam.private_jwk, "messages:read", orgs.amsterdam.audience)
    cursor_file = CursorFile(tmp_path / "state" / "cursor")
    handled: list[str] = []
    sent: list[str] = []

    async def remember(view) -> None:
        assert view.read_purpose.value == "aftercare" and view.type_.value == "dr-plan"
        handled.append(view.id)

    async def send(n: int) -> None:
        for _ in range(n):
            sent.append((await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], version=2,
                                          purpose="aftercare")).json()["id"])

    async def run_connector() -> int:
        """One run of the connector, as a fresh process would: a new client, the cursor from the file."""
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with connector.connect("http://gateway/api/v1", amsterdam, transport=transport) as gw:
            return await connector.poll(gw, cursor_file, remember)

    await send(3)
    assert await run_connector() == 3
    assert await run_connector() == 0  # restarted with nothing new: nothing again
    await send(2)
    assert await run_connector() == 2
    await send(1)
    assert await run_connector() == 1
    assert handled == sent and len(set(handled)) == 6

    r = await client.get("/api/v1/messages", headers=orgs.vught.headers(), params={"pageSize": 50})
    acks = {m["id"]: m["deliveries"][0]["acknowledgement"] for m in r.json()["items"]}
    assert all(acks[i] == "received" for i in sent), acks


async def test_an_unknown_purpose_is_answered_with_the_valid_ones(services, orgs, client):
    await seed_stay(services)
    chain = Chain(client, orgs)
    message_id = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], version=2, purpose="aftercare")).json()["id"]
    r = await chain.read(orgs.amsterdam, message_id, purpose="nazorg", expect=403)
    assert r.json()["type"].endswith("/purpose-not-allowed")
    assert "'nazorg'" in r.json()["detail"] and "aftercare, public-order, reintegration" in r.json()["detail"], r.json()
