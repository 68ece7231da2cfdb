"""The chain end to end on the loopback broker (issue 14): a TULP export with several detainees → the
TULP adapter (HTTP) → gateway → Kafka → Amsterdam's municipal connector, which stores and acknowledges →
PI Vught sees the acknowledgements in its sent list. Then a changed housing tab and a moved release date
reach the municipality as a new plan version and a new release notice; the same export re-run sends nothing."""
import shutil

import pytest

from brb_client import GatewayClient
from adapters.tulp import export
from adapters.tulp.sender import send_exports
from adapters.tulp.state import State
from tests.adapters.test_municipal import http, key_file, local, relay, services, start  # noqa: F401 - fixtures
from tests.adapters.test_tulp import EXAMPLES, edit, identity
from tests.conftest import eventually

pytestmark = [pytest.mark.broker]


async def tulp_run(live_server, orgs, folder, state_file):
    async with GatewayClient(live_server, identity(orgs.vught)) as gw:
        with State(state_file) as state:
            return await send_exports(gw, state, export.load(folder))


async def to_amsterdam(http, orgs) -> dict[str, tuple[str, str | None]]:
    """What PI Vught sent to Amsterdam, as Vught's sent list shows it: message id -> (type, acknowledgement)."""
    r = await http.get("/api/v1/messages", headers=orgs.vught.headers(), params={"pageSize": 200})
    assert r.status_code == 200, r.text
    return {m["id"]: (m["type"], d["acknowledgement"]) for m in r.json()["items"]
            for d in m["deliveries"] if d["recipientOin"] == orgs.amsterdam.oin}


async def test_a_tulp_export_reaches_the_municipal_connector_and_the_prison_sees_it_accepted(
        live_server, http, orgs, start, tmp_path):
    folder, state_file = tmp_path / "export", tmp_path / "tulp.sqlite3"
    shutil.copytree(EXAMPLES, folder)
    start()
    first = await tulp_run(live_server, orgs, folder, state_file)
    assert first.refused == {} and first.failed == {}, first.as_dict()

    async def all_accepted(expected: int):
        sent = await to_amsterdam(http, orgs)
        return len(sent) >= expected and all(ack == "accepted" for _, ack in sent.values()) and sent
    sent = await eventually(lambda: all_accepted(1), timeout=60)
    kinds = sorted(t for t, _ in sent.values())
    assert {"detention-notice", "dr-plan", "release-notice"} <= set(kinds), kinds  # all three detainees concern Amsterdam
    store = local(tmp_path)
    assert sorted(store.message(i)["type"] for i in sent) == kinds  # each stored once, by the connector
    store.close()

    # the same export again: nothing new anywhere
    assert (await tulp_run(live_server, orgs, folder, state_file)).sent == 0
    assert await to_amsterdam(http, orgs) == sent

    # a changed housing tab and a moved release date: one new plan version and one new release notice
    def housing(d):
        d["tabs"]["11"]["fields"]["housing"]["situation"] = "Plek in begeleid wonen Amsterdam-Noord toegezegd"
        d["tabs"]["11"]["revision"] += 1
    edit(folder, "jan-de-vries", housing)
    edit(folder, "youssef-el-amrani", lambda d: d["stay"].update(expectedReleaseDate="2027-01-06"))
    second = await tulp_run(live_server, orgs, folder, state_file)
    assert dict(second.sent_by_kind) == {"dr-plan": 1, "release-notice": 1}, second.as_dict()
    now = await eventually(lambda: all_accepted(len(sent) + 2), timeout=60)
    new = {i: t for i, (t, _) in now.items() if i not in sent}
    assert sorted(new.values()) == ["dr-plan", "release-notice"]
    store = local(tmp_path)
    moved = next(store.message(i) for i, t in new.items() if t == "release-notice")
    assert moved["state"] == "accepted" and moved["payload"]["expectedReleaseDate"] == "2027-01-06"
    store.close()
