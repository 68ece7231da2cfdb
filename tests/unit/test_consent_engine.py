"""The decision engine and the policy catalogue: every allowed and every forbidden combination,
and the properties an auditor relies on."""
import copy
import itertools
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from consent import CatalogueError, ConsentRecord, Exchange, decide, load
from consent.catalogue import DEFAULT_PATH, parse
from contracts.registry import MESSAGE_TYPES, REGISTRY, section_paths
from tests.unit.catalogue_strategies import exchanges_with_consents, opens

CATALOGUE = load()
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
KINDS = sorted(CATALOGUE.party_kinds)
PURPOSES = sorted(CATALOGUE.purposes)
RECIPIENT = "00000001009990363000"


ALL_FACTS = frozenset(CATALOGUE.conditions)


def all_sections(message_type: str) -> dict[str, str]:
    """Every section of every version of the message type."""
    return {path[-1]: cat for (t, _v), model in REGISTRY.items() if t == message_type
            for path, cat in section_paths(model).items()}


def exchange(message_type, sender, recipient, purpose, sections=None, subject="sub-1", recipient_oin=RECIPIENT, at=NOW,
             facts=ALL_FACTS):
    return Exchange(sender, recipient, recipient_oin, message_type, purpose, subject,
                    all_sections(message_type) if sections is None else sections, at, facts)


def full_consent(subject="sub-1", **overrides) -> ConsentRecord:
    values = dict(id="c-all", subject_id=subject, given_by="detainee", categories=frozenset(CATALOGUE.categories),
                  recipient_oins=frozenset(), recipient_kinds=frozenset(CATALOGUE.party_kinds),
                  purposes=frozenset(CATALOGUE.purposes), valid_from=NOW - timedelta(days=1))
    values.update(overrides)
    return ConsentRecord(**values)


COMBINATIONS = list(itertools.product(MESSAGE_TYPES, KINDS, KINDS, PURPOSES))


@pytest.mark.parametrize("message_type,sender,recipient,purpose", COMBINATIONS)
def test_every_combination_is_allowed_exactly_when_the_catalogue_has_a_rule_with_that_purpose(message_type, sender, recipient, purpose):
    rule = CATALOGUE.rule_for(message_type, sender, recipient)
    expected_allowed = rule is not None and purpose in rule.purposes
    decision = decide(CATALOGUE, exchange(message_type, sender, recipient, purpose), [full_consent()])
    assert decision.allowed is expected_allowed, decision.explanation
    if expected_allowed:
        assert decision.rule == rule.id and decision.basis == rule.effective_basis(ALL_FACTS)
        withheld = {w.category for w in decision.withheld}
        assert withheld == {c for c in all_sections(message_type).values() if rule.sections[c].kind == "withhold"}
    else:
        assert decision.deny_reason in ("no-route", "purpose-not-allowed")


@pytest.mark.parametrize("rule", [r for r in CATALOGUE.rules if r.requires], ids=lambda r: r.id)
def test_a_rule_whose_condition_does_not_hold_refuses_with_that_conditions_refusal(rule):
    purpose = sorted(rule.purposes)[0]
    for missing in rule.requires:
        facts = ALL_FACTS - {missing}
        decision = decide(CATALOGUE, exchange(rule.message, rule.sender_kind, rule.recipient_kind, purpose, facts=facts), [full_consent()])
        assert decision.deny_reason == CATALOGUE.conditions[missing].refusal and decision.rule == rule.id


def test_som_triage_never_reaches_a_municipality_or_a_mayor():
    for recipient, purpose in itertools.product(("municipality", "mayor"), PURPOSES):
        assert decide(CATALOGUE, exchange("som-triage", "dji", recipient, purpose), [full_consent()]).outcome == "deny"


def test_a_rule_that_rests_on_consent_is_refused_without_one():
    data = copy.deepcopy(RAW)
    rule = next(r for r in data["rules"] if r["id"] == "dr-plan/dji-to-municipality")
    rule["requiresConsent"] = True
    catalogue = parse(data)
    d = decide(catalogue, exchange("dr-plan", "dji", "municipality", "aftercare"), [])
    assert d.outcome == "deny" and d.deny_reason == "consent-required"
    assert decide(catalogue, exchange("dr-plan", "dji", "municipality", "aftercare"), [full_consent()]).allowed


# --- properties: exchanges drawn along the catalogue's rules ---------------------------------------

def expected_refusal(ex: Exchange, rule) -> str | None:
    """The refusal the rule itself calls for, or None: the purpose is checked first, then the rule's
    conditions in the order the catalogue lists them (the first one missing names the refusal)."""
    if ex.purpose not in rule.purposes:
        return "purpose-not-allowed"
    missing = [name for name in rule.requires if name not in ex.facts]
    return CATALOGUE.conditions[missing[0]].refusal if missing else None


@settings(max_examples=400, deadline=None)
@given(case=exchanges_with_consents())
def test_a_decision_treats_every_section_as_its_rule_says(case):
    ex, pool = case
    rule = CATALOGUE.rule_for(ex.message_type, ex.sender_kind, ex.recipient_kind)
    decision = decide(CATALOGUE, ex, pool)
    refusal = expected_refusal(ex, rule)
    event(f"outcome: {decision.outcome}")
    if refusal is not None:
        assert (decision.outcome, decision.deny_reason, decision.rule) == ("deny", refusal, rule.id), decision.explanation
        assert decision.released == ()
        return

    expected = {}
    for section, category in ex.sections.items():
        treatment = rule.sections.get(category)
        kind = treatment.kind if treatment else "withhold"  # a category the rule does not name never passes
        if kind == "withhold":
            expected[section] = ("withheld", category, "not-permitted")
        elif kind == "pass":
            basis = rule.section_basis.get(section) or treatment.basis or rule.effective_basis(ex.facts)
            expected[section] = ("released", category, basis, ())
        elif opening := tuple(sorted(c.id for c in pool if opens(c, ex, category))):
            expected[section] = ("released", category, "consent", opening)  # naming exactly the consents that open it
            event("a consent opened a section")
        else:
            expected[section] = ("withheld", category, "consent-required")
    used = tuple(sorted({i for e in expected.values() if e[0] == "released" for i in e[3]}))
    if rule.requires_consent and not used:
        assert (decision.outcome, decision.deny_reason, decision.released) == ("deny", "consent-required", ())
        return

    # withheld and released partition the sections: each section exactly once, in one of the two
    assert len(decision.released) + len(decision.withheld) == len(ex.sections)
    actual = {r.section: ("released", r.category, r.basis, r.consents) for r in decision.released}
    actual |= {w.section: ("withheld", w.category, w.reason) for w in decision.withheld}
    assert actual == expected
    for r in decision.released:
        if r.basis == "consent":  # never a category that consent cannot open, never by someone who may not give it
            assert r.category not in CATALOGUE.consent_is_no_basis_for
            for c in pool:
                if c.id in r.consents:
                    scope = CATALOGUE.consent_givers.get(c.given_by, frozenset())
                    assert scope is None or r.category in scope, (c.given_by, r.category)
    assert decision.rule == rule.id and decision.basis == rule.effective_basis(ex.facts) and decision.consents == used
    assert decision.outcome == ("allow-with-redaction" if decision.withheld else "allow")


@settings(max_examples=100, deadline=None)
@given(case=exchanges_with_consents(), purpose=st.text(min_size=1, max_size=20))
def test_an_unknown_purpose_is_always_denied(case, purpose):
    assume(purpose not in CATALOGUE.purposes)
    ex, pool = case
    decision = decide(CATALOGUE, replace(ex, purpose=purpose), pool)
    assert decision.outcome == "deny" and decision.deny_reason == "unknown-purpose" and decision.released == ()


@settings(max_examples=200, deadline=None)
@given(case=exchanges_with_consents(max_consents=6), data=st.data())
def test_the_decision_never_depends_on_the_order_of_consents(case, data):
    ex, pool = case
    shuffled = data.draw(st.permutations(pool))
    assert decide(CATALOGUE, ex, pool) == decide(CATALOGUE, ex, shuffled)


# --- the catalogue file itself -------------------------------------------------------------------

RAW = yaml.safe_load(DEFAULT_PATH.read_text())


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["rules"][0].update(message="visitor-log"), "unknown message type"),
    (lambda d: d["rules"][0].update({"from": "police"}), "unknown party kind"),
    (lambda d: d["rules"][0].update(purposes=["marketing"]), "unknown or no purposes"),
    (lambda d: d["rules"][8]["sections"].update({"hobbies": "pass"}), "unknown category"),
    (lambda d: d["rules"][8]["sections"].pop("social-network"), "no treatment for categories"),
    (lambda d: d["rules"][0].update(basis="pbw-99"), "unknown legal basis"),
    (lambda d: d["rules"].append(copy.deepcopy(d["rules"][0])), "a second rule"),
    (lambda d: d["rules"][8]["sections"].update({"health": "consent"}), "consent is no basis for 'health'"),
    (lambda d: d["consentGivers"].update({"detainee": ["children-family", "health"]}), "consent is no basis for"),
    (lambda d: d["rules"][8]["sections"].update({"restorative-work": {"pass": "pbw-99"}}), "unknown legal basis"),
    (lambda d: d["rules"][8]["sections"].update({"restorative-work": "maybe"}), "treatment of 'restorative-work'"),
    (lambda d: d["rules"][8].update(requires=["full-moon"]), "unknown condition"),
    (lambda d: d["rules"][8].update(sectionBasis={"hobbies": "pm-20d-3"}), "has no section 'hobbies'"),
])
def test_an_invalid_catalogue_refuses_to_load_with_a_clear_message(mutate, message):
    data = copy.deepcopy(RAW)
    data["rules"][8]["sections"] = dict(data["rules"][8]["sections"])
    mutate(data)
    with pytest.raises(CatalogueError, match=message):
        parse(data)


def test_every_message_type_has_at_least_one_rule():
    assert {r.message for r in CATALOGUE.rules} == set(MESSAGE_TYPES)
