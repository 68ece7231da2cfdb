from tests.scenario import Chain


async def test_prison_sends_dr_plan_to_municipality_and_it_reads_it(client, orgs, stay):
    chain = Chain(client, orgs)
    r = await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])
    receipt = r.json()
    assert receipt["deliveries"][0]["recipientOin"] == orgs.amsterdam.oin
    view = (await chain.read(orgs.amsterdam, receipt["id"])).json()
    assert "housing" in view["payload"]["sections"]
