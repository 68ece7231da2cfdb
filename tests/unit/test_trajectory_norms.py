"""The process norms on their own (gateway/trajectory/norms.py): when each is due, when it applies, what meets it."""
from datetime import date, datetime, timezone

import pytest

from gateway.trajectory.norms import Sent, StayFacts, days_late, load, local_date

NORMS = load()
ARRIVAL = date(2026, 11, 2)


def stay(release: date | None = None, **kw) -> StayFacts:
    return StayFacts(arrival=ARRIVAL, release=release, **kw)


@pytest.mark.parametrize(("norm", "facts", "due"), [
    ("screening-shared", stay(), date(2026, 11, 12)),  # 10 days
    ("plan-established", stay(), date(2026, 11, 30)),  # four weeks (art. 18a lid 1 Pbw)
    ("release-notified", stay(date(2027, 2, 15)), date(2027, 1, 18)),  # 28 days ahead
    ("release-notified", stay(date(2026, 11, 20)), ARRIVAL),  # a short stay: at once, not before arrival
    ("release-notified", stay(date(2027, 2, 15), unexpected=True), date(2027, 2, 15)),  # unexpected: the same day
    ("release-notified", stay(), None),  # no release date yet: not scheduled
    ("conditional-release-advice", stay(date(2028, 3, 1), detention_kind="sentence"), date(2027, 11, 17)),  # 105 days
])
def test_each_norm_is_due_as_the_covenant_and_the_law_say(norm, facts, due):
    assert NORMS.due_on(NORMS[norm], facts) == due


def test_the_plan_review_comes_every_six_weeks_and_every_three_months_in_a_stay_over_a_year():
    review, met = NORMS["plan-review"], date(2026, 12, 1)
    assert NORMS.due_on(review, stay(date(2027, 6, 1)), started=met) == date(2027, 1, 12)
    assert NORMS.due_on(review, stay(date(2028, 6, 1)), started=met) == date(2027, 3, 2)
    assert NORMS.due_on(review, stay(), started=None) is None
    assert NORMS.following(NORMS["plan-established"]) is review and NORMS.following(review) is review
    assert NORMS.following(NORMS["screening-shared"]) is None


@pytest.mark.parametrize(("norm", "facts", "reason"), [
    ("plan-established", stay(date(2026, 11, 29)), "short stay"),  # 27 days
    ("plan-established", stay(date(2026, 11, 30)), None),  # 28 days: the plan norm holds
    ("plan-review", stay(date(2026, 11, 20)), "short stay"),
    ("release-notified", stay(date(2026, 11, 20)), None),  # the short-stay path keeps the release norm
    ("screening-shared", stay(date(2026, 11, 20)), None),
    ("conditional-release-advice", stay(date(2028, 3, 1), detention_kind="remand"), "only for a stay of kind sentence"),
    ("conditional-release-advice", stay(date(2027, 6, 1), detention_kind="sentence"), "at least 366 days"),
    ("conditional-release-advice", stay(None, detention_kind="sentence"), "at least 366 days"),
    ("plan-established", stay(), None),  # release unknown: it may be long, the norm holds
])
def test_a_norm_applies_or_says_why_not(norm, facts, reason):
    found = NORMS.not_applicable(NORMS[norm], facts)
    assert (found is None) if reason is None else (reason in found)


@pytest.mark.parametrize(("norm", "sent", "meets"), [
    ("plan-established", Sent("dr-plan", "dji", frozenset({"municipality"}), {"status": "final"}), True),
    ("plan-established", Sent("dr-plan", "dji", frozenset({"municipality"}), {"status": "draft"}), False),
    ("plan-review", Sent("dr-plan", "dji", frozenset({"probation"}), {"status": "draft"}), True),
    ("release-notified", Sent("release-notice", "dji", frozenset({"municipality"})), True),
    ("release-notified", Sent("release-notice", "dji", frozenset({"probation", "mayor"})), False),  # no college told
    ("screening-shared", Sent("screening-result", "dji", frozenset({"probation"})), True),
    ("screening-shared", Sent("information-response", "dji", frozenset({"probation"})), False),
    ("conditional-release-advice", Sent("probation-advice", "probation", frozenset({"dji"}),
                                        {"advice_kind": "conditional-release-advice"}), True),
    ("conditional-release-advice", Sent("probation-advice", "probation", frozenset({"dji"}), {"advice_kind": "dr-advice"}), False),
])
def test_the_message_that_meets_a_norm(norm, sent, meets):
    assert NORMS[norm].meets(sent) is meets


def test_days_are_dutch_calendar_days_and_late_counts_from_the_due_day():
    assert local_date(datetime(2026, 12, 6, 23, 30, tzinfo=timezone.utc)) == date(2026, 12, 7)  # 00:30 in Amsterdam
    assert local_date(datetime(2026, 7, 6, 22, 30, tzinfo=timezone.utc)) == date(2026, 7, 7)  # summer time: 00:30
    assert days_late(date(2026, 11, 30), date(2026, 11, 30)) == 0
    assert days_late(date(2026, 11, 30), date(2026, 11, 27)) == 0
    assert days_late(date(2026, 11, 30), date(2027, 1, 4)) == 35


def test_the_release_lead_time_is_configurable_and_an_unknown_norm_is_refused():
    norms = load(days={"release-notified": 21})
    assert norms.due_on(norms["release-notified"], stay(date(2027, 2, 15))) == date(2027, 1, 25)
    assert norms.due_on(norms["release-notified"], stay(date(2027, 2, 15), unexpected=True)) == date(2027, 2, 15)
    with pytest.raises(ValueError, match="unknown norms: release-notice; known: screening-shared"):
        load(days={"release-notice": 21})
