"""The SOM triage through the exchange, on both databases: the first pass kept per stay as messages arrive,
``triage.changed`` when new information (or time) changes an outcome, the workflow between the prison and
probation (part 1, part 2, the joint decision, the casemanager's override), rounds after the verdict and at a new
admission, and who may see it."""
from datetime import date, timedelta

from sqlmodel import select

from gateway.audit.record import Activity
from gateway.db.models import AuditRecord, Message, OutboxEvent, Triage
from gateway.trajectory.norms import local_date
from gateway.triage.evaluator import add_years
from gateway.triage.review import triage_round
from tests.scenario import BSN, Chain, example, problem, with_subject

PROBATION = "00000001002345678000"


def today(services) -> date:
    return local_date(services.clock.now())


async def admit(chain: Chain, services, *, kind: str = "remand", release_in: int | None = None,
                arrival: date | None = None, born: str = "1990-04-12", bsn: str = BSN) -> str:
    payload = with_subject(example("detention-notice"), bsn, dateOfBirth=born)
    payload.update(arrivalDate=(arrival or today(services)).isoformat(), detentionKind=kind)
    payload.pop("knownReleaseDate")
    if release_in is not None:
        payload["knownReleaseDate"] = (today(services) + timedelta(days=release_in)).isoformat()
    return (await chain.send(chain.orgs.vught, "detention-notice", ["municipality:0363", PROBATION], payload)).json()["subjectId"]


def part1(services, *, status: str = "remand", version: int = 1, **fields) -> dict:
    payload = with_subject(example("som-triage"))
    del payload["probationPart"], payload["decision"]
    payload["caseManagerPart"].update(entryDate=today(services).isoformat(), detentionStatus=status,
                                      expectedEndOfDetention=(today(services) + timedelta(days=200)).isoformat(), **fields)
    return payload


def part2(services, *, risk: str = "medium", assessed_days_ago: int = 30, **fields) -> dict:
    payload = with_subject(example("som-triage"))
    del payload["caseManagerPart"], payload["decision"]
    payload["probationPart"].update(recidivismRisk=risk, hearingAdviceRequested=False,
                                    riskEstimateDate=(today(services) - timedelta(days=assessed_days_ago)).isoformat())
    payload["probationPart"].update(fields)
    return payload


def decision(services, outcome: str = "no-priority", justification: str = "Laag risico; geen reclasseringsinzet") -> dict:
    payload = with_subject(example("som-triage"))
    del payload["caseManagerPart"], payload["probationPart"]
    payload["decision"] = {"outcome": outcome, "justification": justification, "deviatesFromGuideline": False,
                           "decidedOn": today(services).isoformat()}
    return payload


def risk_information(services, level: str, assessed_days_ago: int = 0, bsn: str = BSN) -> dict:
    payload = with_subject(example("risk-information"), bsn)
    payload["summary"].update(recidivismRisk=level, violenceRisk=False,
                              assessmentDate=(today(services) - timedelta(days=assessed_days_ago)).isoformat())
    return payload


async def view(client, org, subject: str, expect: int = 200) -> dict:
    r = await client.get(f"/api/v1/triage/{subject}", headers=org.headers())
    assert r.status_code == expect, r.text
    return r.json()


async def changed_events(services) -> list[OutboxEvent]:
    async with services.db.read() as s:
        return list((await s.exec(select(OutboxEvent).where(OutboxEvent.type == "triage.changed")
                                  .order_by(OutboxEvent.id))).all())


async def test_new_risk_information_moves_a_rest_group_detainee_to_no_priority_and_the_joint_decision_closes_it(
        client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services)
    first = await view(client, orgs.vught, subject)
    assert (first["outcome"], first["criterion"], first["round"], first["moment"], first["status"]) == (
        "no-priority", "no-probation-information", 1, "week-3", "open")
    assert await changed_events(services) == []  # the first outcome is no change: the worklist shows it

    await chain.send(orgs.reclassering, "som-triage", [orgs.vught.oin], part2(services, risk="medium"))
    rest = await view(client, orgs.vught, subject)
    assert (rest["outcome"], rest["criterion"], rest["professionalWeighing"]) == ("rest-group", "rest-group", True)
    assert rest["profile"]["recidivismRisk"] == "medium" and rest["profile"]["injuryRisk"] == "low"
    assert rest["profile"]["criminogenicFactors"] == ["Middelengebruik"]

    risk = (await chain.send(orgs.reclassering, "risk-information", [orgs.vught.oin], risk_information(services, "low"),
                             purpose="risk-management")).json()
    moved = await view(client, orgs.reclassering, subject)
    assert (moved["outcome"], moved["criterion"]) == ("no-priority", "low-recidivism-risk")
    assert moved["since"] != rest["since"] and moved["profile"] is None
    [fired] = moved["fired"]
    assert fired["fact"] == "recent_low_risk" and fired["value"] is True
    assert fired["sources"] == [{"messageId": risk["id"], "messageType": "risk-information", "on": today(services).isoformat()}]

    events = await changed_events(services)
    assert [(e.data["previousOutcome"], e.data["outcome"], e.data["cause"]) for e in events] == [
        ("no-priority", "rest-group", "som-triage"), ("rest-group", "no-priority", "risk-information")]
    last = events[-1]
    assert last.key == subject and isinstance(last.data["triageId"], int) and last.data == {
        "triageId": last.data["triageId"], "subjectId": subject, "round": 1, "change": "outcome",
        "previousOutcome": "rest-group", "outcome": "no-priority", "criterion": "low-recidivism-risk", "status": "open",
        "cause": "risk-information", "messageId": risk["id"], "prisonOin": orgs.vught.oin, "probationOin": PROBATION,
        "parties": sorted([orgs.vught.oin, PROBATION])}
    assert BSN not in str([e.data for e in events]) and "Middelengebruik" not in str([e.data for e in events])

    closing = (await chain.send(orgs.vught, "som-triage", [PROBATION], decision(services))).json()
    closed = await view(client, orgs.vught, subject)
    assert closed["status"] == "decided" and closed["decisionOutcome"] == "no-priority"
    assert closed["decision"] == {"outcome": "no-priority", "justification": "Laag risico; geen reclasseringsinzet",
                                  "deviatesFromGuideline": False, "deviatesFromFirstPass": False,
                                  "decidedOn": today(services).isoformat(), "messageId": closing["id"]}
    assert [(h["cause"], h["outcome"]) for h in closed["history"]] == [
        ("detention-notice", "no-priority"), ("som-triage", "rest-group"), ("risk-information", "no-priority"),
        ("decision", "no-priority")]
    decided = (await changed_events(services))[-1]
    assert (decided.data["change"], decided.data["status"], decided.data["messageId"]) == ("decided", "decided", closing["id"])

    async with services.db.read() as s:
        audited = (await s.exec(select(AuditRecord).where(AuditRecord.activity == Activity.TRIAGE.value)
                                .order_by(AuditRecord.seq))).all()
        row = (await s.exec(select(Triage).where(Triage.subject_id == subject))).one()
    assert [(a.outcome, a.rule) for a in audited] == [
        ("established", "no-probation-information"), ("outcome", "rest-group"), ("outcome", "low-recidivism-risk"),
        ("decided", "low-recidivism-risk")]
    assert f"recent_low_risk from risk-information {risk['id']}" in audited[2].detail
    assert "Laag risico" not in audited[3].detail and "medium" not in audited[1].detail
    assert b"Laag risico" not in row.facts_ciphertext and b"Middelengebruik" not in row.facts_ciphertext  # sealed


async def test_the_worklist_shows_every_current_detainee_of_the_prison_and_probation_only(client, orgs, services):
    chain = Chain(client, orgs)
    first = await admit(chain, services)
    payload = with_subject(example("detention-notice"), bsn="999990020")
    payload.update(arrivalDate=today(services).isoformat(), detentionKind="sentence")
    payload.pop("probationOrganisationOin")
    second = (await chain.send(orgs.zwolle, "detention-notice", ["municipality:0363"], payload)).json()["subjectId"]

    vught = (await client.get("/api/v1/triage", headers=orgs.vught.headers())).json()
    assert [(i["subjectId"], i["outcome"], i["criterion"]) for i in vught["items"]] == [
        (first, "no-priority", "no-probation-information")]
    assert vught["items"][0]["criterionTitle"] == "No probation information"
    zwolle = (await client.get("/api/v1/triage", headers=orgs.zwolle.headers())).json()
    assert [i["subjectId"] for i in zwolle["items"]] == [second]
    probation = (await client.get("/api/v1/triage", headers=orgs.reclassering.headers())).json()
    assert [i["subjectId"] for i in probation["items"]] == [first]  # named in the first notice only
    filtered = await client.get("/api/v1/triage", params={"outcome": "priority"}, headers=orgs.vught.headers())
    assert filtered.json()["items"] == []

    for org in (orgs.amsterdam, orgs.mayor_amsterdam):  # never a municipality or mayor
        problem(await client.get("/api/v1/triage", headers=org.headers()), 403, "forbidden")
        problem(await client.get(f"/api/v1/triage/{first}", headers=org.headers()), 403, "forbidden")
    problem(await client.get("/api/v1/triage", headers=orgs.fg_amsterdam.headers()), 403, "insufficient-scope")
    problem(await client.get(f"/api/v1/triage/{first}", headers=orgs.zwolle.headers()), 404, "not-found")
    bad = problem(await client.get("/api/v1/triage", params={"outcome": "maybe"}, headers=orgs.vught.headers()), 422,
                  "validation-failed")
    assert "rest-group" in bad["detail"]

    async with services.db.read() as s:
        looks = (await s.exec(select(AuditRecord).where(AuditRecord.activity == Activity.TRIAGE_QUERY.value))).all()
    assert {(r.actor_oin, r.subject_id) for r in looks} >= {(orgs.vught.oin, first), (orgs.zwolle.oin, second)}


async def test_each_part_is_filled_in_by_its_own_party_and_a_refused_part_stores_nothing(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services)
    r = await chain.send(orgs.reclassering, "som-triage", [orgs.vught.oin], part1(services), expect=None)
    assert "caseManagerPart" in problem(r, 403, "exchange-not-allowed")["detail"]
    r = await chain.send(orgs.vught, "som-triage", [PROBATION], part2(services), expect=None)
    assert "probationPart" in problem(r, 403, "exchange-not-allowed")["detail"]
    async with services.db.read() as s:
        assert (await s.exec(select(Message).where(Message.type == "som-triage"))).all() == []
    assert (await view(client, orgs.vught, subject))["history"][-1]["cause"] == "detention-notice"


async def test_the_casemanager_overrides_a_no_priority_outcome_with_a_reason_and_only_that(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services)
    reason = "Lopend reclasseringscontact in de gemeente van terugkeer"
    await chain.send(orgs.vught, "som-triage", [PROBATION], part1(services, version=2, overrideReason=reason), version=2)
    overridden = await view(client, orgs.reclassering, subject)
    assert (overridden["outcome"], overridden["criterion"], overridden["firstPass"], overridden["overrideReason"]) == (
        "rest-group", "casemanager-override", "no-probation-information", reason)

    await chain.send(orgs.reclassering, "som-triage", [orgs.vught.oin], part2(services, risk="high"))
    assert (await view(client, orgs.vught, subject))["criterion"] == "rest-group"  # the weighing, by the guideline
    before = len(await changed_events(services))
    r = await chain.send(orgs.vught, "som-triage", [PROBATION], part1(services, version=2, overrideReason=reason),
                         version=2, expect=None)
    assert "rest-group" in problem(r, 409, "conflict")["detail"]
    assert len(await changed_events(services)) == before
    async with services.db.read() as s:
        assert len((await s.exec(select(Message).where(Message.type == "som-triage"))).all()) == 2


async def test_a_verdict_opens_a_new_round_and_a_new_admission_a_new_triage(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services)
    await chain.send(orgs.reclassering, "som-triage", [orgs.vught.oin], part2(services, hearingAdviceRequested=True))
    assert (await view(client, orgs.vught, subject))["outcome"] == "postponed"
    await chain.send(orgs.vught, "som-triage", [PROBATION], decision(services, "too-little-information-repeat-after-verdict",
                                                                   "Wachten op het vonnis"))
    assert (await view(client, orgs.vught, subject))["status"] == "decided"

    await chain.send(orgs.vught, "som-triage", [PROBATION], part1(services, status="convicted", supervisionAfterDetention=True))
    second = await view(client, orgs.vught, subject)
    assert (second["round"], second["moment"], second["status"], second["decision"]) == (2, "after-verdict", "open", None)
    assert (second["outcome"], second["criterion"]) == ("priority", "supervision-after-detention")
    assert [e.data["change"] for e in await changed_events(services)][-2:] == ["new-round", "outcome"]

    services.clock.advance(timedelta(days=400))
    await admit(chain, services, kind="sentence")
    readmitted = await view(client, orgs.vught, subject)
    assert readmitted["stayId"] != second["stayId"]
    assert (readmitted["round"], readmitted["moment"]) == (1, "new-admission")


async def test_time_alone_changes_an_outcome_and_the_round_announces_it(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services, kind="sentence")
    await chain.send(orgs.reclassering, "risk-information", [orgs.vught.oin],
                     risk_information(services, "low", assessed_days_ago=300), purpose="risk-management")
    await chain.send(orgs.reclassering, "probation-advice", [orgs.vught.oin], with_subject(example("probation-advice")) | {
        "reportDate": today(services).isoformat()}, purpose="reintegration")
    low = await view(client, orgs.vught, subject)
    assert low["criterion"] == "low-recidivism-risk"
    expires = date.fromisoformat(low["reevaluateOn"])
    assert expires == add_years(today(services) - timedelta(days=300), 1) + timedelta(days=1)  # a year and a day

    services.clock.advance(timedelta(days=(expires - today(services)).days - 1))
    assert await triage_round(services) == 0  # the last day it counts
    services.clock.advance(timedelta(days=1))
    assert await triage_round(services) == 1
    after = await view(client, orgs.vught, subject)
    assert (after["outcome"], after["criterion"]) == ("rest-group", "rest-group")
    event = (await changed_events(services))[-1]
    assert (event.data["cause"], event.data["previousOutcome"], event.data["messageId"]) == ("time", "no-priority", None)
    assert await triage_round(services) == 0  # once


async def test_a_triage_whose_facts_cannot_be_opened_is_passed_over_and_the_round_goes_on(client, orgs, services, caplog):
    from gateway.metrics import WORKER_FAILURES

    chain = Chain(client, orgs)
    subjects = [await admit(chain, services, kind="sentence", bsn=bsn) for bsn in (BSN, "999990020")]
    for bsn in (BSN, "999990020"):
        await chain.send(orgs.reclassering, "risk-information", [orgs.vught.oin],
                         risk_information(services, "low", assessed_days_ago=364, bsn=bsn), purpose="risk-management")
    async with services.db.write() as s:
        broken = (await s.exec(select(Triage).where(Triage.subject_id == subjects[0]))).one()
        broken.facts_ciphertext = b"\x00" * len(broken.facts_ciphertext)
        s.add(broken)
    failures = WORKER_FAILURES.labels("retention", "triage-unreviewable")._value.get()

    services.clock.advance(timedelta(days=2))  # both assessments are now a year and a day old
    assert await triage_round(services) == 1  # the other triage changed, the round went on
    assert (await view(client, orgs.vught, subjects[1]))["criterion"] == "no-probation-information"
    [logged] = [r for r in caplog.records if r.getMessage() == "triage.unreviewable"]
    assert logged.exc_info is not None and logged.triage_id == broken.id
    assert WORKER_FAILURES.labels("retention", "triage-unreviewable")._value.get() == failures + 1
    async with services.db.read() as s:
        assert (await s.exec(select(Triage.reevaluate_on).where(Triage.id == broken.id))).one() is None
    assert await triage_round(services) == 0  # passed over, not tried every round
