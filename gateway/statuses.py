"""The states a stored row moves through, each declared once. Tables store them as text; the wire
shows the same values (the OpenAPI enums come from here)."""
from __future__ import annotations

from enum import StrEnum


class Acknowledgement(StrEnum):
    """What a recipient says of a message it received. ``accepted`` and ``rejected`` are final."""

    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        return self is not Acknowledgement.RECEIVED


class DeliveryState(StrEnum):
    """One recipient's copy: delivered, then read, then acknowledged (the acknowledgement's value), or purged."""

    DELIVERED = "delivered"
    READ = "read"
    RECEIVED = Acknowledgement.RECEIVED.value
    ACCEPTED = Acknowledgement.ACCEPTED.value
    REJECTED = Acknowledgement.REJECTED.value
    PURGED = "purged"


FINAL_ACKNOWLEDGEMENTS = tuple(a.value for a in Acknowledgement if a.final)


class WebhookState(StrEnum):
    """One event for one subscription: retried with backoff while ``pending``, then ``delivered`` or ``dead``;
    ``cancelled`` when the subscription was deleted before it went out."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    CANCELLED = "cancelled"


class DeadlineState(StrEnum):
    """One process norm of a stay (gateway/trajectory): ``open`` until met or due; ``overdue`` once its day
    passed unmet (the deadline.overdue event); ``met`` in time or ``met-late``; ``not-applicable`` when the
    stay turned out not to need it (a short stay, a later stay began, released before it was due)."""

    OPEN = "open"
    OVERDUE = "overdue"
    MET = "met"
    MET_LATE = "met-late"
    NOT_APPLICABLE = "not-applicable"

    @property
    def pending(self) -> bool:
        """Still to be met: a message may meet it, a transfer moves it, a new release date reschedules it."""
        return self in (DeadlineState.OPEN, DeadlineState.OVERDUE)


PENDING_DEADLINES = tuple(s.value for s in DeadlineState if s.pending)


class TriageOutcome(StrEnum):
    """The SOM triage's first pass (gateway/triage/som.yaml): a criterion decides ``no-priority``, ``priority`` or
    ``postponed``; where none does, the ``rest-group`` is for the professionals' weighing."""

    NO_PRIORITY = "no-priority"
    PRIORITY = "priority"
    POSTPONED = "postponed"
    REST_GROUP = "rest-group"


class TriageState(StrEnum):
    """A triage round is ``open`` until part 3, the joint decision, makes it ``decided``; a verdict opens a new round."""

    OPEN = "open"
    DECIDED = "decided"
