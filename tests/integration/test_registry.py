"""Organisation registry: admin API, validation, several keys at once for rotation."""
from gateway.auth.mint import mint, new_key_pair
from tests.scenario import problem


async def test_operator_registers_an_organisation_and_a_second_key_both_work(client, orgs):
    new = {"oin": "00000001009990344000", "name": "Gemeente Utrecht (nazorg)", "kind": "municipality", "cbsCode": "0344"}
    r = await client.post("/api/v1/organisations", json=new, headers=orgs.operator.headers())
    assert r.status_code == 201, r.text
    keys = [new_key_pair(f"utrecht-{i}") for i in (1, 2)]
    for _private, public in keys:
        r = await client.post(f"/api/v1/organisations/{new['oin']}/keys", json={"jwk": public}, headers=orgs.operator.headers())
        assert r.status_code == 201 and r.json()["alg"] == "ES256"
    for private, _ in keys:
        token = mint(private, new["oin"], orgs.operator.audience, "messages:read")
        assert (await client.get("/api/v1/inbox", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    listed = (await client.get("/api/v1/organisations", headers=orgs.operator.headers())).json()["items"]
    utrecht = next(o for o in listed if o["oin"] == new["oin"])
    assert [k["kid"] for k in utrecht["keys"]] == ["utrecht-1", "utrecht-2"]


async def test_registry_rejects_bad_organisations_with_pointers(client, orgs):
    cases = [
        ({"oin": "123", "name": "x", "kind": "dji"}, 422, "validation-failed", "/oin"),
        ({"oin": "00000001009990344000", "name": "x", "kind": "police"}, 422, "validation-failed", "/kind"),
        ({"oin": "00000001009990344000", "name": "x", "kind": "municipality"}, 422, "validation-failed", "/cbsCode"),
        ({"oin": "00000001009990344000", "name": "x", "kind": "auditor"}, 422, "validation-failed", "/parentOin"),
        ({"oin": orgs.vught.oin, "name": "PI Vught again", "kind": "dji"}, 409, "conflict", None),
    ]
    for body, status, slug, pointer in cases:
        r = await client.post("/api/v1/organisations", json=body, headers=orgs.operator.headers())
        detail = problem(r, status, slug)["detail"]
        if pointer:
            assert f"{pointer}:" in detail
        else:
            assert orgs.vught.oin in detail
    listed = (await client.get("/api/v1/organisations", headers=orgs.operator.headers())).json()["items"]
    assert sorted(o["oin"] for o in listed) == sorted(o.oin for o in orgs.by_name.values())  # none was stored


async def test_private_key_material_is_refused(client, orgs):
    private, _ = new_key_pair("leak-1")
    r = await client.post(f"/api/v1/organisations/{orgs.vught.oin}/keys", json={"jwk": private}, headers=orgs.operator.headers())
    assert "never private key material" in problem(r, 422, "validation-failed")["detail"]


async def test_only_the_operator_administers_the_registry(client, orgs):
    r = await client.get("/api/v1/organisations", headers=orgs.vught.headers("admin messages:read"))
    problem(r, 403, "insufficient-scope")  # a prison cannot get the admin scope, whatever its token asks for
