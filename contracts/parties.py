"""The parties: which kinds of organisation there are, the scopes a token may ask for, and which kind
may hold which — declared once, here. The gateway refuses a token that asks for a scope its
organisation's kind may not hold (403 ``insufficient-scope``, naming them); its routes name the scope they
need (``gateway/api``); the policy catalogue's rules may speak only of the kinds that exchange messages.
A connector reads the same table to know what to ask for."""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


SYSTEM_OIN = "0" * 20  # the gateway itself, acting without a caller (retention, checkpoints): not a registered OIN


class Scope(StrEnum):
    """What a token may be used for. Each route of the API names the one(s) it needs."""

    MESSAGES_SEND = "messages:send"
    MESSAGES_READ = "messages:read"
    CONSENTS_WRITE = "consents:write"
    CONSENTS_READ = "consents:read"
    SUBSCRIPTIONS_WRITE = "subscriptions:write"
    AUDIT_READ = "audit:read"
    AUDIT_READ_ALL = "audit:read-all"
    KEYS_WRITE = "keys:write"  # register and revoke the organisation's own keys (self-service rotation)
    ADMIN = "admin"


# Every kind manages its own keys; a separate scope, so a day-to-day connector token need not carry it.
_OWN_KEYS = frozenset({Scope.KEYS_WRITE})
_EXCHANGE = frozenset({Scope.MESSAGES_SEND, Scope.MESSAGES_READ, Scope.CONSENTS_READ, Scope.SUBSCRIPTIONS_WRITE}) | _OWN_KEYS


@dataclass(frozen=True)
class OrganisationKind:
    """One kind of organisation and what it may do."""

    name: str
    description: str
    scopes: frozenset[Scope]
    addressed_by_cbs_code: bool = False  # registered with, and addressable by, its municipality's CBS code
    records_consent: bool = False  # meets the detainee and records (and withdraws) consent
    audits_parent: bool = False  # an auditor names the organisation it audits (parentOin)

    @property
    def exchanges_messages(self) -> bool:
        return Scope.MESSAGES_SEND in self.scopes

    @property
    def default_scope(self) -> str:
        """Every scope the kind may hold, as a token's space-delimited ``scope`` claim."""
        return " ".join(sorted(self.scopes))


KINDS: dict[str, OrganisationKind] = {k.name: k for k in (
    OrganisationKind("dji", "a prison (DJI, its case system TULP)", _EXCHANGE | {Scope.CONSENTS_WRITE}, records_consent=True),
    OrganisationKind("probation", "a probation organisation (3RO, its case system IRIS)", _EXCHANGE | {Scope.CONSENTS_WRITE},
                     records_consent=True),
    OrganisationKind("municipality", "a municipality's college (nazorg, art. 18a Pbw)", _EXCHANGE, addressed_by_cbs_code=True),
    OrganisationKind("mayor", "a mayor (public order, art. 18b Pbw); sends art. 18b risk information only", _EXCHANGE,
                     addressed_by_cbs_code=True),
    OrganisationKind("auditor", "a data protection officer or internal auditor of one organisation",
                     frozenset({Scope.AUDIT_READ}) | _OWN_KEYS, audits_parent=True),
    OrganisationKind("inspectorate", "the inspectorate: reads every audit record",
                     frozenset({Scope.AUDIT_READ, Scope.AUDIT_READ_ALL}) | _OWN_KEYS),
    OrganisationKind("operator", "the service's operator: registry, dead letters, chain verification",
                     frozenset({Scope.ADMIN, Scope.AUDIT_READ_ALL}) | _OWN_KEYS),
)}

EXCHANGE_KINDS = frozenset(name for name, kind in KINDS.items() if kind.exchanges_messages)
CBS_KINDS = tuple(name for name, kind in KINDS.items() if kind.addressed_by_cbs_code)
