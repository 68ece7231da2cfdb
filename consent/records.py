"""Consent records as the decision engine sees them (the gateway stores and audits them)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ConsentRecord:
    """A detainee's (or other parent's) recorded consent. Empty scope sets mean "none", never "all":
    a consent must name what it opens."""

    id: str
    subject_id: str
    given_by: str  # "detainee" or "other-parent"
    categories: frozenset[str]
    recipient_oins: frozenset[str]
    recipient_kinds: frozenset[str]
    purposes: frozenset[str]
    valid_from: datetime
    valid_until: datetime | None = None
    withdrawn_at: datetime | None = None

    def in_force(self, at: datetime) -> bool:
        if at < self.valid_from:
            return False
        if self.valid_until is not None and at >= self.valid_until:
            return False
        return self.withdrawn_at is None or at < self.withdrawn_at

    def covers(self, *, subject_id: str, category: str, recipient_oin: str, recipient_kind: str, purpose: str, at: datetime) -> bool:
        return (
            self.subject_id == subject_id
            and category in self.categories
            and (recipient_oin in self.recipient_oins or recipient_kind in self.recipient_kinds)
            and purpose in self.purposes
            and self.in_force(at)
        )
