"""Load and validate the policy catalogue (``catalogue.yaml``). Invalid data stops the service."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from contracts.registry import MESSAGE_TYPES, REGISTRY, section_paths

Treatment = Literal["pass", "consent", "withhold"]
TREATMENTS = ("pass", "consent", "withhold")
DEFAULT_PATH = Path(__file__).with_name("catalogue.yaml")


class CatalogueError(ValueError):
    """The catalogue file is not valid; the message says where."""


@dataclass(frozen=True)
class Rule:
    id: str
    message: str
    sender_kind: str
    recipient_kind: str
    purposes: frozenset[str]
    basis: str
    sections: dict[str, Treatment] = field(default_factory=dict)
    requires_consent: bool = False
    note: str | None = None


@dataclass(frozen=True)
class Catalogue:
    version: str
    legal_bases: dict[str, str]
    purposes: dict[str, str]
    party_kinds: frozenset[str]
    categories: dict[str, str]
    consent_givers: dict[str, frozenset[str] | None]  # None: may consent to every category
    rules: tuple[Rule, ...]

    def rule_for(self, message: str, sender_kind: str, recipient_kind: str) -> Rule | None:
        for rule in self.rules:
            if (rule.message, rule.sender_kind, rule.recipient_kind) == (message, sender_kind, recipient_kind):
                return rule
        return None


def _categories_of(message: str) -> set[str]:
    return {c for (t, _v), m in REGISTRY.items() if t == message for c in section_paths(m).values()}


def parse(data: dict) -> Catalogue:
    def need(cond: bool, where: str, what: str) -> None:
        if not cond:
            raise CatalogueError(f"policy catalogue, {where}: {what}")

    legal_bases = dict(data.get("legalBases") or {})
    purposes = dict(data.get("purposes") or {})
    kinds = frozenset(data.get("partyKinds") or ())
    categories = dict(data.get("categories") or {})
    need(bool(legal_bases and purposes and kinds and categories), "top level", "legalBases, purposes, partyKinds and categories are required")
    givers: dict[str, frozenset[str] | None] = {}
    for giver, scope in (data.get("consentGivers") or {"detainee": "all"}).items():
        if scope == "all":
            givers[giver] = None
        else:
            unknown = set(scope) - set(categories)
            need(not unknown, f"consentGivers.{giver}", f"unknown categories {sorted(unknown)}")
            givers[giver] = frozenset(scope)
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
        sections = dict(raw.get("sections") or {})
        for category, treatment in sections.items():
            need(category in categories, where, f"unknown category {category!r}")
            need(treatment in TREATMENTS, where, f"treatment of {category!r} must be one of {TREATMENTS}")
        uncovered = _categories_of(raw["message"]) - set(sections)
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
                requires_consent=bool(raw.get("requiresConsent", False)),
                note=raw.get("note"),
            )
        )
    return Catalogue(str(data.get("version", "")), legal_bases, purposes, kinds, categories, givers, tuple(rules))


def load(path: Path | str = DEFAULT_PATH) -> Catalogue:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"policy catalogue {path}: cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogueError(f"policy catalogue {path}: not a mapping")
    return parse(data)
