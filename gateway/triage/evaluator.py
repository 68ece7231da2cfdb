"""The SOM triage's first pass (pure): the criteria of ``som.yaml`` applied in order to the facts of one stay, on
one day. Each outcome names its criterion and the facts that fired it, with the message each fact came from; the
rest group gets the profile the professionals weigh and its tiering indicators. ``changes_on`` is the first day on
which time alone may change the outcome (an assessment turns a year and a day old, a young adult turns 24), so the
gateway re-evaluates then (``gateway/triage/review.py``).

Derived facts are booleans over the stored facts (``facts.py``); a fact nothing stated is false, which is what the
guideline means: no probation information means none reached the exchange."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from gateway.statuses import TriageOutcome
from gateway.triage.facts import Facts, Source

RULES = Path(__file__).with_name("som.yaml")
OUTCOMES = tuple(o.value for o in TriageOutcome)
PHASES = ("remand", "convicted")


def add_years(day: date, years: int) -> date:
    """The same calendar day ``years`` later; 29 February becomes 28 February in a year without it."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass(frozen=True)
class Fired:
    """A fact a criterion read: its name, its value and the messages it came from."""

    fact: str
    value: Any
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True)
class Derived:
    value: Any
    sources: tuple[Source, ...] = ()
    changes_on: date | None = None  # the first later day on which time alone changes the value


@dataclass(frozen=True)
class Criterion:
    id: str
    title: str
    outcome: str
    explanation: str
    phases: tuple[str, ...] = PHASES
    when: dict[str, Any] = field(default_factory=dict)
    mandatory: bool = False


@dataclass(frozen=True)
class Indicator:
    id: str
    title: str
    any: dict[str, Any]


@dataclass(frozen=True)
class Evaluation:
    outcome: str
    criterion: str
    title: str
    explanation: str
    fired: tuple[Fired, ...]
    mandatory: bool = False
    indicators: tuple[str, ...] = ()  # the rest group's tiering: which indicators hold
    changes_on: date | None = None
    first_pass: str | None = None  # an override: the criterion whose no-priority outcome it overrode

    @property
    def professional_weighing(self) -> bool:
        """The guideline leaves this to the casemanager and probation: the evaluator does not decide."""
        return self.outcome == "rest-group"


@dataclass(frozen=True)
class Limits:
    assessment_valid_years: int
    short_stay_days: int
    young_adult_ages: tuple[int, int]
    many_criminogenic_factors: int


@dataclass(frozen=True)
class Rules:
    limits: Limits
    criteria: tuple[Criterion, ...]
    rest_group: Criterion
    override: Criterion
    override_applies_to: str
    indicators: tuple[Indicator, ...]

    def __getitem__(self, criterion_id: str) -> Criterion:
        for c in (*self.criteria, self.rest_group, self.override):
            if c.id == criterion_id:
                return c
        raise KeyError(criterion_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return (*(c.id for c in self.criteria), self.rest_group.id, self.override.id)

    def evaluate(self, facts: Facts, today: date) -> Evaluation:
        """The first pass for ``facts`` on ``today``: the first criterion of the phase whose facts all hold; else
        the rest group. The casemanager's override turns a no-priority outcome into the professionals' weighing."""
        derived = derive(facts, today, self.limits)
        changes = [d.changes_on for d in derived.values() if d.changes_on is not None]
        phase = facts.phase.value if facts.phase is not None else None
        for c in self.criteria:
            if phase in c.phases and all(derived[name].value == value for name, value in c.when.items()):
                fired = tuple(Fired(name, derived[name].value, derived[name].sources) for name in c.when)
                found = Evaluation(c.outcome, c.id, c.title, c.explanation, fired, c.mandatory, changes_on=min(changes, default=None))
                break
        else:
            found = self._rest_group(derived, changes)
        if found.outcome == self.override_applies_to and facts.override is not None:
            o = self.override
            fired = (Fired("override_reason", facts.override.value, (facts.override.source,)), *found.fired)
            return Evaluation(o.outcome, o.id, o.title, o.explanation, fired, indicators=self._indicators(derived),
                              changes_on=found.changes_on, first_pass=found.criterion)
        return found

    def _rest_group(self, derived: dict[str, Derived], changes: list[date]) -> Evaluation:
        r = self.rest_group
        held = self._indicators(derived)
        fired = tuple(Fired(name, derived[name].value, derived[name].sources)
                      for i in self.indicators if i.id in held for name, value in i.any.items()
                      if derived[name].value == value)
        return Evaluation(r.outcome, r.id, r.title, r.explanation, fired, indicators=held,
                          changes_on=min(changes, default=None))

    def _indicators(self, derived: dict[str, Derived]) -> tuple[str, ...]:
        return tuple(i.id for i in self.indicators if any(derived[n].value == v for n, v in i.any.items()))


def deviates_from(first_pass: str | None, decision: str) -> bool:
    """Whether a joint decision (som-triage ``decision.outcome``) goes against the first pass it closed: involvement
    after no priority, none after a priority, a decision without the advice it waited for. In the rest group the
    professionals weigh: nothing to deviate from."""
    if first_pass == "no-priority":
        return decision != "no-priority"
    if first_pass == "priority":
        return not decision.startswith("involvement-")
    if first_pass == "postponed":
        return not decision.startswith("too-little-information")
    return False


def derive(facts: Facts, today: date, limits: Limits) -> dict[str, Derived]:
    """The facts the criteria and indicators name, on ``today``."""
    out: dict[str, Derived] = {}

    def flag(name: str) -> Derived:
        known = facts.flag(name)
        return Derived(bool(known.value), (known.source,)) if known is not None else Derived(False)

    for name in ("no_residence_status", "asr_not_applied", "supervision_follows", "art_43_3_placement",
                 "outflow_with_care_authorisation", "lvb", "violent_offence", "addiction", "housing_need"):
        out[name] = flag(name)
    isd, tbs = flag("isd_imposed"), flag("tbs_imposed")
    out["measure_imposed"] = Derived(isd.value or tbs.value, isd.sources + tbs.sources)

    years = limits.assessment_valid_years
    latest = facts.assessments[-1] if facts.assessments else None
    if latest is None:
        out["recent_low_risk"] = out["high_risk"] = Derived(False)
    else:
        until = add_years(latest.on, years)
        valid = today <= until
        out["recent_low_risk"] = Derived(latest.level == "low" and valid, (latest.source,),
                                         until + timedelta(days=1) if valid and latest.level == "low" else None)
        out["high_risk"] = Derived(latest.level == "high", (latest.source,))

    counted = [r for r in facts.probation_records if r.high or today <= add_years(r.on, years)]
    expires = [add_years(r.on, years) + timedelta(days=1) for r in counted if not r.high]
    out["probation_information"] = Derived(
        bool(counted), tuple(r.source for r in counted),
        max(expires) if expires and len(expires) == len(counted) else None)

    if facts.arrival is not None and facts.expected_end is not None:
        days = (facts.expected_end.value - facts.arrival.value).days
        out["short_stay"] = Derived(days < limits.short_stay_days, (facts.arrival.source, facts.expected_end.source))
    else:
        out["short_stay"] = Derived(False)

    requested = facts.advice_requested
    out["advice_pending"] = Derived(bool(requested and requested.value), (requested.source,) if requested else ())

    youngest, oldest = limits.young_adult_ages
    if facts.date_of_birth is not None:
        born = facts.date_of_birth.value
        age = age_on(born, today)
        turns = add_years(born, youngest) if age < youngest else add_years(born, oldest + 1) if age <= oldest else None
        out["young_adult"] = Derived(youngest <= age <= oldest, (facts.date_of_birth.source,), turns)
    else:
        out["young_adult"] = Derived(False)

    factors = facts.profile.get("criminogenic_factors")
    out["many_criminogenic_factors"] = Derived(
        bool(factors) and len(factors.value) >= limits.many_criminogenic_factors, (factors.source,) if factors else ())
    return out


def _criterion(raw: dict, known_facts: set[str]) -> Criterion:
    c = Criterion(id=raw["id"], title=raw["title"], outcome=raw["outcome"], explanation=raw["explanation"],
                  phases=tuple(raw.get("phases", PHASES)), when=dict(raw.get("when", {})),
                  mandatory=bool(raw.get("mandatory", False)))
    if c.outcome not in OUTCOMES:
        raise ValueError(f"som.yaml: {c.id}: unknown outcome {c.outcome!r}")
    if not set(c.phases) <= set(PHASES):
        raise ValueError(f"som.yaml: {c.id}: unknown phase in {c.phases}")
    unknown = set(c.when) - known_facts
    if unknown:
        raise ValueError(f"som.yaml: {c.id}: unknown facts {sorted(unknown)}")
    return c


_LIMITS_FOR_NAMES = Limits(1, 28, (18, 23), 3)


@cache
def load(path: Path = RULES) -> Rules:
    """The rules, checked: every criterion names known facts, outcomes and phases; ids are unique."""
    raw = yaml.safe_load(path.read_text())
    known_facts = set(derive(Facts(), date(2000, 1, 1), _LIMITS_FOR_NAMES))
    limits = raw["limits"]
    criteria = tuple(_criterion(c, known_facts) for c in raw["criteria"])
    override = raw["override"]
    indicators = tuple(Indicator(i["id"], i["title"], dict(i["any"])) for i in raw["indicators"])
    for i in indicators:
        if set(i.any) - known_facts:
            raise ValueError(f"som.yaml: indicator {i.id}: unknown facts {sorted(set(i.any) - known_facts)}")
    rules = Rules(
        limits=Limits(int(limits["assessment_valid_years"]), int(limits["short_stay_days"]),
                      tuple(limits["young_adult_ages"]), int(limits["many_criminogenic_factors"])),
        criteria=criteria, rest_group=_criterion(raw["rest_group"], known_facts),
        override=_criterion({k: v for k, v in override.items() if k != "applies_to"}, known_facts),
        override_applies_to=override["applies_to"], indicators=indicators)
    if len(set(rules.ids)) != len(rules.ids):
        raise ValueError("som.yaml: criterion ids are not unique")
    return rules
