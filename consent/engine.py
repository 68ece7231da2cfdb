"""The decision engine: a pure function from an exchange to allow / allow-with-redaction / deny,
always naming the rule and the legal basis that decided it, and per section the basis that let it through."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from consent.catalogue import Catalogue
from consent.records import ConsentRecord

Outcome = Literal["allow", "allow-with-redaction", "deny"]
# no-route | unknown-purpose | purpose-not-allowed | consent-required, or a condition's refusal from the
# catalogue (recipient-not-competent, condition-not-met)
DenyReason = str


@dataclass(frozen=True)
class Exchange:
    sender_kind: str
    recipient_kind: str
    recipient_oin: str
    message_type: str
    purpose: str
    subject_id: str
    sections: Mapping[str, str]  # section name -> data category, as present in the payload
    at: datetime
    facts: frozenset[str] = frozenset()  # conditions that hold for this recipient (catalogue `conditions`)


@dataclass(frozen=True)
class Withheld:
    section: str
    category: str
    reason: Literal["consent-required", "not-permitted"]


@dataclass(frozen=True)
class Released:
    """A section that passes, and the basis that let it through (``consent``: the consents that did)."""

    section: str
    category: str
    basis: str
    consents: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    rule: str | None
    basis: str | None
    explanation: str
    deny_reason: DenyReason | None = None
    withheld: tuple[Withheld, ...] = ()
    consents: tuple[str, ...] = field(default=())  # ids of the consents that opened a section
    released: tuple[Released, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.outcome != "deny"

    @property
    def withheld_sections(self) -> frozenset[str]:
        return frozenset(w.section for w in self.withheld)


def _consent_opens(catalogue: Catalogue, consent: ConsentRecord, category: str) -> bool:
    if category in catalogue.consent_is_no_basis_for:
        return False
    allowed = catalogue.consent_givers.get(consent.given_by, frozenset())
    return allowed is None or category in allowed


def decide(catalogue: Catalogue, ex: Exchange, consents: Iterable[ConsentRecord]) -> Decision:
    """Decide one exchange (sender -> one recipient) against the catalogue and the consents in force."""
    if ex.purpose not in catalogue.purposes:
        return Decision("deny", None, None, f"unknown purpose {ex.purpose!r} (valid: {', '.join(sorted(catalogue.purposes))})",
                        "unknown-purpose")
    rule = catalogue.rule_for(ex.message_type, ex.sender_kind, ex.recipient_kind)
    if rule is None:
        return Decision(
            "deny", None, None,
            f"no rule lets a {ex.sender_kind} send {ex.message_type} to a {ex.recipient_kind}", "no-route",
        )
    basis = rule.effective_basis(ex.facts)
    if ex.purpose not in rule.purposes:
        return Decision(
            "deny", rule.id, basis,
            f"purpose {ex.purpose!r} is not allowed by {rule.id} (allowed: {', '.join(sorted(rule.purposes))})",
            "purpose-not-allowed",
        )
    for name in rule.requires:
        if name not in ex.facts:
            condition = catalogue.conditions[name]
            return Decision("deny", rule.id, basis, f"{rule.id} requires {name}: {condition.text}", condition.refusal)

    consents = list(consents)

    def matching(category: str) -> tuple[str, ...]:
        return tuple(sorted(
            c.id for c in consents
            if _consent_opens(catalogue, c, category)
            and c.covers(subject_id=ex.subject_id, category=category, recipient_oin=ex.recipient_oin,
                         recipient_kind=ex.recipient_kind, purpose=ex.purpose, at=ex.at)
        ))

    withheld: list[Withheld] = []
    released: list[Released] = []
    for section, category in sorted(ex.sections.items()):
        treatment = rule.sections.get(category)
        if treatment is None or treatment.kind == "withhold":
            withheld.append(Withheld(section, category, "not-permitted"))
        elif treatment.kind == "pass":
            released.append(Released(section, category, rule.section_basis.get(section) or treatment.basis or basis))
        elif ids := matching(category):
            released.append(Released(section, category, "consent", ids))
        else:
            withheld.append(Withheld(section, category, "consent-required"))

    used = tuple(sorted({i for r in released for i in r.consents}))
    if rule.requires_consent and not used:
        return Decision(
            "deny", rule.id, basis,
            f"{rule.id} rests on the detainee's consent and no consent in force covers it",
            "consent-required", tuple(withheld),
        )
    if withheld:
        return Decision(
            "allow-with-redaction", rule.id, basis,
            f"{len(withheld)} section(s) withheld under {rule.id}", None, tuple(withheld), used, tuple(released),
        )
    return Decision("allow", rule.id, basis, f"allowed under {rule.id}", None, (), used, tuple(released))
