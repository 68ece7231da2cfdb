"""The decision engine and the policy catalogue: every allowed and every forbidden combination,
and the properties an auditor relies on."""
import copy
import itertools
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import CatalogueError, ConsentRecord, Exchange, decide, load
from consent.catalogue import DEFAULT_PATH, parse
from contracts.registry import MESSAGE_TYPES, REGISTRY, section_paths

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


# --- properties ---------------------------------------------------------------------------------

consents = st.builds(
    ConsentRecord,
    id=st.text("abcdef0123456789", min_size=4, max_size=8),
    subject_id=st.sampled_from(["sub-1", "sub-2"]),
    given_by=st.sampled_from(["detainee", "other-parent", "neighbour"]),
    categories=st.frozensets(st.sampled_from(sorted(CATALOGUE.categories))),
    recipient_oins=st.frozensets(st.sampled_from([RECIPIENT, "00000001009990599000"])),
    recipient_kinds=st.frozensets(st.sampled_from(KINDS)),
    purposes=st.frozensets(st.sampled_from(PURPOSES)),
    valid_from=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 6, 1), timezones=st.just(timezone.utc)),
    valid_until=st.none() | st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(timezone.utc)),
    withdrawn_at=st.none() | st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(timezone.utc)),
)
exchanges = st.builds(
    exchange, st.sampled_from(MESSAGE_TYPES), st.sampled_from(KINDS), st.sampled_from(KINDS), st.sampled_from(PURPOSES),
    subject=st.sampled_from(["sub-1", "sub-2"]),
    recipient_oin=st.sampled_from([RECIPIENT, "00000001009990599000"]),
    at=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(timezone.utc)),
    facts=st.frozensets(st.sampled_from(sorted(ALL_FACTS))),
)


def _matching(ex: Exchange, category: str, pool: list[ConsentRecord]) -> bool:
    allowed_by_giver = CATALOGUE.consent_givers
    return any(
        c.subject_id == ex.subject_id and category in c.categories and ex.purpose in c.purposes
        and (ex.recipient_oin in c.recipient_oins or ex.recipient_kind in c.recipient_kinds)
        and c.valid_from <= ex.at and (c.valid_until is None or ex.at < c.valid_until)
        and (c.withdrawn_at is None or ex.at < c.withdrawn_at)
        and c.given_by in allowed_by_giver and (allowed_by_giver[c.given_by] is None or category in allowed_by_giver[c.given_by])
        and category not in CATALOGUE.consent_is_no_basis_for
        for c in pool
    )


@settings(max_examples=400, deadline=None)
@given(ex=exchanges, pool=st.lists(consents, max_size=5))
def test_no_consent_section_is_released_without_a_matching_valid_unwithdrawn_consent(ex, pool):
    decision = decide(CATALOGUE, ex, pool)
    if not decision.allowed:
        return
    rule = CATALOGUE.rule_for(ex.message_type, ex.sender_kind, ex.recipient_kind)
    for section, category in ex.sections.items():
        released = section not in decision.withheld_sections
        if rule.sections[category].kind == "consent" and released:
            assert _matching(ex, category, pool), (section, category)
        if rule.sections[category].kind == "withhold":
            assert not released


@settings(max_examples=200, deadline=None)
@given(ex=exchanges, pool=st.lists(consents, max_size=4), purpose=st.text(min_size=1, max_size=20))
def test_an_unknown_purpose_is_always_denied(ex, pool, purpose):
    if purpose in CATALOGUE.purposes:
        return
    decision = decide(CATALOGUE, Exchange(**{**ex.__dict__, "purpose": purpose}), pool)
    assert decision.outcome == "deny" and decision.deny_reason == "unknown-purpose"


@settings(max_examples=300, deadline=None)
@given(ex=exchanges, pool=st.lists(consents, max_size=6), data=st.data())
def test_the_decision_never_depends_on_the_order_of_consents(ex, pool, data):
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
