"""Trajectory deadlines with a controllable clock: the chain's process norms per stay (gateway/trajectory),
the job that finds what was missed, who sees it, and who leads."""
import asyncio
from datetime import date, timedelta

import httpx
import pytest
from sqlmodel import select

from gateway.app import create_app
from gateway.audit.record import Activity
from gateway.db.models import AuditRecord, OutboxEvent
from gateway.outbox.cloudevent import from_kafka
from gateway.services import Services
from gateway.trajectory.monitor import deadline_round
from gateway.trajectory.norms import local_date
from tests.conftest import settings_for
from tests.scenario import BSN, Chain, example, problem, with_subject

PROBATION = "00000001002345678000"
ZWOLLE = "00000001001234568000"


def today(services) -> date:
    return local_date(services.clock.now())


def later(services, days: int) -> None:
    services.clock.advance(timedelta(days=days))


async def admit(chain: Chain, services, *, release_in: int | None = None, kind: str = "sentence",
                recipients=("municipality:0363", PROBATION)) -> str:
    """PI Vught's detention-notice, arrival today (by the test's clock); the subject's pseudonym."""
    payload = with_subject(example("detention-notice"))
    payload.update(arrivalDate=today(services).isoformat(), detentionKind=kind)
    payload.pop("knownReleaseDate")
    if release_in is not None:
        payload["knownReleaseDate"] = (today(services) + timedelta(days=release_in)).isoformat()
    return (await chain.send(chain.orgs.vught, "detention-notice", list(recipients), payload)).json()["subjectId"]


async def final_plan(chain: Chain, version: int = 1) -> dict:
    payload = with_subject(example("dr-plan", version=2))
    payload.update(status="final", planVersion=version)
    return (await chain.send(chain.orgs.vught, "dr-plan", ["municipality:0363"], payload, version=2)).json()


async def release_notice(chain: Chain, services, release_in: int, certainty: str = "planned", framework=None) -> dict:
    payload = with_subject(example("release-notice"))
    payload.update(expectedReleaseDate=(today(services) + timedelta(days=release_in)).isoformat(), certainty=certainty)
    payload.pop("arrivalDate")
    payload.pop("legalFramework")
    if framework is not None:
        payload["legalFramework"] = framework
    return (await chain.send(chain.orgs.vught, "release-notice", ["municipality:0363"], payload)).json()


async def trajectory(client, org, subject_id: str, expect: int = 200) -> dict:
    r = await client.get(f"/api/v1/trajectories/{subject_id}", headers=org.headers())
    assert r.status_code == expect, r.text
    return r.json()


async def deadline(client, org, subject_id: str, norm: str, round_: int = 1) -> dict:
    found = [d for d in (await trajectory(client, org, subject_id))["deadlines"] if d["norm"] == norm and d["round"] == round_]
    assert len(found) == 1, (norm, round_, found)
    return found[0]


async def overdue_events(services) -> list[OutboxEvent]:
    async with services.db.read() as s:
        return list((await s.exec(select(OutboxEvent).where(OutboxEvent.type == "deadline.overdue"))).all())


async def test_a_stay_without_a_screening_result_after_ten_days_becomes_overdue_and_emits_the_event(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services)
    arrival = today(services)
    screening = await deadline(client, orgs.vught, subject, "screening-shared")
    assert screening["dueOn"] == (arrival + timedelta(days=10)).isoformat() and screening["status"] == "open"

    later(services, 10)  # the tenth day itself is still in time
    assert await deadline_round(services) == 0
    later(services, 1)
    assert await deadline_round(services) == 1
    screening = await deadline(client, orgs.vught, subject, "screening-shared")
    assert screening["status"] == "overdue" and screening["daysLate"] == 1 and screening["responsibleOin"] == orgs.vught.oin

    [event] = await overdue_events(services)
    assert event.key == subject and event.topic == services.settings.events_topic
    assert event.data == {"deadlineId": screening["id"], "subjectId": subject, "norm": "screening-shared", "round": 1,
                          "dueOn": screening["dueOn"], "responsibleKind": "dji", "responsibleOin": orgs.vught.oin,
                          "prisonOin": orgs.vught.oin, "parties": [orgs.vught.oin]}
    assert BSN not in str(event.data)
    assert await deadline_round(services) == 0 and len(await overdue_events(services)) == 1  # once, not every round

    listed = (await client.get("/api/v1/deadlines", params={"status": "overdue"}, headers=orgs.vught.headers())).json()
    assert [(d["subjectId"], d["norm"]) for d in listed["items"]] == [(subject, "screening-shared")]
    async with services.db.read() as s:
        marked = (await s.exec(select(AuditRecord).where(AuditRecord.activity == Activity.DEADLINE.value))).all()
    assert [(r.subject_id, r.rule, r.outcome, r.counterparty_oin) for r in marked] == [
        (subject, "screening-shared", "overdue", orgs.vught.oin)]

    # a late screening result still counts, as met late
    payload = with_subject(example("screening-result"))
    payload.update(arrivalDate=arrival.isoformat(), screeningDate=today(services).isoformat())
    await chain.send(orgs.vught, "screening-result", ["municipality:0363"], payload)
    screening = await deadline(client, orgs.vught, subject, "screening-shared")
    assert (screening["status"], screening["daysLate"]) == ("met-late", 1)


async def test_a_final_plan_on_day_27_meets_the_four_week_norm_and_starts_the_six_weekly_review(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services, release_in=200)
    later(services, 10)
    draft = with_subject(example("dr-plan", version=2)) | {"status": "draft"}
    await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], draft, version=2)
    assert (await deadline(client, orgs.vught, subject, "plan-established"))["status"] == "open"  # a draft is no plan

    later(services, 17)
    plan = await final_plan(chain)
    established = await deadline(client, orgs.vught, subject, "plan-established")
    assert (established["status"], established["daysLate"], established["metByMessageId"]) == ("met", 0, plan["id"])
    assert [a["recipientOin"] for a in established["acknowledgements"]] == [orgs.amsterdam.oin]
    review = await deadline(client, orgs.vught, subject, "plan-review")
    assert review["status"] == "open" and review["dueOn"] == (today(services) + timedelta(days=42)).isoformat()

    later(services, 40)
    await final_plan(chain, version=2)
    assert (await deadline(client, orgs.vught, subject, "plan-review"))["status"] == "met"
    second = await deadline(client, orgs.vught, subject, "plan-review", 2)
    assert second["status"] == "open" and second["dueOn"] == (today(services) + timedelta(days=42)).isoformat()


async def test_plans_sent_side_by_side_keep_one_trajectory_round_after_round(client, orgs, services):
    """Four final plans about one stay committed concurrently (PostgreSQL runs them side by side): each is
    accepted, and the stay's deadlines read as if they came one after the other, no round opened twice."""
    chain = Chain(client, orgs)
    subject = await admit(chain, services, release_in=200)
    later(services, 5)
    sent = await asyncio.gather(*(final_plan(chain, version=v) for v in range(1, 5)))
    assert len({p["id"] for p in sent}) == 4
    deadlines = (await trajectory(client, orgs.vught, subject))["deadlines"]
    plans = sorted((d["norm"], d["round"], d["status"]) for d in deadlines if d["norm"].startswith("plan-"))
    assert plans == [("plan-established", 1, "met"), ("plan-review", 1, "met"), ("plan-review", 2, "met"),
                     ("plan-review", 3, "met"), ("plan-review", 4, "open")]
    met_by = [d["metByMessageId"] for d in deadlines if d["status"] == "met" and d["norm"].startswith("plan-")]
    assert sorted(met_by) == sorted(p["id"] for p in sent)  # each plan met exactly one round


async def test_a_deadline_due_after_a_past_release_no_longer_applies_instead_of_going_overdue(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services, release_in=60)
    later(services, 40)
    await final_plan(chain)  # late, and it opens a review due on day 82, after the release on day 60
    assert (await deadline(client, orgs.vught, subject, "plan-review"))["status"] == "open"
    later(services, 45)
    await deadline_round(services)
    review = await deadline(client, orgs.vught, subject, "plan-review")
    assert (review["status"], review["reason"]) == ("not-applicable", "released before it was due")
    assert "plan-review" not in {e.data["norm"] for e in await overdue_events(services)}


async def test_a_final_plan_in_week_9_misses_the_four_week_norm_and_the_statistics_show_the_gap(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services, release_in=200)
    later(services, 29)
    assert await deadline_round(services) == 2  # the screening result and the plan
    assert (await deadline(client, orgs.vught, subject, "plan-established"))["status"] == "overdue"

    later(services, 63 - 29)  # MDO 2, around week 9: where practice adopts the plan
    await final_plan(chain)
    established = await deadline(client, orgs.vught, subject, "plan-established")
    assert (established["status"], established["daysLate"]) == ("met-late", 35)

    r = await client.get("/api/v1/deadlines/stats", headers=orgs.vught.headers())
    assert r.status_code == 200, r.text
    by_norm = {row["norm"]: row for row in r.json()["items"]}
    assert by_norm["plan-established"] | {"organisationName": None} == {
        "organisationOin": orgs.vught.oin, "organisationName": None, "norm": "plan-established", "due": 1, "metOnTime": 0,
        "metLate": 1, "overdue": 0, "open": 0, "shareOnTime": 0.0, "averageDaysLate": 35.0}
    assert by_norm["plan-established"]["organisationName"] == "PI Vught"
    assert (by_norm["screening-shared"]["overdue"], by_norm["screening-shared"]["shareOnTime"]) == (1, 0.0)
    assert by_norm["plan-review"]["open"] == 1 and by_norm["plan-review"]["shareOnTime"] is None
    outside = (await client.get("/api/v1/deadlines/stats", params={"dueTo": (today(services) - timedelta(days=200)).isoformat()},
                                headers=orgs.vught.headers())).json()
    assert outside["items"] == []


async def test_a_release_notice_ten_days_before_release_misses_the_lead_time(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services)
    later(services, 60)
    notice = await release_notice(chain, services, release_in=10)
    notified = await deadline(client, orgs.vught, subject, "release-notified")
    assert notified["dueOn"] == (today(services) + timedelta(days=10 - 28)).isoformat()
    assert (notified["status"], notified["daysLate"], notified["metByMessageId"]) == ("met-late", 18, notice["id"])


async def test_a_release_notice_four_weeks_ahead_is_in_time_and_a_known_date_left_unannounced_becomes_overdue(client, orgs, services):
    chain = Chain(client, orgs)
    in_time = await admit(chain, services, release_in=120)
    later(services, 120 - 28)
    await release_notice(chain, services, release_in=28)
    assert (await deadline(client, orgs.vught, in_time, "release-notified"))["status"] == "met"

    other = Chain(client, orgs)
    payload = with_subject(example("detention-notice"), "111222333")
    payload.update(arrivalDate=today(services).isoformat(), knownReleaseDate=(today(services) + timedelta(days=40)).isoformat())
    unannounced = (await other.send(orgs.vught, "detention-notice", ["municipality:0363"], payload)).json()["subjectId"]
    later(services, 13)
    await deadline_round(services)
    assert (await deadline(client, orgs.vught, unannounced, "release-notified"))["status"] == "overdue"


async def test_an_unexpected_release_notified_the_same_day_counts_as_met(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services, kind="remand")
    later(services, 20)
    await release_notice(chain, services, release_in=0, certainty="unexpected")
    notified = await deadline(client, orgs.vught, subject, "release-notified")
    assert (notified["status"], notified["daysLate"], notified["dueOn"]) == ("met", 0, today(services).isoformat())
    view = await trajectory(client, orgs.amsterdam, subject)
    assert view["stay"]["releaseCertainty"] == "unexpected" and view["stay"]["shortStay"] is True
    # released today without a legal framework: the municipality's aftercare coordinator leads
    assert view["lead"] == view["leadAfterRelease"] == {
        "role": "aftercare-coordinator", "organisationOin": orgs.amsterdam.oin, "organisationName": "Gemeente Amsterdam (nazorg)",
        "basis": "release-notice: no supervision follows; the municipality of return leads aftercare"}
    # a short stay follows the short-stay path: the plan norm no longer applies
    plan = await deadline(client, orgs.vught, subject, "plan-established")
    assert plan["status"] == "not-applicable" and "short stay" in plan["reason"]
    assert not any(d["norm"] == "conditional-release-advice" for d in view["deadlines"])  # remand: no v.i.


async def test_a_short_stay_has_no_plan_norm_but_must_announce_its_release_at_once(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services, release_in=14)
    view = await trajectory(client, orgs.vught, subject)
    assert view["stay"]["shortStay"] is True
    assert {d["norm"] for d in view["deadlines"]} == {"screening-shared", "release-notified"}
    assert (await deadline(client, orgs.vught, subject, "release-notified"))["dueOn"] == today(services).isoformat()
    later(services, 1)
    assert await deadline_round(services) == 1  # the release was known on arrival and not announced


async def test_a_transfer_moves_the_open_deadlines_to_the_new_prison(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services, release_in=400)
    payload = with_subject(example("screening-result"))
    payload.update(arrivalDate=today(services).isoformat(), screeningDate=today(services).isoformat())
    await chain.send(orgs.vught, "screening-result", ["municipality:0363"], payload)
    later(services, 12)
    transfer = with_subject(example("transfer-notice"))
    transfer["transferDate"] = today(services).isoformat()
    await chain.send(orgs.vught, "transfer-notice", [ZWOLLE, PROBATION], transfer)

    view = await trajectory(client, orgs.zwolle, subject)
    by_norm = {d["norm"]: d for d in view["deadlines"]}
    assert view["stay"]["prisonOin"] == ZWOLLE and view["lead"]["organisationOin"] == ZWOLLE
    assert (by_norm["screening-shared"]["status"], by_norm["screening-shared"]["responsibleOin"]) == ("met", orgs.vught.oin)
    for norm in ("plan-established", "release-notified"):
        assert (by_norm[norm]["status"], by_norm[norm]["responsibleOin"]) == ("open", ZWOLLE), norm
    assert by_norm["conditional-release-advice"]["responsibleOin"] == PROBATION

    later(services, 17)
    await deadline_round(services)
    mine = (await client.get("/api/v1/deadlines", params={"status": "overdue", "organisation": ZWOLLE},
                             headers=orgs.zwolle.headers())).json()["items"]
    assert [(d["norm"], d["responsibleName"]) for d in mine] == [("plan-established", "PI Zwolle")]
    assert [e.data["parties"] for e in await overdue_events(services)] == [[ZWOLLE]]


async def test_the_lead_after_release_follows_the_release_notice_legal_framework(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services, release_in=400)
    view = await trajectory(client, orgs.reclassering, subject)
    assert view["lead"]["role"] == "casemanager" and view["lead"]["organisationOin"] == orgs.vught.oin
    assert view["leadAfterRelease"]["role"] == "aftercare-coordinator"  # no legal framework announced yet
    cr = {d["norm"]: d for d in view["deadlines"]}["conditional-release-advice"]
    assert cr["dueOn"] == (today(services) + timedelta(days=400 - 105)).isoformat() and cr["responsibleKind"] == "probation"

    later(services, 300)
    await release_notice(chain, services, release_in=100,
                         framework={"supervision": True, "specialConditions": ["Meldplicht"], "aftercareLead": "probation"})
    view = await trajectory(client, orgs.reclassering, subject)
    assert view["leadAfterRelease"]["role"] == "probation-officer"
    assert view["leadAfterRelease"]["organisationOin"] == PROBATION and view["lead"]["role"] == "casemanager"
    later(services, 101)  # past the release day: 100 × 24 h after a late-evening send across the end of summer time
    # is the 99th Dutch day, not the 100th (this failed between 22:00 and 23:00 UTC in December)
    assert (await trajectory(client, orgs.reclassering, subject))["lead"]["role"] == "probation-officer"


async def test_a_new_stay_ends_the_earlier_one_and_what_it_left_open_no_longer_applies(client, orgs, services):
    chain = Chain(client, orgs)
    first = await admit(chain, services, release_in=100)
    later(services, 200)
    second = await admit(chain, services)
    assert first == second
    view = await trajectory(client, orgs.vught, second)
    assert view["stay"]["arrivalDate"] == today(services).isoformat()
    assert all(d["status"] == "open" for d in view["deadlines"])
    listed = (await client.get("/api/v1/deadlines", params={"subjectId": first, "status": "not-applicable"},
                               headers=orgs.vught.headers())).json()["items"]
    assert {d["reason"] for d in listed} == {"a later stay began"}


async def test_only_the_parties_of_a_trajectory_and_auditors_see_it(client, orgs, services):
    chain = Chain(client, orgs)
    subject = await admit(chain, services)
    for party in (orgs.vught, orgs.amsterdam, orgs.reclassering, orgs.fg_amsterdam, orgs.inspectorate):
        assert (await trajectory(client, party, subject))["subjectId"] == subject
    problem(await client.get(f"/api/v1/trajectories/{subject}", headers=orgs.rotterdam.headers()), 404, "not-found")
    problem(await client.get(f"/api/v1/trajectories/{subject}", headers=orgs.zwolle.headers()), 404, "not-found")
    assert (await client.get("/api/v1/deadlines", headers=orgs.rotterdam.headers())).json()["items"] == []
    assert len((await client.get("/api/v1/deadlines", headers=orgs.amsterdam.headers())).json()["items"]) == 2
    assert (await client.get("/api/v1/deadlines/stats", headers=orgs.rotterdam.headers())).json()["items"] == []
    async with services.db.read() as s:
        looks = (await s.exec(select(AuditRecord).where(AuditRecord.activity == Activity.TRAJECTORY_QUERY.value,
                                                        AuditRecord.subject_id == subject))).all()
    assert {r.actor_oin for r in looks} == {orgs.vught.oin, orgs.amsterdam.oin, orgs.reclassering.oin,
                                            orgs.fg_amsterdam.oin, orgs.inspectorate.oin}


async def test_deadline_filters_name_the_allowed_values_and_page_by_due_day(client, orgs, services):
    r = await client.get("/api/v1/deadlines", params={"status": "late"}, headers=orgs.vught.headers())
    assert "overdue" in problem(r, 422, "validation-failed")["detail"]
    r = await client.get("/api/v1/deadlines", params={"norm": "plan"}, headers=orgs.vught.headers())
    assert "plan-established" in problem(r, 422, "validation-failed")["detail"]
    problem(await client.get("/api/v1/deadlines", params={"dueFrom": "2026-12-10", "dueTo": "2026-12-01"},
                             headers=orgs.vught.headers()), 400, "invalid-request")
    problem(await client.get("/api/v1/trajectories/999990019", headers=orgs.vught.headers()), 422, "validation-failed")

    chain = Chain(client, orgs)
    await admit(chain, services, release_in=200)
    seen, pages, cursor = [], 0, None
    while True:
        page = (await client.get("/api/v1/deadlines", params={"pageSize": 2, **({"cursor": cursor} if cursor else {})},
                                 headers=orgs.vught.headers())).json()
        seen, pages, cursor = seen + [d["norm"] for d in page["items"]], pages + 1, page["nextCursor"]
        if not page["hasMore"]:
            break
    # by due day (10, 28 and 200 - 28 days after arrival); a 200-day stay has no conditional-release norm
    assert (seen, pages) == (["screening-shared", "plan-established", "release-notified"], 2)


@pytest.fixture
async def kafka_services(database, broker):
    svc = Services.from_settings(settings_for(database, kafka_bootstrap_servers=broker))
    yield svc
    await svc.db.dispose()


@pytest.mark.broker
async def test_the_overdue_event_reaches_the_responsible_prisons_own_topic(kafka_services, orgs, broker):
    from tests.integration.test_events import consume, drain

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(services=kafka_services)),
                                 base_url="http://gateway") as client:
        subject = await admit(Chain(client, orgs), kafka_services, release_in=200)
    later(kafka_services, 11)
    assert await deadline_round(kafka_services) == 1
    await drain(kafka_services)
    topic = f"{kafka_services.settings.kafka_topic_prefix}.org.{orgs.vught.oin}"
    events = [from_kafka(r.value, r.key, r.headers) for r in await consume(broker, topic, 3)]
    overdue = [e for e in events if e.get_type() == "nl.brb.deadline.overdue"]
    assert len(overdue) == 1 and overdue[0].get_subject() == subject and overdue[0].get_data()["norm"] == "screening-shared"
