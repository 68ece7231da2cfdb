"""Purpose limitation and consent through the API: decided at send time and again at read time."""
from sqlmodel import select

from gateway.db.models import AuditRecord, OutboxEvent
from tests.scenario import BSN, Chain, example, problem, risk_18b

WITHHELD_WITHOUT_CONSENT = {"social-network", "restorative-work", "behaviour"}


def withheld(body: dict) -> set[str]:
    return {r["section"] for r in body["redactions"]}


async def test_municipality_without_consent_gets_the_basic_conditions_and_v1_social_network_withheld(client, orgs, stay):
    chain = Chain(client, orgs)
    receipt = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()
    delivery = receipt["deliveries"][0]
    assert delivery["decision"] == "allow-with-redaction" and withheld(delivery) == WITHHELD_WITHOUT_CONSENT
    assert {r["section"]: r["reason"] for r in delivery["redactions"]} == {
        "social-network": "consent-required", "restorative-work": "not-permitted", "behaviour": "not-permitted"}
    assert all(r["rule"] == "dr-plan/dji-to-municipality" for r in delivery["redactions"])

    view = (await chain.read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    sections = view["payload"]["sections"]
    assert set(sections) == {"identity-document", "housing", "work-income", "debts", "care"}
    assert withheld(view) == WITHHELD_WITHOUT_CONSENT and view["legalBasis"] == "pm-20d-2"
    sender_side = (await client.get(f"/api/v1/messages/{receipt['id']}/deliveries", headers=orgs.vught.headers())).json()
    assert withheld(sender_side[0]) == WITHHELD_WITHOUT_CONSENT


async def test_consent_scoped_to_the_municipality_opens_children_and_family_and_withdrawal_hides_it_again(client, orgs, services, stay):
    chain = Chain(client, orgs)
    consent = await chain.consent(orgs.vught, categories=["children-family"], recipient_oins=[orgs.amsterdam.oin])
    assert consent["subjectId"].startswith("sub-") and BSN not in str(consent)
    receipt = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363", "municipality:0599"])).json()
    by_recipient = {d["recipientOin"]: d for d in receipt["deliveries"]}
    assert withheld(by_recipient[orgs.amsterdam.oin]) == {"restorative-work", "behaviour"}  # never to a college
    assert withheld(by_recipient[orgs.rotterdam.oin]) == WITHHELD_WITHOUT_CONSENT  # the consent names Amsterdam only

    view = (await chain.read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    assert "social-network" in view["payload"]["sections"] and withheld(view) == {"restorative-work", "behaviour"}

    await chain.withdraw(orgs.vught, consent["id"])
    again = (await chain.read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    assert "social-network" not in again["payload"]["sections"] and withheld(again) == WITHHELD_WITHOUT_CONSENT
    async with services.db.read() as s:
        events = (await s.exec(select(OutboxEvent).where(OutboxEvent.type == "consent.withdrawn"))).all()
    assert len(events) == 1 and orgs.amsterdam.oin in events[0].data["parties"] and "bsn" not in events[0].data


async def test_a_consent_for_another_purpose_does_not_open_the_section(client, orgs, stay):
    chain = Chain(client, orgs)
    await chain.consent(orgs.vught, categories=["children-family"], recipient_oins=[orgs.amsterdam.oin], purposes=["reintegration"])
    mid = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    assert "social-network" in (await chain.read(orgs.amsterdam, mid, "reintegration")).json()["payload"]["sections"]
    assert "social-network" not in (await chain.read(orgs.amsterdam, mid, "aftercare")).json()["payload"]["sections"]


async def test_reading_for_a_purpose_the_rule_does_not_allow_is_refused_and_audited(client, orgs, services, stay):
    chain = Chain(client, orgs)
    mid = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"])).json()["id"]
    r = await chain.read(orgs.amsterdam, mid, "public-order", expect=403)
    problem(r, 403, "purpose-not-allowed")
    async with services.db.read() as s:
        denies = (await s.exec(select(AuditRecord).where(AuditRecord.activity == "deny"))).all()
    assert [(d.actor_oin, d.message_id, d.purpose) for d in denies] == [(orgs.amsterdam.oin, mid, "public-order")]


async def test_risk_information_never_reaches_the_aftercare_desk_not_even_with_consent(client, orgs, services, stay):
    chain = Chain(client, orgs)
    r = await chain.send(orgs.vught, "risk-information", ["municipality:0363"], purpose="aftercare", expect=403)
    problem(r, 403, "exchange-not-allowed")
    r = await client.post("/api/v1/consents", headers=orgs.vught.headers(), json={
        "subject": {"bsn": BSN}, "categories": ["risk-summary"], "recipientOins": [orgs.amsterdam.oin],
        "purposes": ["aftercare"], "evidenceReference": "form-1"})
    assert "consent is no basis for 'risk-summary'" in problem(r, 422, "validation-failed")["detail"]
    async with services.db.read() as s:
        assert len((await s.exec(select(AuditRecord).where(AuditRecord.activity == "deny"))).all()) == 1


async def test_risk_information_to_the_mayor_of_return_passes_the_summary_without_consent_never_the_detail(client, orgs, stay):
    chain = Chain(client, orgs)
    report = {**example("risk-information", version=2), "risk18b": risk_18b()}
    receipt = (await chain.send(orgs.vught, "risk-information", ["mayor:0599"], report, version=2, purpose="public-order")).json()
    view = (await chain.read(orgs.mayor_rotterdam, receipt["id"], "public-order")).json()
    assert view["payload"]["summary"]["violenceRisk"] is True and "detail" not in view["payload"]
    assert view["legalBasis"] == "pbw-18b"


async def test_risk_information_to_probation_arrives_in_full(client, orgs):
    chain = Chain(client, orgs)
    receipt = (await chain.send(orgs.vught, "risk-information", [orgs.reclassering.oin], purpose="risk-management")).json()
    view = (await chain.read(orgs.reclassering, receipt["id"], "risk-management")).json()
    assert view["payload"] == example("risk-information") and view["redactions"] == []


async def test_som_triage_to_a_municipality_is_refused(client, orgs):
    r = await Chain(client, orgs).send(orgs.vught, "som-triage", ["municipality:0363"], expect=403)
    problem(r, 403, "exchange-not-allowed")


async def test_only_prisons_and_probation_record_consent(client, orgs):
    body = {"subject": {"bsn": BSN}, "categories": ["children-family"], "recipientKinds": ["municipality"],
            "purposes": ["aftercare"], "evidenceReference": "form-1"}
    r = await client.post("/api/v1/consents", json=body, headers=orgs.amsterdam.headers("consents:write consents:read"))
    problem(r, 403, "insufficient-scope")  # a municipality cannot get consents:write, whatever its token asks for


async def test_consent_validation_and_listing_by_pseudonym(client, orgs):
    bad = {"subject": {"bsn": "999990018"}, "categories": ["hobbies"], "purposes": ["marketing"], "recipientKinds": ["police"],
           "evidenceReference": "form-1"}
    r = await client.post("/api/v1/consents", json=bad, headers=orgs.vught.headers())
    assert "/subject/bsn" in problem(r, 422, "validation-failed")["detail"]
    bad["subject"] = {"bsn": BSN}
    detail = problem(await client.post("/api/v1/consents", json=bad, headers=orgs.vught.headers()), 422, "validation-failed")["detail"]
    assert "/categories/0:" in detail and "/purposes/0:" in detail and "/recipientKinds/0:" in detail

    consent = await Chain(client, orgs).consent(orgs.vught, categories=["children-family"], recipient_oins=[orgs.amsterdam.oin],
                                                given_by="other-parent")
    listed = (await client.get("/api/v1/consents", params={"subjectId": consent["subjectId"]}, headers=orgs.amsterdam.headers())).json()
    assert [c["id"] for c in listed["items"]] == [consent["id"]]
    not_mine = (await client.get("/api/v1/consents", params={"subjectId": consent["subjectId"]}, headers=orgs.mayor_amsterdam.headers())).json()
    assert not_mine["items"] == []
    r = await client.post("/api/v1/consents", json={**bad, "categories": ["offence-related"], "purposes": ["aftercare"],
                                                    "recipientKinds": ["municipality"], "givenBy": "other-parent"}, headers=orgs.vught.headers())
    assert "consent is no basis for 'offence-related'" in problem(r, 422, "validation-failed")["detail"]


async def test_withdrawing_twice_is_a_conflict(client, orgs):
    chain = Chain(client, orgs)
    consent = await chain.consent(orgs.reclassering, categories=["children-family"], recipient_kinds=["municipality"])
    await chain.withdraw(orgs.reclassering, consent["id"])
    r = await client.post(f"/api/v1/consents/{consent['id']}/withdrawal", headers=orgs.reclassering.headers(), json={})
    problem(r, 409, "conflict")
