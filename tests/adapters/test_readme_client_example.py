"""The README's ten-line brb-client example, run as written (only the demo's key path and address
swapped for this test's): a first run handles what is in the inbox, a second run resumes after it."""
from __future__ import annotations

import json
import re
from pathlib import Path

from tests.scenario import Chain

README = Path(__file__).resolve().parents[2] / "README.md"
DEMO_KEY = ".var/demo-keys/00000001009990363000.jwk.json"


def readme_example() -> str:
    text = README.read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "poll_inbox" in b and "brb_client" in b]
    return "\n".join(line[2:] if line.startswith("  ") else line for line in block.splitlines())


async def test_the_readme_example_reads_and_acknowledges_and_resumes(client, orgs, live_server, stay, tmp_path, monkeypatch):
    key = tmp_path / "amsterdam.jwk.json"
    key.write_text(json.dumps(orgs.amsterdam.private_jwk))
    source = readme_example()
    assert orgs.amsterdam.oin in source and DEMO_KEY in source and "http://127.0.0.1:8000" in source
    source = source.replace(DEMO_KEY, str(key)).replace("http://127.0.0.1:8000", live_server)
    if orgs.amsterdam.audience != "urn:nl:brb:gateway":  # the example relies on the default audience
        source = source.replace('"messages:read")', f'"messages:read", {orgs.amsterdam.audience!r})')
    monkeypatch.chdir(tmp_path)  # the example keeps its cursor file in the working directory
    namespace: dict = {}
    exec(compile(source, "README.md", "exec"), namespace)

    chain = Chain(client, orgs)
    first = [(await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"] for _ in range(2)]
    await namespace["poll_once"]()
    later = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    await namespace["poll_once"]()

    for mid in (*first, later):
        (delivery,) = (await client.get(f"/api/v1/messages/{mid}/deliveries", headers=orgs.vught.headers())).json()
        assert delivery["acknowledgement"] == "received" and delivery["status"] == "received"
    reads = (await client.get("/api/v1/audit/records", params={"activity": "read", "pageSize": 200},
                              headers=orgs.inspectorate.headers())).json()["items"]
    assert sorted(r["messageId"] for r in reads) == sorted([*first, later])  # each read once: the second run resumed
    assert (tmp_path / "inbox.cursor").read_text()
