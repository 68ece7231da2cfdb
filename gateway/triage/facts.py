"""What the exchange has learnt about one stay that the SOM criteria ask about, each fact with the message it came
from (pure: no database). ``learn`` folds one message into the facts; the evaluator (``evaluator.py``) reads them.

Only what reached the SOM's parties counts: the stay's own facts (the prison's notices: arrival, phase, release,
legal framework), and the sections of other messages that a prison or probation organisation sent or received.
A section policy withheld from every prison and probation recipient is not learnt: the triage shows the prison
and probation nothing the exchange did not give them. The facts are personal data; they are stored sealed."""
from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from contracts.common import MessageContract

SOM_PARTIES = frozenset({"dji", "probation"})
KEPT = 10  # assessments and probation records kept per stay: the newest, by date
# the message types the triage learns from; any other message costs the send nothing here
MESSAGE_TYPES = frozenset({"detention-notice", "screening-result", "risk-information", "som-triage",
                           "probation-advice", "release-notice"})


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Source(_Model):
    """The message a fact came from: its id, its type, and the day it was sent (Europe/Amsterdam)."""

    message_id: str
    message_type: str
    on: date


class Known(_Model):
    value: Any
    source: Source


class KnownDay(_Model):
    value: date
    source: Source


class Dated(_Model):
    """A risk assessment or a probation record: its date, whether it showed a high risk, where it came from."""

    on: date
    level: str | None = None  # low | medium | high (an assessment's recidivism risk)
    high: bool = False
    source: Source


class Decision(_Model):
    """Part 3, the joint decision of the casemanager and probation: it closes the round."""

    outcome: str
    justification: str
    deviates_from_guideline: bool
    decided_on: date
    source: Source


class Facts(_Model):
    phase: Known | None = None  # remand | convicted
    arrival: KnownDay | None = None
    expected_end: KnownDay | None = None  # the expected end of detention (release date)
    date_of_birth: KnownDay | None = None
    flags: dict[str, Known] = Field(default_factory=dict)  # booleans by name, e.g. no_residence_status
    assessments: list[Dated] = Field(default_factory=list)
    probation_records: list[Dated] = Field(default_factory=list)
    advice_requested: Known | None = None  # a hearing advice (or an ISD/TBS examination) is asked, not yet given
    profile: dict[str, Known] = Field(default_factory=dict)  # the rest group's weighing: risks, factors, …
    override: Known | None = None  # the casemanager's override of a no-priority outcome: its reason
    decision: Decision | None = None

    def flag(self, name: str) -> Known | None:
        return self.flags.get(name)

    def new_round(self) -> "Facts":
        """What a new round (after the verdict) keeps: every fact, but not the round's override and decision."""
        return self.model_copy(update={"override": None, "decision": None})


def learn(facts: Facts, message_type: str, contract: MessageContract, source: Source,
          recipient_kinds: Collection[str], withheld: Collection[str]) -> Facts:
    """``facts`` with what this message adds. ``withheld``: the sections (wire names) no prison or probation
    recipient got. A message no prison or probation organisation received adds only the stay's own facts (of
    the prison's notices), never a section's content."""
    exchanged = bool(SOM_PARTIES & set(recipient_kinds))
    learner = _LEARNERS.get(message_type)
    if learner is None or not (exchanged or message_type in _STAY_MESSAGES):
        return facts
    facts = facts.model_copy(deep=True)

    def got(section: str) -> bool:
        return exchanged and section not in withheld

    def known(value: Any) -> Known:
        return (KnownDay if isinstance(value, date) else Known)(value=value, source=source)

    if contract.subject.date_of_birth is not None:
        facts.date_of_birth = known(contract.subject.date_of_birth)
    learner(facts, contract, source, known, got)
    facts.assessments = sorted(facts.assessments, key=lambda a: a.on)[-KEPT:]
    facts.probation_records = sorted(facts.probation_records, key=lambda r: r.on)[-KEPT:]
    return facts


def _detention_notice(facts: Facts, c, source, known, got) -> None:
    facts.phase = known("convicted" if str(c.detention_kind) == "sentence" else "remand")
    facts.arrival = known(c.arrival_date)
    if c.known_release_date is not None:
        facts.expected_end = known(c.known_release_date)


def _release_notice(facts: Facts, c, source, known, got) -> None:
    facts.expected_end = known(c.expected_release_date)
    framework = c.legal_framework
    if framework is not None:
        facts.flags["supervision_follows"] = known(framework.supervision)
        if framework.special_conditions:
            facts.profile["special_conditions"] = known(list(framework.special_conditions))
    if str(c.release_type) == "transfer-to-care":
        facts.flags["outflow_with_care_authorisation"] = known(True)
    housing = c.arrangements.housing if c.arrangements is not None and got("arrangements") else None
    if housing is not None:
        facts.flags["housing_need"] = known(str(housing.status) == "not-arranged")
    risk = c.risk_18b() if got("risk18b") else None
    if risk is not None and str(risk.offence_kind) == "violent":
        facts.flags["violent_offence"] = known(True)


def _screening_result(facts: Facts, c, source, known, got) -> None:
    housing = c.basic_conditions.housing if c.basic_conditions is not None and got("basicConditions") else None
    if housing is not None:
        facts.flags["housing_need"] = known(bool(housing.needs))


def _risk_information(facts: Facts, c, source, known, got) -> None:
    if got("summary"):
        s = c.summary
        level = str(s.recidivism_risk)
        facts.assessments.append(Dated(on=s.assessment_date, level=level, high=level == "high", source=source))
        facts.probation_records.append(Dated(on=s.assessment_date, high=level == "high", source=source))
        facts.profile["recidivism_risk"] = known(level)
        if s.violence_risk:
            facts.flags["violent_offence"] = known(True)
        if s.active_conditions:
            facts.profile["special_conditions"] = known([str(a.kind) for a in s.active_conditions])
    if c.detail is not None and got("detail") and c.detail.criminogenic_factors:
        facts.profile["criminogenic_factors"] = known([f.factor for f in c.detail.criminogenic_factors])
    risk = c.risk_18b() if got("risk18b") else None
    if risk is not None and str(risk.offence_kind) == "violent":
        facts.flags["violent_offence"] = known(True)


def _probation_advice(facts: Facts, c, source, known, got) -> None:
    facts.probation_records.append(Dated(on=c.report_date, source=source))
    if facts.advice_requested is not None and facts.advice_requested.value:
        facts.advice_requested = known(False)  # the advice asked for has come
    if c.advice is not None and got("advice") and c.advice.special_conditions:
        facts.profile["special_conditions"] = known(list(c.advice.special_conditions))
    health = getattr(c, "health", None)
    if health is not None and got("health") and health.addiction:
        facts.flags["addiction"] = known(True)


def _som_triage(facts: Facts, c, source, known, got) -> None:
    part1 = c.case_manager_part if got("caseManagerPart") else None
    if part1 is not None:
        facts.phase = known(str(part1.detention_status))
        if facts.arrival is None:
            facts.arrival = known(part1.entry_date)
        if part1.expected_end_of_detention is not None:
            facts.expected_end = known(part1.expected_end_of_detention)
        for name in ("no_residence_status", "supervision_after_detention", "art_43_3_placement", "tbs_imposed",
                     "isd_imposed", "outflow_with_care_authorisation"):
            facts.flags["supervision_follows" if name == "supervision_after_detention" else name] = \
                known(getattr(part1, name))
        reason = getattr(part1, "override_reason", None)
        if reason:
            facts.override = known(reason)
    part2 = c.probation_part if got("probationPart") else None
    if part2 is not None:
        _probation_part(facts, part2, source, known)
    if c.decision is not None and got("decision"):
        d = c.decision
        facts.decision = Decision(outcome=str(d.outcome), justification=d.justification,
                                  deviates_from_guideline=d.deviates_from_guideline, decided_on=d.decided_on, source=source)


def _probation_part(facts: Facts, part2, source: Source, known) -> None:
    level = str(part2.recidivism_risk)
    if level != "unknown":
        on = part2.risk_estimate_date or source.on
        facts.assessments.append(Dated(on=on, level=level, high=level == "high", source=source))
        facts.profile["recidivism_risk"] = known(level)
    if part2.recent_information_available:
        facts.probation_records.append(Dated(on=part2.risk_estimate_date or source.on, high=level == "high",
                                             source=source))
    requested = part2.hearing_advice_requested or part2.prosecutor_asked_to_examine_isd_tbs
    facts.advice_requested = known(requested)
    facts.flags["asr_not_applied"] = known(part2.young_adult_asr_not_applied)
    if part2.self_reliance is not None:
        facts.profile["self_reliance"] = known(part2.self_reliance.model_dump(mode="json", by_alias=True,
                                                                               exclude_none=True))
        if part2.self_reliance.lvb is not None:
            facts.flags["lvb"] = known(part2.self_reliance.lvb)
    if part2.motivable is not None:
        facts.profile["motivable"] = known(part2.motivable)
    if str(part2.injury_risk) != "unknown":
        facts.profile["injury_risk"] = known(str(part2.injury_risk))
    for field, name in (("criminogenic_factors", "criminogenic_factors"), ("protective_factors", "protective_factors"),
                        ("special_conditions", "special_conditions"), ("ongoing_care_contacts", "care_contacts")):
        values = list(getattr(part2, field))
        if values:
            facts.profile[name] = known(values)


_STAY_MESSAGES = frozenset({"detention-notice", "release-notice"})
_LEARNERS = {"detention-notice": _detention_notice, "release-notice": _release_notice,
             "screening-result": _screening_result, "risk-information": _risk_information,
             "probation-advice": _probation_advice, "som-triage": _som_triage}
