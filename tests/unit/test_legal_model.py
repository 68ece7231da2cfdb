"""The legal model (the catalogue ``consent/catalogue.yaml``, reviewable as docs/legal-basis.md),
table-driven against the pure engine: a case for each refusal reason and for what each kind of recipient
gets on which basis, and the properties a privacy officer relies on. The API-level cases are in
tests/integration/test_legal_model.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import event, given, settings

from consent import ConsentRecord, Exchange, decide, load
from contracts.registry import MESSAGE_TYPES, REGISTRY, section_paths
from tests.unit.catalogue_strategies import exchanges_with_consents

CATALOGUE = load()
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
AMSTERDAM = "00000001009990363000"
COMPETENT = frozenset({"competent-municipality"})
RISK = frozenset({"serious-offence-risk"})
RETURN = frozenset({"municipality-of-return"})


def sections(message_type: str, version: int = 2) -> dict[str, str]:
    model = REGISTRY.get((message_type, version)) or REGISTRY[(message_type, 1)]
    return {path[-1]: category for path, category in section_paths(model).items()}


def ex(message_type, sender, recipient, purpose="reintegration", facts=frozenset(), version=2, **kw) -> Exchange:
    values = dict(sender_kind=sender, recipient_kind=recipient, recipient_oin=AMSTERDAM, message_type=message_type,
                  purpose=purpose, subject_id="sub-1", sections=sections(message_type, version), at=NOW, facts=facts)
    values.update(kw)
    return Exchange(**values)


def consent(categories=("children-family",), given_by="detainee", **kw) -> ConsentRecord:
    values = dict(id="c-1", subject_id="sub-1", given_by=given_by, categories=frozenset(categories),
                  recipient_oins=frozenset(), recipient_kinds=frozenset({"municipality", "probation", "mayor", "dji"}),
                  purposes=frozenset(CATALOGUE.purposes), valid_from=NOW - timedelta(days=1))
    values.update(kw)
    return ConsentRecord(**values)


def bases(decision) -> dict[str, str]:
    return {r.section: r.basis for r in decision.released}


def withheld(decision) -> dict[str, str]:
    return {w.section: w.reason for w in decision.withheld}


# --- refusals: one case per reason -----------------------------------------------------------------

REFUSALS = [
    # (case, exchange, consents, deny reason)
    ("plan to a municipality that is neither residence nor intended", ex("dr-plan", "dji", "municipality"), [], "recipient-not-competent"),
    ("screening result to a municipality that is not competent", ex("screening-result", "dji", "municipality"), [], "recipient-not-competent"),
    ("release notice to a municipality that is not competent", ex("release-notice", "dji", "municipality", "aftercare"), [], "recipient-not-competent"),
    ("detention notice to a municipality it does not name", ex("detention-notice", "dji", "municipality", version=1), [], "recipient-not-competent"),
    ("probation advice to a municipality that is not competent", ex("probation-advice", "probation", "municipality"), [], "recipient-not-competent"),
    ("risk information to a mayor without the 18b condition", ex("risk-information", "dji", "mayor", "public-order", RETURN), [], "condition-not-met"),
    ("release notice to a mayor without the 18b condition", ex("release-notice", "dji", "mayor", "public-order", RETURN), [], "condition-not-met"),
    ("risk information to the mayor of another municipality", ex("risk-information", "dji", "mayor", "public-order", RISK), [], "recipient-not-competent"),
    ("probation's risk information to a mayor without the condition", ex("risk-information", "probation", "mayor", "public-order", RETURN), [], "condition-not-met"),
    ("a mayor's risk information to the prison without the condition", ex("risk-information", "mayor", "dji", "public-order"), [], "condition-not-met"),
    ("a mayor's risk information to probation without the condition", ex("risk-information", "mayor", "probation", "public-order"), [], "condition-not-met"),
    ("risk information to a college, even with consent and competence", ex("risk-information", "dji", "municipality", "aftercare", COMPETENT | RISK),
     [consent(("risk-summary",))], "no-route"),
    ("a mayor sends a D&R-plan", ex("dr-plan", "mayor", "dji"), [], "no-route"),
    ("a mayor sends risk information to a college", ex("risk-information", "mayor", "municipality", "public-order", COMPETENT | RISK), [], "no-route"),
    ("SOM triage to a college", ex("som-triage", "dji", "municipality", facts=COMPETENT, version=1), [], "no-route"),
    ("plan to a college for public order", ex("dr-plan", "dji", "municipality", "public-order", COMPETENT), [], "purpose-not-allowed"),
    ("an unknown purpose", ex("dr-plan", "dji", "municipality", "marketing", COMPETENT), [], "unknown-purpose"),
]


@pytest.mark.parametrize("case,exchange,consents,reason", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals(case, exchange, consents, reason):
    decision = decide(CATALOGUE, exchange, consents)
    assert decision.outcome == "deny" and decision.deny_reason == reason, decision.explanation
    assert decision.released == ()


# --- what passes, and on which basis ---------------------------------------------------------------

def test_plan_to_the_competent_college_passes_basic_conditions_and_social_network_without_consent():
    d = decide(CATALOGUE, ex("dr-plan", "dji", "municipality", "aftercare", COMPETENT), [])
    assert d.outcome == "allow-with-redaction" and d.rule == "dr-plan/dji-to-municipality" and d.basis == "pm-20d-2"
    assert bases(d) == {"identity-document": "pm-20d-2", "housing": "pm-20d-2", "work-income": "pm-20d-2",
                        "debts": "pm-20d-2", "care": "pm-20d-3", "social-network": "pm-20d-2"}
    assert withheld(d) == {"children-family": "consent-required", "health": "not-permitted",
                           "restorative-work": "not-permitted", "behaviour": "not-permitted"}


@pytest.mark.parametrize("given_by", ["detainee", "other-parent"])
def test_children_and_family_pass_to_the_college_only_with_consent_of_the_detainee_or_the_other_parent(given_by):
    d = decide(CATALOGUE, ex("dr-plan", "dji", "municipality", "aftercare", COMPETENT), [consent(given_by=given_by)])
    assert bases(d)["children-family"] == "consent" and d.consents == ("c-1",)
    assert [r.consents for r in d.released if r.section == "children-family"] == [("c-1",)]
    assert d.basis == "pm-20d-2"  # the rule's basis stays statutory; the section names consent


@pytest.mark.parametrize("change", [
    {"withdrawn_at": NOW - timedelta(minutes=1)},
    {"valid_until": NOW - timedelta(seconds=1)},
    {"valid_from": NOW + timedelta(days=1)},
    {"purposes": frozenset({"reintegration"})},
    {"recipient_kinds": frozenset({"probation"})},
    {"given_by": "neighbour"},
])
def test_children_and_family_stop_when_the_consent_is_withdrawn_expired_or_does_not_cover(change):
    d = decide(CATALOGUE, ex("dr-plan", "dji", "municipality", "aftercare", COMPETENT), [consent(**change)])
    assert withheld(d)["children-family"] == "consent-required"


def test_health_behaviour_and_restorative_work_never_reach_a_college_even_with_a_consent_naming_them():
    everything = consent(tuple(CATALOGUE.categories))
    d = decide(CATALOGUE, ex("dr-plan", "dji", "municipality", "aftercare", COMPETENT), [everything])
    assert {s: withheld(d)[s] for s in ("health", "behaviour", "restorative-work")} == dict.fromkeys(
        ("health", "behaviour", "restorative-work"), "not-permitted")
    assert bases(d)["children-family"] == "consent"


def test_screening_result_v2_gives_the_college_the_social_network_and_never_the_screening_instruments():
    d = decide(CATALOGUE, ex("screening-result", "dji", "municipality", "aftercare", COMPETENT), [])
    assert bases(d) == {"basicConditions": "pm-20d-2", "socialNetwork": "pm-20d-2"}
    assert withheld(d) == {"childrenFamily": "consent-required", "instruments": "not-permitted"}


def test_v1_plan_social_network_mixed_children_so_it_is_treated_as_children_and_family():
    d = decide(CATALOGUE, ex("dr-plan", "dji", "municipality", "aftercare", COMPETENT, version=1), [])
    assert withheld(d) == {"social-network": "consent-required", "restorative-work": "not-permitted",
                           "behaviour": "not-permitted"}


def test_probation_advice_reaches_a_college_only_in_its_pm_20d_lid_2_parts_without_consent():
    d = decide(CATALOGUE, ex("probation-advice", "probation", "municipality", "aftercare", COMPETENT), [consent(tuple(CATALOGUE.categories))])
    assert bases(d) == {"basicConditions": "pm-20d-2", "socialNetwork": "pm-20d-2"}
    assert withheld(d) == {"advice": "not-permitted", "health": "not-permitted"}


def test_risk_information_between_director_and_probation_rests_on_18b_with_the_condition_and_on_20d_lid_4_without():
    for sender, recipient in (("dji", "probation"), ("probation", "dji")):
        without = decide(CATALOGUE, ex("risk-information", sender, recipient, "risk-management"), [])
        assert without.outcome == "allow" and without.basis == "pm-20d-4"
        assert set(bases(without).values()) == {"pm-20d-4"}
        with_ = decide(CATALOGUE, ex("risk-information", sender, recipient, "risk-management", RISK), [])
        assert with_.outcome == "allow" and with_.basis == "pbw-18b" and set(bases(with_).values()) == {"pbw-18b"}


@pytest.mark.parametrize("sender", ["dji", "probation"])
def test_risk_information_reaches_the_mayor_of_return_at_summary_level_with_the_condition(sender):
    d = decide(CATALOGUE, ex("risk-information", sender, "mayor", "public-order", RISK | RETURN), [])
    assert d.outcome == "allow-with-redaction" and d.basis == "pbw-18b"
    assert bases(d) == {"summary": "pbw-18b", "risk18b": "pbw-18b"} and withheld(d) == {"detail": "not-permitted"}


def test_release_notice_to_the_mayor_of_return_gives_the_return_and_the_asserted_risk_not_the_arrangements():
    d = decide(CATALOGUE, ex("release-notice", "dji", "mayor", "public-order", RISK | RETURN), [])
    assert d.basis == "pbw-18b" and bases(d) == {"risk18b": "pbw-18b"} and withheld(d) == {"arrangements": "not-permitted"}


def test_the_asserted_risk_in_a_release_notice_never_reaches_the_college():
    d = decide(CATALOGUE, ex("release-notice", "dji", "municipality", "aftercare", COMPETENT | RISK), [])
    assert bases(d) == {"arrangements": "pm-20d-2"} and withheld(d) == {"risk18b": "not-permitted"}


@pytest.mark.parametrize("recipient", ["dji", "probation"])
def test_the_mayor_informs_prison_and_probation_under_18b(recipient):
    d = decide(CATALOGUE, ex("risk-information", "mayor", recipient, "public-order", RISK), [])
    assert d.outcome == "allow" and d.basis == "pbw-18b"


def test_a_mayor_may_send_risk_information_and_nothing_else():
    assert {t for t in MESSAGE_TYPES if CATALOGUE.may_send("mayor", t)} == {"risk-information"}


def test_every_rule_towards_a_college_requires_the_competent_municipality_and_towards_a_mayor_the_18b_condition():
    for rule in CATALOGUE.rules:
        if rule.recipient_kind == "municipality":
            assert "competent-municipality" in rule.requires, rule.id
        if rule.recipient_kind == "mayor":
            assert {"serious-offence-risk", "municipality-of-return"} <= set(rule.requires), rule.id
        if rule.sender_kind == "mayor":
            assert "serious-offence-risk" in rule.requires, rule.id


def test_every_rule_and_basis_text_quotes_its_article():
    for name, text in CATALOGUE.legal_bases.items():
        assert ("Art. " in text or "art. " in text) or name == "consent", name
    for condition in CATALOGUE.conditions.values():
        assert "Art. 18" in condition.text


# --- properties: exchanges drawn along the catalogue's rules, with consents around them ---------------

@settings(max_examples=300, deadline=None)
@given(case=exchanges_with_consents())
def test_no_decision_ever_lets_health_to_a_college_and_consent_opens_only_children_and_family(case):
    exchange, consents = case
    d = decide(CATALOGUE, exchange, consents)
    event(f"outcome: {d.outcome}")
    for r in d.released:
        if r.category == "health":
            assert exchange.recipient_kind != "municipality" and r.basis != "consent"
        if r.basis == "consent":
            assert r.category == "children-family" and r.consents
            event("children and family opened by consent")
        if exchange.recipient_kind == "municipality":
            assert r.category in {"basic-conditions", "social-network", "children-family"}, r
    if d.allowed:
        rule = CATALOGUE.rule_for(exchange.message_type, exchange.sender_kind, exchange.recipient_kind)
        assert set(rule.requires) <= exchange.facts and exchange.purpose in rule.purposes
