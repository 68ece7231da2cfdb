"""The SOM triage's first pass, table-driven: every criterion of gateway/triage/som.yaml, the order between them,
on remand and after the verdict, what time alone changes, and what the facts learn from which message."""
from datetime import date

import pytest

from contracts import validate_payload
from gateway.triage.evaluator import add_years, load
from gateway.triage.facts import Dated, Facts, Known, KnownDay, Source, learn
from tests.scenario import example, with_subject

TODAY = date(2026, 12, 7)
RULES = load()


def src(n: int = 1, message_type: str = "som-triage", on: date = TODAY) -> Source:
    return Source(message_id=f"00000000-0000-4000-8000-{n:012d}", message_type=message_type, on=on)


def facts(phase: str = "remand", *, arrival: date | None = date(2026, 11, 16), end: date | None = None,
          born: date | None = date(1990, 4, 12), assessments=((date(2026, 6, 1), "medium"),), records=(),
          advice: bool | None = None, override: str | None = None, profile: dict | None = None, **flags) -> Facts:
    """A stay's facts; by default a recent medium-risk assessment (so probation information exists and no
    early criterion fires): the rest group."""
    return Facts(
        phase=Known(value=phase, source=src(1, "detention-notice")),
        arrival=KnownDay(value=arrival, source=src(1, "detention-notice")) if arrival else None,
        expected_end=KnownDay(value=end, source=src(2, "release-notice")) if end else None,
        date_of_birth=KnownDay(value=born, source=src(1, "detention-notice")) if born else None,
        flags={k: Known(value=v, source=src(3)) for k, v in flags.items()},
        assessments=[Dated(on=on, level=level, high=level == "high", source=src(4, "risk-information"))
                     for on, level in assessments],
        probation_records=[Dated(on=on, high=level == "high", source=src(4, "risk-information")) for on, level in assessments]
        + [Dated(on=on, high=high, source=src(5, "probation-advice")) for on, high in records],
        advice_requested=Known(value=advice, source=src(6)) if advice is not None else None,
        override=Known(value=override, source=src(7)) if override else None,
        profile={k: Known(value=v, source=src(8)) for k, v in (profile or {}).items()},
    )


CASES = [
    # (case, facts, outcome, criterion) -- both phases
    ("no residence status", facts(no_residence_status=True), "no-priority", "no-residence-status"),
    ("no residence status, convicted", facts("convicted", no_residence_status=True), "no-priority", "no-residence-status"),
    ("no residence status wins over supervision", facts("convicted", no_residence_status=True, supervision_follows=True),
     "no-priority", "no-residence-status"),
    ("no residence status wins over art. 43.3", facts("convicted", no_residence_status=True, art_43_3_placement=True),
     "no-priority", "no-residence-status"),
    ("low risk assessed exactly a year ago", facts(assessments=[(date(2025, 12, 7), "low")]), "no-priority",
     "low-recidivism-risk"),
    ("low risk assessed a year and a day ago no longer counts (and is no probation information)",
     facts(assessments=[(date(2025, 12, 6), "low")]), "no-priority", "no-probation-information"),
    ("a year-and-a-day-old low risk, with a recent advice: weighed",
     facts(assessments=[(date(2025, 12, 6), "low")], records=[(date(2026, 10, 1), False)]), "rest-group", "rest-group"),
    ("the newest assessment counts: high after low", facts(assessments=[(date(2026, 1, 5), "low"), (date(2026, 9, 1), "high")]),
     "rest-group", "rest-group"),
    ("the newest assessment counts: low after high", facts(assessments=[(date(2026, 1, 5), "high"), (date(2026, 9, 1), "low")]),
     "no-priority", "low-recidivism-risk"),
    ("low risk wins over supervision", facts("convicted", assessments=[(date(2026, 9, 1), "low")], supervision_follows=True),
     "no-priority", "low-recidivism-risk"),
    ("no probation information at all", facts(assessments=()), "no-priority", "no-probation-information"),
    ("only a two-year-old advice", facts(assessments=(), records=[(date(2024, 11, 1), False)]), "no-priority",
     "no-probation-information"),
    ("a two-year-old high-risk assessment still counts", facts(assessments=[(date(2024, 11, 1), "high")]),
     "rest-group", "rest-group"),
    ("convicted: no probation information wins over supervision", facts("convicted", assessments=(), supervision_follows=True),
     "no-priority", "no-probation-information"),
    ("convicted: a year-and-a-day-old low risk is no probation information",
     facts("convicted", assessments=[(date(2025, 12, 6), "low")], art_43_3_placement=True),
     "no-priority", "no-probation-information"),
    ("convicted: short stay", facts("convicted", end=date(2026, 12, 10)), "no-priority", "short-stay"),
    ("no probation information wins over the short stay", facts(assessments=(), end=date(2026, 11, 30)),
     "no-priority", "no-probation-information"),
    ("expected stay of 27 days", facts(end=date(2026, 12, 13)), "no-priority", "short-stay"),
    ("expected stay of exactly 28 days is no short stay", facts(end=date(2026, 12, 14)), "rest-group", "rest-group"),
    ("short stay wins over supervision", facts("convicted", end=date(2026, 12, 1), supervision_follows=True),
     "no-priority", "short-stay"),
    # remand only
    ("remand: an advice asked of probation postpones", facts(advice=True), "postponed", "advice-pending"),
    ("convicted: a pending advice request no longer postpones", facts("convicted", advice=True), "rest-group", "rest-group"),
    ("remand: the advice came", facts(advice=False), "rest-group", "rest-group"),
    ("advice pending wins over the young adult", facts(advice=True, born=date(2005, 1, 1), asr_not_applied=True),
     "postponed", "advice-pending"),
    ("remand: young adult (21), ASR not applied", facts(born=date(2005, 1, 1), asr_not_applied=True), "priority",
     "young-adult-asr"),
    ("remand: 23 is still a young adult", facts(born=date(2003, 12, 8), asr_not_applied=True), "priority", "young-adult-asr"),
    ("remand: 24 is no young adult", facts(born=date(2002, 12, 7), asr_not_applied=True), "rest-group", "rest-group"),
    ("remand: 17 is no young adult", facts(born=date(2009, 12, 8), asr_not_applied=True), "rest-group", "rest-group"),
    ("remand: young adult, ASR applied", facts(born=date(2005, 1, 1), asr_not_applied=False), "rest-group", "rest-group"),
    ("convicted: young adult, ASR not applied is remand only", facts("convicted", born=date(2005, 1, 1), asr_not_applied=True),
     "rest-group", "rest-group"),
    # after the verdict
    ("convicted: supervision after detention", facts("convicted", supervision_follows=True), "priority",
     "supervision-after-detention"),
    ("remand: supervision is weighed after the verdict only", facts(supervision_follows=True), "rest-group", "rest-group"),
    ("convicted: art. 43.3 placement", facts("convicted", art_43_3_placement=True), "priority", "art-43-3-placement"),
    ("convicted: supervision comes before art. 43.3", facts("convicted", art_43_3_placement=True, supervision_follows=True),
     "priority", "supervision-after-detention"),
    ("convicted: ISD imposed", facts("convicted", isd_imposed=True), "no-priority", "measure-imposed"),
    ("convicted: TBS imposed", facts("convicted", tbs_imposed=True), "no-priority", "measure-imposed"),
    ("convicted: art. 43.3 comes before the measure", facts("convicted", tbs_imposed=True, art_43_3_placement=True),
     "priority", "art-43-3-placement"),
    ("remand: a measure is weighed after the verdict only", facts(tbs_imposed=True), "rest-group", "rest-group"),
    ("convicted: outflow with a care authorisation", facts("convicted", outflow_with_care_authorisation=True),
     "no-priority", "outflow-with-care-authorisation"),
    ("convicted: outflow to care, but supervision follows", facts("convicted", outflow_with_care_authorisation=True,
                                                                   supervision_follows=True),
     "priority", "supervision-after-detention"),
    ("convicted: nothing decides", facts("convicted"), "rest-group", "rest-group"),
    # the casemanager's override
    ("override of a no-priority outcome", facts(no_residence_status=True, override="Verblijfsvergunning aangevraagd"),
     "rest-group", "casemanager-override"),
    ("an override does not touch a priority", facts("convicted", supervision_follows=True, override="reden"),
     "priority", "supervision-after-detention"),
    ("an override does not touch a postponement", facts(advice=True, override="reden"), "postponed", "advice-pending"),
]


@pytest.mark.parametrize("case,given,outcome,criterion", CASES, ids=[c[0] for c in CASES])
def test_criterion(case, given, outcome, criterion):
    found = RULES.evaluate(given, TODAY)
    assert (found.outcome, found.criterion) == (outcome, criterion)
    assert found.title == RULES[criterion].title and found.explanation == RULES[criterion].explanation


def test_every_criterion_of_som_yaml_is_in_the_table_for_each_of_its_phases():
    phases = {}
    for _, given, _, criterion in CASES:
        phases.setdefault(criterion, set()).add(given.phase.value)
    for c in RULES.criteria:
        assert set(c.phases) <= phases.get(c.id, set()), (c.id, c.phases, phases.get(c.id))


def test_each_outcome_names_the_facts_that_fired_it_and_their_messages():
    found = RULES.evaluate(facts("convicted", no_residence_status=True, supervision_follows=True), TODAY)
    [fired] = found.fired
    assert (fired.fact, fired.value, [s.message_id for s in fired.sources]) == (
        "no_residence_status", True, [src(3).message_id])
    low = RULES.evaluate(facts(assessments=[(date(2026, 3, 1), "low")]), TODAY)
    assert [(f.fact, f.value, f.sources[0].message_type) for f in low.fired] == [("recent_low_risk", True, "risk-information")]
    young = RULES.evaluate(facts(born=date(2005, 1, 1), asr_not_applied=True), TODAY)
    assert [f.fact for f in young.fired] == ["young_adult", "asr_not_applied"]


def test_art_43_3_is_mandatory_and_the_rest_group_is_for_the_professionals():
    assert RULES.evaluate(facts("convicted", art_43_3_placement=True), TODAY).mandatory
    rest = RULES.evaluate(facts("convicted"), TODAY)
    assert rest.professional_weighing and not rest.mandatory
    assert not RULES.evaluate(facts("convicted", supervision_follows=True), TODAY).professional_weighing


def test_an_override_names_the_reason_and_the_criterion_it_overrode():
    found = RULES.evaluate(facts(no_residence_status=True, override="Verblijfsvergunning aangevraagd"), TODAY)
    assert found.first_pass == "no-residence-status" and found.professional_weighing
    assert [(f.fact, f.value) for f in found.fired] == [("override_reason", "Verblijfsvergunning aangevraagd"),
                                                        ("no_residence_status", True)]


@pytest.mark.parametrize("given,indicators", [
    (facts("convicted"), ()),
    (facts("convicted", lvb=True), ("lvb",)),
    (facts("convicted", violent_offence=True, assessments=[(date(2026, 9, 1), "high")]), ("violent-offence", "high-risk")),
    (facts("convicted", profile={"criminogenic_factors": ["Middelen", "Werk", "Schulden"]}), ("many-criminogenic-factors",)),
    (facts("convicted", profile={"criminogenic_factors": ["Middelen", "Werk"]}), ()),
    (facts("convicted", addiction=True), ("addiction-or-homelessness",)),
    (facts("convicted", housing_need=True), ("addiction-or-homelessness",)),
    (facts("convicted", born=date(2004, 6, 1)), ("young-adult",)),
    (facts("convicted", lvb=True, addiction=True, born=date(2004, 6, 1), violent_offence=True),
     ("lvb", "violent-offence", "addiction-or-homelessness", "young-adult")),
], ids=["none", "lvb", "violent-high", "three-factors", "two-factors", "addiction", "homelessness", "young-adult", "four"])
def test_the_rest_group_is_tiered_by_its_indicators(given, indicators):
    found = RULES.evaluate(given, TODAY)
    assert found.outcome == "rest-group" and found.indicators == indicators


def test_time_alone_changes_the_outcome_on_the_day_it_names():
    low = facts(assessments=[(date(2026, 3, 1), "low")], records=[(date(2026, 10, 1), False)])
    found = RULES.evaluate(low, TODAY)
    assert found.criterion == "low-recidivism-risk" and found.changes_on == date(2027, 3, 2)
    assert RULES.evaluate(low, date(2027, 3, 1)).criterion == "low-recidivism-risk"
    assert RULES.evaluate(low, date(2027, 3, 2)).criterion == "rest-group"
    young = facts(born=date(2003, 12, 20), asr_not_applied=True, assessments=[(date(2026, 6, 1), "high")])  # never stale
    assert RULES.evaluate(young, TODAY).changes_on == date(2027, 12, 20)  # the 24th birthday
    assert RULES.evaluate(young, date(2027, 12, 20)).criterion == "rest-group"
    medium = facts()  # a medium assessment of 2026-06-01: the only probation information, for a year
    assert RULES.evaluate(medium, TODAY).changes_on == date(2027, 6, 2)
    assert RULES.evaluate(medium, date(2027, 6, 2)).criterion == "no-probation-information"
    leap = facts(assessments=[(date(2024, 2, 29), "low")])
    assert RULES.evaluate(leap, date(2025, 2, 28)).criterion == "low-recidivism-risk"
    assert RULES.evaluate(leap, date(2025, 3, 1)).criterion == "no-probation-information"
    assert add_years(date(2024, 2, 29), 1) == date(2025, 2, 28)


def _contract(message_type: str, payload: dict, version: int = 1):
    return validate_payload(message_type, version, payload)


def test_facts_come_only_from_what_reached_the_prison_or_probation():
    risk = with_subject(example("risk-information"))
    risk["summary"].update(assessmentDate="2026-10-01", recidivismRisk="low")
    contract = _contract("risk-information", risk)
    to_mayor = learn(Facts(), "risk-information", contract, src(9, "risk-information"), ["mayor"], [])
    assert to_mayor == Facts()
    to_prison = learn(Facts(), "risk-information", contract, src(9, "risk-information"), ["dji", "mayor"], [])
    assert [(a.on, a.level) for a in to_prison.assessments] == [(date(2026, 10, 1), "low")]
    withheld = learn(Facts(), "risk-information", contract, src(9, "risk-information"), ["dji"], ["summary"])
    assert withheld.assessments == []


def test_the_stay_facts_of_the_prisons_notices_count_whoever_received_them():
    notice = with_subject(example("release-notice"))
    notice["legalFramework"] = {"supervision": True, "aftercareLead": "probation"}
    learnt = learn(Facts(), "release-notice", _contract("release-notice", notice), src(2, "release-notice"),
                   ["municipality"], [])
    assert learnt.flag("supervision_follows").value is True
    assert learnt.expected_end.value == date.fromisoformat(notice["expectedReleaseDate"])


def test_a_som_triage_part_1_and_part_2_state_their_facts():
    payload = with_subject(example("som-triage"), dateOfBirth="2005-03-01")
    learnt = learn(Facts(), "som-triage", _contract("som-triage", payload), src(10), ["probation"], [])
    assert learnt.phase.value == "remand" and learnt.advice_requested.value is True
    assert learnt.flag("no_residence_status").value is False and learnt.decision.outcome == "involvement-prepare-supervision"
    assert learnt.date_of_birth.value == date(2005, 3, 1)
    assert [(a.on, a.level) for a in learnt.assessments] == [(date(2026, 6, 1), "medium")]
    advice = with_subject(example("probation-advice"))
    answered = learn(learnt, "probation-advice", _contract("probation-advice", advice), src(11, "probation-advice"),
                     ["dji"], [])
    assert answered.advice_requested.value is False and answered.decision is not None
    assert answered.new_round().decision is None
