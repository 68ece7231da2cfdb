"""The chain's process norms (``norms.yaml``) and the pure arithmetic on them: does a norm apply to a stay,
when is it due, does a message meet it, was it met in time. No database, no HTTP: the send path
(``record.py``), the scheduled job (``monitor.py``) and the tests call these with plain facts.

Days are calendar days in the Netherlands (Europe/Amsterdam): a norm due on day D is met by a message sent
on or before D, local time, and overdue from D + 1."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo

import yaml

DEFAULT_PATH = Path(__file__).with_name("norms.yaml")
LOCAL = ZoneInfo("Europe/Amsterdam")
ARRIVAL, RELEASE = "arrival", "release"


def local_date(moment: datetime) -> date:
    """The calendar day in the Netherlands of an aware ``moment``."""
    return moment.astimezone(LOCAL).date()


@dataclass(frozen=True)
class StayFacts:
    """What the norms ask of a stay, as the messages stated it."""

    arrival: date | None = None
    release: date | None = None  # the expected release date
    unexpected: bool = False  # the release was announced as unexpected
    detention_kind: str | None = None  # remand | sentence

    @property
    def expected_days(self) -> int | None:
        return (self.release - self.arrival).days if self.release and self.arrival else None


@dataclass(frozen=True)
class Sent:
    """A message as the norms see it: its type, who sent it to which kinds, and its contract's fields."""

    type: str
    sender_kind: str
    recipient_kinds: frozenset[str]
    fields: Mapping[str, Any] = field(default_factory=dict)  # snake_case contract attribute -> value


@dataclass(frozen=True)
class Norm:
    id: str
    title: str
    source: str
    responsible: str
    due: Mapping[str, Any]
    met_by: Mapping[str, Any]
    short_stay: bool
    only: Mapping[str, Any]

    @property
    def anchor(self) -> str:
        """``arrival``, ``release`` or the id of the norm whose meeting starts this one (it then repeats)."""
        return self.due.get("after") or self.due["before"]

    @property
    def repeats(self) -> bool:
        return self.anchor not in (ARRIVAL, RELEASE)

    def meets(self, sent: Sent) -> bool:
        m = self.met_by
        return (sent.type == m["message"] and sent.sender_kind == m["from"]
                and ("to" not in m or m["to"] in sent.recipient_kinds)
                and all(str(sent.fields.get(k)) == str(v) for k, v in (m.get("where") or {}).items()))


@dataclass(frozen=True)
class Norms:
    norms: tuple[Norm, ...]
    short_stay_days: int
    long_stay_days: int

    def __iter__(self):
        return iter(self.norms)

    def __getitem__(self, norm_id: str) -> Norm:
        return next(n for n in self.norms if n.id == norm_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(n.id for n in self.norms)

    @cached_property
    def message_types(self) -> frozenset[str]:
        """The message types any norm is met by (with the notices that change a stay's facts)."""
        return frozenset(n.met_by["message"] for n in self.norms) | {"detention-notice", "release-notice", "transfer-notice"}

    @cached_property
    def once(self) -> tuple[str, ...]:
        """The norms met once per stay (not repeating)."""
        return tuple(n.id for n in self.norms if not n.repeats)

    def following(self, norm: Norm) -> Norm | None:
        """The repeating norm that meeting ``norm`` starts (plan-established starts plan-review), or itself."""
        return next((n for n in self.norms if n.anchor == norm.id), norm if norm.repeats else None)

    def not_applicable(self, norm: Norm, stay: StayFacts) -> str | None:
        """Why ``norm`` does not apply to ``stay`` (a short reason), or None when it does (or may yet)."""
        days = stay.expected_days
        if not norm.short_stay and days is not None and days < self.short_stay_days:
            return f"short stay (under {self.short_stay_days} days): the short-stay path"
        kind = norm.only.get("detentionKind")
        if kind and stay.detention_kind != kind:
            return f"only for a stay of kind {kind}"
        least = norm.only.get("minStayDays")
        if least and (days is None or days < least):
            return f"only for an expected stay of at least {least} days"
        return None

    def due_on(self, norm: Norm, stay: StayFacts, started: date | None = None) -> date | None:
        """When ``norm`` is due for ``stay``; ``started``: when the norm it follows was met (repeating norms).
        None while the date it counts from is unknown."""
        due = norm.due
        if norm.anchor == ARRIVAL:
            return stay.arrival + timedelta(days=due["days"]) if stay.arrival else None
        if norm.anchor == RELEASE:
            if stay.release is None:
                return None
            days = due.get("unexpectedDays", due["days"]) if stay.unexpected else due["days"]
            at = stay.release - timedelta(days=days)
            return max(at, stay.arrival) if stay.arrival else at
        if started is None:
            return None
        long_stay = stay.expected_days is not None and stay.expected_days > self.long_stay_days
        return started + timedelta(days=due.get("longStayDays", due["days"]) if long_stay else due["days"])


def days_late(due: date, met: date) -> int:
    """0 when met on or before the due day; else how many days after."""
    return max(0, (met - due).days)


def load(path: Path | str = DEFAULT_PATH, days: Mapping[str, int] | None = None) -> Norms:
    """The norms of ``path``, with ``days`` overriding a norm's number of days (BRB_DEADLINE_DAYS)."""
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    overrides = dict(days or {})
    norms = []
    for entry in raw["norms"]:
        due = dict(entry["due"])
        if entry["id"] in overrides:
            due["days"] = overrides.pop(entry["id"])
        norms.append(Norm(entry["id"], entry["title"], entry["source"], entry["responsible"], due, entry["metBy"],
                          entry.get("shortStay", True), entry.get("only") or {}))
    if overrides:
        raise ValueError(f"BRB_DEADLINE_DAYS names unknown norms: {', '.join(sorted(overrides))}; "
                         f"known: {', '.join(n.id for n in norms)}")
    ids = {n.id for n in norms}
    for n in norms:
        if n.anchor not in ids | {ARRIVAL, RELEASE}:
            raise ValueError(f"norm {n.id} counts from an unknown norm {n.anchor}")
    return Norms(tuple(norms), raw["shortStayDays"], raw["longStayDays"])
