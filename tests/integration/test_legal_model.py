"""The legal model through the API (the catalogue consent/catalogue.yaml, docs/legal-basis.md): the
competent municipality, the art. 18b condition, what the college gets with and without consent, and the
basis recorded per section — on both databases."""
from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from gateway.db.models import AuditRecord, Delivery, Message, Stay
from tests.scenario import Chain, detention_notice, example, problem, risk_18b, with_subject

PROBATION = "00000001002345678000"


def released(body: dict) -> dict[str, str]:
    return {r["section"]: r["legalBasis"] for r in body["releasedSections"]}


def withheld(body: dict) -> dict[str, str]:
    return {r["section"]: r["reason"] for r in body["redactions"]}


def plan_v2() -> dict:
    return example("dr-plan", version=2)


async def audit(services, **where) -> list[AuditRecord]:
    async with services.db.read() as s:
        q = select(AuditRecord).order_by(col(AuditRecord.seq))
        for name, value in where.items():
            q = q.where(getattr(AuditRecord, name) == value)
        return list((await s.exec(q)).all())


async def messages_stored(services) -> int:
    async with services.db.read() as s:
        return len((await s.exec(select(Message))).all())


# --- the competent municipality (art. 18a lid 4 Pbw) ------------------------------------------------

async def test_before_any_detention_notice_only_a_detention_notice_reaches_a_municipality(client, orgs, services):
    chain = Chain(client, orgs)
    r = await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], plan_v2(), version=2, expect=403)
    assert "competent-municipality" in problem(r, 403, "recipient-not-competent")["detail"]
    assert await messages_stored(services) == 0
    notice = (await chain.send(orgs.vught, "detention-notice", ["municipality:0363", PROBATION], detention_notice())).json()
    assert {d["decision"] for d in notice["deliveries"]} == {"allow"}
    await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], plan_v2(), version=2)


async def test_municipality_that_is_neither_residence_nor_intended_is_refused(client, orgs, services):
    chain = Chain(client, orgs)
    await chain.admit(orgs.vught, residence="0363")
    r = await chain.send(orgs.vught, "dr-plan", ["municipality:0363", "municipality:0599"], plan_v2(), version=2, expect=403)
    assert orgs.rotterdam.oin in problem(r, 403, "recipient-not-competent")["detail"]
    assert await messages_stored(services) == 1  # only the detention-notice: a refusal stores no part of the send
    denies = await audit(services, activity="deny")
    assert [(d.counterparty_oin, d.outcome) for d in denies] == [(orgs.rotterdam.oin, "recipient-not-competent")]
    # a detention-notice addressed to a municipality it does not name is refused as well
    r = await chain.send(orgs.vught, "detention-notice", ["municipality:0599"], detention_notice(residence="0363"), expect=403)
    problem(r, 403, "recipient-not-competent")


async def test_a_change_of_intended_municipality_moves_competence_and_shows_in_the_audit_trail(client, orgs, services):
    chain = Chain(client, orgs)
    await chain.admit(orgs.vught, residence=None, intended="0363")  # no registered address: intends Amsterdam
    plan = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], plan_v2(), version=2)).json()
    problem(await chain.send(orgs.vught, "dr-plan", ["municipality:0599"], plan_v2(), version=2, expect=403), 403,
            "recipient-not-competent")

    transfer = {**example("transfer-notice", version=2), "intendedMunicipality": "0599"}
    await chain.send(orgs.vught, "transfer-notice", ["municipality:0599", PROBATION], transfer, version=2)
    await chain.send(orgs.vught, "dr-plan", ["municipality:0599"], plan_v2(), version=2)
    r = await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], plan_v2(), version=2, expect=403)
    problem(r, 403, "recipient-not-competent")

    changes = await audit(services, activity="competence")
    assert [(c.outcome, c.detail) for c in changes] == [
        ("established", "detention-notice: intended municipality - -> 0363"),
        ("changed", "transfer-notice: intended municipality 0363 -> 0599"),
    ]
    # the read is decided again: Amsterdam is no longer competent for the plan it had received
    r = await chain.read(orgs.amsterdam, plan["id"], "aftercare", expect=403)
    problem(r, 403, "recipient-not-competent")
    # ... while the stored decision of the delivery stays what it was
    async with services.db.read() as s:
        delivery = (await s.exec(select(Delivery).where(Delivery.message_id == plan["id"]))).one()
    assert delivery.decision["outcome"] == "allow-with-redaction"


async def test_a_release_notice_to_another_destination_makes_that_the_municipality_of_return(client, orgs, services):
    chain = Chain(client, orgs)
    await chain.admit(orgs.vught, residence="0363")
    notice = {**example("release-notice", version=2), "destinationMunicipality": "0599"}
    notice.pop("risk18b", None)
    await chain.send(orgs.vught, "release-notice", ["municipality:0599", "municipality:0363"], notice, version=2,
                     purpose="aftercare")
    async with services.db.read() as s:
        stay = (await s.exec(select(Stay))).one()
    assert (stay.residence_cbs, stay.intended_cbs) == ("0363", "0599")


# --- art. 18b Pbw ----------------------------------------------------------------------------------

async def test_risk_information_to_a_mayor_needs_the_18b_block_and_then_arrives_at_summary_level(client, orgs, services):
    chain = Chain(client, orgs)
    await chain.admit(orgs.vught, residence="0363")
    without = with_subject(example("risk-information", version=2))
    without.pop("risk18b", None)
    r = await chain.send(orgs.vught, "risk-information", ["mayor:0363"], without, version=2, purpose="public-order", expect=403)
    assert "18b" in problem(r, 403, "condition-not-met")["detail"]

    with_block = {**without, "risk18b": risk_18b()}
    r = await chain.send(orgs.vught, "risk-information", ["mayor:0599"], with_block, version=2, purpose="public-order", expect=403)
    problem(r, 403, "recipient-not-competent")  # Rotterdam is not the municipality of return

    receipt = (await chain.send(orgs.vught, "risk-information", ["mayor:0363"], with_block, version=2, purpose="public-order")).json()
    delivery = receipt["deliveries"][0]
    assert delivery["decision"] == "allow-with-redaction" and delivery["legalBasis"] == "pbw-18b"
    assert withheld(delivery) == {"detail": "not-permitted"}
    view = (await chain.read(orgs.mayor_amsterdam, receipt["id"], "public-order")).json()
    assert "detail" not in view["payload"] and view["payload"]["risk18b"]["offenceKind"] == "violent"
    assert released(view) == {"summary": "pbw-18b", "risk18b": "pbw-18b"}


async def test_risk_information_between_prison_and_probation_is_recorded_on_20d_lid_4_without_the_condition(client, orgs, services):
    chain = Chain(client, orgs)
    plain = (await chain.send(orgs.vught, "risk-information", [PROBATION], purpose="risk-management")).json()
    asserted = {**with_subject(example("risk-information", version=2)), "risk18b": risk_18b("sexual")}
    serious = (await chain.send(orgs.vught, "risk-information", [PROBATION], asserted, version=2, purpose="risk-management")).json()
    assert plain["deliveries"][0]["legalBasis"] == "pm-20d-4" and serious["deliveries"][0]["legalBasis"] == "pbw-18b"
    delivers = {a.message_id: a.legal_basis for a in await audit(services, activity="deliver")}
    assert delivers == {plain["id"]: "pm-20d-4", serious["id"]: "pbw-18b"}


async def test_a_mayor_informs_prison_and_probation_and_sends_nothing_else(client, orgs):
    chain = Chain(client, orgs)
    report = {**with_subject(example("risk-information", version=2)), "risk18b": risk_18b()}
    receipt = (await chain.send(orgs.mayor_amsterdam, "risk-information", [orgs.vught.oin, PROBATION], report, version=2,
                                purpose="public-order")).json()
    assert {d["legalBasis"] for d in receipt["deliveries"]} == {"pbw-18b"}
    r = await chain.send(orgs.mayor_amsterdam, "dr-plan", [orgs.vught.oin], plan_v2(), version=2, expect=403)
    problem(r, 403, "exchange-not-allowed")
    no_block = with_subject(example("risk-information", version=2))
    no_block.pop("risk18b", None)
    r = await chain.send(orgs.mayor_amsterdam, "risk-information", [orgs.vught.oin], no_block, version=2,
                         purpose="public-order", expect=403)
    problem(r, 403, "condition-not-met")


# --- what the college gets: Pm 20d lid 2 and 3, consent for children and family ----------------------

async def test_the_college_gets_the_social_network_without_consent_and_care_on_lid_3(client, orgs, services):
    chain = Chain(client, orgs)
    await chain.admit(orgs.vught, residence="0363")
    receipt = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], plan_v2(), version=2)).json()
    delivery = receipt["deliveries"][0]
    assert released(delivery) == {"identity-document": "pm-20d-2", "housing": "pm-20d-2", "work-income": "pm-20d-2",
                                  "debts": "pm-20d-2", "care": "pm-20d-3", "social-network": "pm-20d-2"}
    assert withheld(delivery) == {"children-family": "consent-required", "health": "not-permitted",
                                  "restorative-work": "not-permitted", "behaviour": "not-permitted"}
    view = (await chain.read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    assert set(view["payload"]["sections"]) == {"identity-document", "housing", "work-income", "debts", "care", "social-network"}
    record = (await audit(services, activity="deliver", message_id=receipt["id"]))[0]
    assert record.legal_basis == "pm-20d-2" and "care=pm-20d-3" in record.detail and "social-network=pm-20d-2" in record.detail


async def test_children_information_needs_consent_and_stops_at_withdrawal_and_at_expiry(client, orgs, services):
    chain = Chain(client, orgs)
    await chain.admit(orgs.vught, residence="0363")
    receipt = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], plan_v2(), version=2)).json()
    view = (await chain.read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    assert "children-family" not in view["payload"]["sections"]

    consent = await chain.consent(orgs.vught, categories=["children-family"], recipient_oins=[orgs.amsterdam.oin])
    view = (await chain.read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    assert "children-family" in view["payload"]["sections"] and released(view)["children-family"] == "consent"
    disclosed = await audit(services, activity="disclose")
    assert [(d.legal_basis, d.actor_oin) for d in disclosed] == [("consent", orgs.amsterdam.oin)]
    assert consent["id"] in disclosed[0].detail

    await chain.withdraw(orgs.vught, consent["id"])
    view = (await chain.read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    assert "children-family" not in view["payload"]["sections"] and withheld(view)["children-family"] == "consent-required"

    # the other parent with authority may consent too; a consent that has expired opens nothing
    r = await client.post("/api/v1/consents", headers=orgs.vught.headers(), json={
        "subject": {"bsn": "999990019"}, "givenBy": "other-parent", "categories": ["children-family"],
        "recipientOins": [orgs.amsterdam.oin], "purposes": ["aftercare"], "evidenceReference": "formulier-ouder-7",
        "validUntil": (services.clock.now() + timedelta(hours=1)).isoformat()})
    assert r.status_code == 201, r.text
    view = (await chain.read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    assert released(view)["children-family"] == "consent"
    services.clock.advance(timedelta(hours=2))
    view = (await chain.read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    assert "children-family" not in view["payload"]["sections"]


async def test_health_behaviour_and_restorative_work_cannot_be_opened_by_consent(client, orgs):
    for category in ("health", "offence-related", "restorative-work", "risk-summary"):
        r = await client.post("/api/v1/consents", headers=orgs.vught.headers(), json={
            "subject": {"bsn": "999990019"}, "categories": [category], "recipientKinds": ["municipality"],
            "purposes": ["aftercare"], "evidenceReference": "formulier-1"})
        assert f"consent is no basis for '{category}'" in problem(r, 422, "validation-failed")["detail"], category


async def test_probation_advice_reaches_the_college_only_in_its_pm_20d_lid_2_parts(client, orgs):
    chain = Chain(client, orgs)
    await chain.admit(orgs.vught, residence="0363")
    advice = with_subject(example("probation-advice", version=2))
    receipt = (await chain.send(orgs.reclassering, "probation-advice", ["municipality:0363"], advice, version=2,
                                purpose="aftercare")).json()
    view = (await chain.read(orgs.amsterdam, receipt["id"], "aftercare")).json()
    assert "advice" not in view["payload"] and "health" not in view["payload"]
    assert set(released(view)) <= {"basicConditions", "socialNetwork"} and released(view)
    assert withheld(view).get("advice") == "not-permitted"
