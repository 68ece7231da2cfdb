"""Hypothesis strategies that draw exchanges from the policy catalogue's own rules (so most draws reach
the section-by-section part of the engine instead of being refused for want of a route), consents that
match such an exchange or miss it in exactly one respect, and an independent statement of when a consent
opens a category (the oracle the engine is checked against)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

import consent
from consent import ConsentRecord, Exchange
from contracts.registry import REGISTRY, section_paths

CATALOGUE = consent.load()
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
AMSTERDAM, ROTTERDAM = "00000001009990363000", "00000001009990599000"
PURPOSES = sorted(CATALOGUE.purposes)
KINDS = sorted(CATALOGUE.party_kinds)
CATEGORIES = sorted(CATALOGUE.categories)
CONDITIONS = sorted(CATALOGUE.conditions)
GIVERS = sorted(CATALOGUE.consent_givers) + ["neighbour"]  # "neighbour" may consent to nothing
# (message type, contract version) -> {section name: data category}, as the payload of that version carries them
SECTIONS = {key: {path[-1]: category for path, category in section_paths(model).items()} for key, model in REGISTRY.items()}
VERSIONS = {t: sorted(v for (t2, v) in REGISTRY if t2 == t) for (t, _v) in REGISTRY}
# moments around the exchange's time: before, just before, at, just after, after (validity is [from, until))
OFFSETS = [timedelta(days=-2), timedelta(seconds=-1), timedelta(0), timedelta(seconds=1), timedelta(days=2)]


CONSENT_RULES = tuple(r for r in CATALOGUE.rules if any(t.kind == "consent" for t in r.sections.values()))
# a consent that misses the exchange in exactly one respect
MISSES = ("subject", "category", "purpose", "recipient", "not-yet-valid", "expired", "withdrawn", "giver")


_BOOLEANS = st.booleans()


def pick(draw, options):
    """One of ``options`` (a sequence). Strategies over fixed integer ranges are built once and cached by
    Hypothesis; a new ``sampled_from`` per draw would be validated every time (most of the run time)."""
    options = list(options)
    return options[draw(st.integers(0, len(options) - 1))]


def some(draw, options, min_size: int = 0, max_size: int | None = None) -> set:
    """A subset of ``options``, of at least ``min_size`` and at most ``max_size`` members."""
    options = list(options)
    chosen = [o for o in options if draw(_BOOLEANS)]
    while len(chosen) < min_size:
        chosen.append(pick(draw, [o for o in options if o not in chosen]))
    return set(chosen[:max_size] if max_size is not None else chosen)


def chance(draw, one_in: int) -> bool:
    return draw(st.integers(0, one_in - 1)) == 0


@st.composite
def rule_exchanges(draw, rules=None) -> Exchange:
    """An exchange along one rule of the catalogue (half of the draws a rule with a category that only a
    consent opens, when the catalogue has one): a version of its message with all of its sections or some,
    mostly one of the rule's purposes (one in ten another purpose of the catalogue, when there is one),
    mostly with the rule's conditions holding (one in five with one or more missing), other conditions at
    random."""
    if rules is None:
        rules = CONSENT_RULES if CONSENT_RULES and draw(_BOOLEANS) else CATALOGUE.rules
    rule = pick(draw, rules)
    version = pick(draw, VERSIONS[rule.message])
    available = SECTIONS[(rule.message, version)]
    present = set(available) if draw(_BOOLEANS) else some(draw, sorted(available))
    outside = sorted(set(PURPOSES) - rule.purposes)
    purpose = pick(draw, outside) if outside and chance(draw, 10) else pick(draw, sorted(rule.purposes))
    facts = some(draw, CONDITIONS) | set(rule.requires)
    if rule.requires and chance(draw, 5):
        facts -= some(draw, rule.requires, min_size=1)
    return Exchange(
        sender_kind=rule.sender_kind, recipient_kind=rule.recipient_kind,
        recipient_oin=pick(draw, [AMSTERDAM, ROTTERDAM]), message_type=rule.message, purpose=purpose,
        subject_id="sub-1", sections={name: available[name] for name in sorted(present)}, at=NOW, facts=frozenset(facts),
    )


@st.composite
def consent_around(draw, ex: Exchange, consent_id: str) -> ConsentRecord:
    """A consent for one category of ``ex`` (one its rule leaves to consent, when it has one) that, in half
    of the draws, matches the exchange in every respect and otherwise misses it in exactly one (``MISSES``)."""
    rule = CATALOGUE.rule_for(ex.message_type, ex.sender_kind, ex.recipient_kind)
    present = sorted(set(ex.sections.values()))
    by_consent = [c for c in present if rule and c in rule.sections and rule.sections[c].kind == "consent"]
    category = pick(draw, by_consent or present or CATEGORIES)
    categories = {category} | some(draw, CATEGORIES, max_size=2)
    givers = [g for g, scope in sorted(CATALOGUE.consent_givers.items()) if scope is None or category in scope]
    given_by = pick(draw, givers or GIVERS)
    named = pick(draw, ["oin", "kind", "both"])
    oins = {ex.recipient_oin} if named in ("oin", "both") else set()
    kinds = {ex.recipient_kind} if named in ("kind", "both") else set()
    purposes = {ex.purpose} | some(draw, PURPOSES)
    subject = ex.subject_id
    valid_from = ex.at + pick(draw, OFFSETS[:3])  # from two days or a second before, or from this very moment
    valid_until = None if draw(_BOOLEANS) else ex.at + pick(draw, OFFSETS[3:])
    withdrawn_at = None if draw(_BOOLEANS) else ex.at + pick(draw, OFFSETS[3:])  # a withdrawal still to come

    miss = None if chance(draw, 2) else pick(draw, MISSES)
    if miss == "subject":
        subject = "sub-other"
    elif miss == "category":
        categories = some(draw, [c for c in CATEGORIES if c != category], min_size=1, max_size=2)
    elif miss == "purpose":
        purposes = purposes - {ex.purpose}
    elif miss == "recipient":
        oins = {ROTTERDAM if ex.recipient_oin == AMSTERDAM else AMSTERDAM}
        kinds = some(draw, [k for k in KINDS if k != ex.recipient_kind])
    elif miss == "not-yet-valid":
        valid_from = ex.at + pick(draw, OFFSETS[3:])
    elif miss == "expired":
        valid_until = ex.at + pick(draw, OFFSETS[:3])  # until is exclusive: a consent ending now has ended
    elif miss == "withdrawn":
        withdrawn_at = ex.at + pick(draw, OFFSETS[:3])
    elif miss == "giver":
        given_by = pick(draw, [g for g in GIVERS if g not in givers])
    return ConsentRecord(id=consent_id, subject_id=subject, given_by=given_by, categories=frozenset(categories),
                         recipient_oins=frozenset(oins), recipient_kinds=frozenset(kinds), purposes=frozenset(purposes),
                         valid_from=valid_from, valid_until=valid_until, withdrawn_at=withdrawn_at)


@st.composite
def exchanges_with_consents(draw, rules=None, max_consents: int = 4) -> tuple[Exchange, list[ConsentRecord]]:
    """An exchange along a rule and up to ``max_consents`` consents around it."""
    ex = draw(rule_exchanges(rules))
    return ex, [draw(consent_around(ex, f"c-{i}")) for i in range(draw(st.integers(0, max_consents)))]


def opens(c: ConsentRecord, ex: Exchange, category: str) -> bool:
    """Does consent ``c`` open ``category`` for ``ex``? Written out from the rules, not from the engine:
    the consent is the subject's, names the category, the purpose and the recipient (by OIN or kind), is in
    force at the moment of the exchange (from inclusive, until and withdrawal exclusive), and its giver may
    consent to that category, which must be one a consent can be a basis for at all."""
    scope = CATALOGUE.consent_givers.get(c.given_by, frozenset())
    return (c.subject_id == ex.subject_id and category in c.categories and ex.purpose in c.purposes
            and (ex.recipient_oin in c.recipient_oins or ex.recipient_kind in c.recipient_kinds)
            and c.valid_from <= ex.at and (c.valid_until is None or ex.at < c.valid_until)
            and (c.withdrawn_at is None or ex.at < c.withdrawn_at)
            and (scope is None or category in scope) and category not in CATALOGUE.consent_is_no_basis_for)
