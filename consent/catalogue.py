"""Load and validate the policy catalogue (``catalogue.yaml``). Invalid data stops the service."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml

from contracts.parties import EXCHANGE_KINDS
from contracts.registry import MESSAGE_TYPES, REGISTRY, section_paths

TreatmentKind = Literal["pass", "consent", "withhold"]
TREATMENTS = ("pass", "consent", "withhold")
DEFAULT_PATH = Path(__file__).with_name("catalogue.yaml")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster, same safe subset


class CatalogueError(ValueError):
    """The catalogue file is not valid; the message says where."""


@dataclass(frozen=True)
class Treatment:
    """What a rule does with one data category: pass (on ``basis``, or the rule's), consent, withhold."""

    kind: TreatmentKind
    basis: str | None = None


@dataclass(frozen=True)
class Condition:
    """A condition a rule may require; ``refusal`` is the deny reason when it does not hold."""

    name: str
    refusal: str
    text: str


@dataclass(frozen=True)
class Rule:
    id: str
    message: str
    sender_kind: str
    recipient_kind: str
    purposes: frozenset[str]
    basis: str
    sections: dict[str, Treatment] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    basis_when: dict[str, str] = field(default_factory=dict)  # condition -> basis recorded when it holds
    section_basis: dict[str, str] = field(default_factory=dict)  # section name -> basis, where it differs
    requires_consent: bool = False
    note: str | None = None

    def effective_basis(self, facts: frozenset[str]) -> str:
        for condition, basis in self.basis_when.items():
            if condition in facts:
                return basis
        return self.basis


@dataclass(frozen=True)
class Catalogue:
    version: str
    legal_bases: dict[str, str]
    purposes: dict[str, str]
    party_kinds: frozenset[str]  # contracts.parties.EXCHANGE_KINDS: the kinds that exchange messages
    categories: dict[str, str]
    consent_givers: dict[str, frozenset[str] | None]  # None: may consent to every category
    rules: tuple[Rule, ...]
    conditions: dict[str, Condition] = field(default_factory=dict)
    consent_is_no_basis_for: frozenset[str] = frozenset()

    def rule_for(self, message: str, sender_kind: str, recipient_kind: str) -> Rule | None:
        return self._index.get((message, sender_kind, recipient_kind))

    def may_send(self, sender_kind: str, message: str) -> bool:
        """Does any rule let this kind of organisation send this message type (to anyone)?"""
        return (sender_kind, message) in self._senders

    @cached_property
    def _senders(self) -> frozenset[tuple[str, str]]:
        return frozenset((r.sender_kind, r.message) for r in self.rules)

    @property
    def consentable(self) -> frozenset[str]:
        """The categories some consent giver may open."""
        out: set[str] = set()
        for scope in self.consent_givers.values():
            out |= set(self.categories) if scope is None else scope
        return frozenset(out)

    @cached_property
    def _index(self) -> dict[tuple[str, str, str], Rule]:
        return {(r.message, r.sender_kind, r.recipient_kind): r for r in self.rules}


def categories_of(message: str) -> set[str]:
    """Every data category any version of ``message`` carries."""
    return {c for (t, _v), m in REGISTRY.items() if t == message for c in section_paths(m).values()}


def sections_of(message: str) -> set[str]:
    return {path[-1] for (t, _v), m in REGISTRY.items() if t == message for path in section_paths(m)}


def _treatment(raw: object) -> Treatment | None:
    if isinstance(raw, str) and raw in TREATMENTS:
        return Treatment(raw)  # type: ignore[arg-type]
    if isinstance(raw, dict) and len(raw) == 1 and "pass" in raw:
        return Treatment("pass", str(raw["pass"]))
    return None


def parse(data: dict) -> Catalogue:
    def need(cond: bool, where: str, what: str) -> None:
        if not cond:
            raise CatalogueError(f"policy catalogue, {where}: {what}")

    legal_bases = dict(data.get("legalBases") or {})
    purposes = dict(data.get("purposes") or {})
    kinds = EXCHANGE_KINDS
    categories = dict(data.get("categories") or {})
    need(bool(legal_bases and purposes and categories), "top level", "legalBases, purposes and categories are required")
    conditions: dict[str, Condition] = {}
    for name, raw in (data.get("conditions") or {}).items():
        need(isinstance(raw, dict) and raw.get("refusal") and raw.get("text"), f"conditions.{name}", "needs a refusal and a text")
        conditions[name] = Condition(name, str(raw["refusal"]), str(raw["text"]))
    no_consent = frozenset(data.get("consentIsNoBasisFor") or ())
    unknown = set(no_consent) - set(categories)
    need(not unknown, "consentIsNoBasisFor", f"unknown categories {sorted(unknown)}")
    givers: dict[str, frozenset[str] | None] = {}
    for giver, scope in (data.get("consentGivers") or {"detainee": "all"}).items():
        if scope == "all":
            need(not no_consent, f"consentGivers.{giver}", "'all' would include categories consent is no basis for")
            givers[giver] = None
        else:
            unknown = set(scope) - set(categories)
            need(not unknown, f"consentGivers.{giver}", f"unknown categories {sorted(unknown)}")
            barred = set(scope) & no_consent
            need(not barred, f"consentGivers.{giver}", f"consent is no basis for {sorted(barred)}")
            givers[giver] = frozenset(scope)
    consentable = {c for scope in givers.values() for c in (categories if scope is None else scope)}
    rules: list[Rule] = []
    seen: set[tuple[str, str, str]] = set()
    for i, raw in enumerate(data.get("rules") or ()):
        where = f"rules[{i}] ({raw.get('id', '?')})"
        for key in ("id", "message", "from", "to", "purposes", "basis"):
            need(key in raw, where, f"missing '{key}'")
        need(raw["message"] in MESSAGE_TYPES, where, f"unknown message type {raw['message']!r}")
        need(raw["from"] in kinds, where, f"unknown party kind {raw['from']!r}")
        need(raw["to"] in kinds, where, f"unknown party kind {raw['to']!r}")
        unknown_purposes = set(raw["purposes"]) - set(purposes)
        need(not unknown_purposes and raw["purposes"], where, f"unknown or no purposes {sorted(unknown_purposes)}")
        need(raw["basis"] in legal_bases, where, f"unknown legal basis {raw['basis']!r}")
        requires = tuple(raw.get("requires") or ())
        for condition in requires:
            need(condition in conditions, where, f"unknown condition {condition!r}")
        basis_when = dict(raw.get("basisWhen") or {})
        for condition, basis in basis_when.items():
            need(condition in conditions, where, f"unknown condition {condition!r}")
            need(basis in legal_bases, where, f"unknown legal basis {basis!r}")
        section_basis = dict(raw.get("sectionBasis") or {})
        for section, basis in section_basis.items():
            need(section in sections_of(raw["message"]), where, f"{raw['message']} has no section {section!r}")
            need(basis in legal_bases, where, f"unknown legal basis {basis!r}")
        sections: dict[str, Treatment] = {}
        for category, raw_treatment in (raw.get("sections") or {}).items():
            need(category in categories, where, f"unknown category {category!r}")
            treatment = _treatment(raw_treatment)
            need(treatment is not None, where, f"treatment of {category!r} must be one of {TREATMENTS} or {{pass: <basis>}}")
            need(treatment.basis is None or treatment.basis in legal_bases, where, f"unknown legal basis {treatment.basis!r}")
            if treatment.kind == "consent":
                need(category not in no_consent, where, f"consent is no basis for {category!r}")
                need(category in consentable, where, f"no consent giver may open {category!r}")
            sections[category] = treatment
        uncovered = categories_of(raw["message"]) - set(sections)
        need(not uncovered, where, f"no treatment for categories {sorted(uncovered)} of {raw['message']}")
        key = (raw["message"], raw["from"], raw["to"])
        need(key not in seen, where, "a second rule for the same message, sender kind and recipient kind")
        seen.add(key)
        rules.append(
            Rule(
                id=raw["id"],
                message=raw["message"],
                sender_kind=raw["from"],
                recipient_kind=raw["to"],
                purposes=frozenset(raw["purposes"]),
                basis=raw["basis"],
                sections=sections,
                requires=requires,
                basis_when=basis_when,
                section_basis=section_basis,
                requires_consent=bool(raw.get("requiresConsent", False)),
                note=raw.get("note"),
            )
        )
    return Catalogue(str(data.get("version", "")), legal_bases, purposes, kinds, categories, givers, tuple(rules),
                     conditions, no_consent)


def load(path: Path | str = DEFAULT_PATH) -> Catalogue:
    try:
        data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"policy catalogue {path}: cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogueError(f"policy catalogue {path}: not a mapping")
    return parse(data)
