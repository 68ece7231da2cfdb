"""From an IRIS export to planned sends: which contract, to whom, for which purpose, under which
Idempotency-Key. Pure: no I/O, so a dry run and the tests see exactly what would be sent.

Recipients follow the policy catalogue (docs/legal-basis.md), so the adapter does not send what the
gateway would refuse anyway; what each recipient may *see* is still decided by the gateway:

- ``risk-information`` (v2) to the prison where the client is detained, purpose ``supervision``
  (Pm 20d lid 4; on art. 18b Pbw when the assessment asserts the condition). Nothing to a municipality:
  no rule lets risk information reach a college.
- the same ``risk-information`` to ``mayor:<municipality of return>``, purpose ``public-order``, only when
  the assessment carries the art. 18b block; the gateway passes the summary level only.
- ``probation-advice`` (v2) to the prison (full) and to ``municipality:<municipality of return>`` (the
  gateway passes the basic conditions and the social network, never the advice itself or health),
  purpose ``reintegration``; one message per recipient so one refusal does not hold back the other.

Only ``definitief`` assessments and reports are sent. Keys are deterministic:
``iris:<skn>:<type>:<source id>:<content hash>:<recipient>``: a re-run reuses them (the gateway answers
the first receipt), a corrected assessment has another hash and so becomes a new message."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from contracts.probation_advice import ProbationAdviceV2
from contracts.risk_information import RiskInformationV2

from adapters.iris.export import (
    AdviceKind, BasicConditions, ConditionKind, ConditionStatus, Instrument, IrisExport, Level, OffenceKind,
    RiskAssessment, AdviceReport, Status,
)

RISK_LEVEL = {Level.LOW: "low", Level.MEDIUM: "medium", Level.HIGH: "high"}
INSTRUMENT = {Instrument.RISC: "RISc", Instrument.QUICKSCAN: "quickscan", Instrument.OTHER: "other"}
CONDITION = {ConditionKind.CONTACT_BAN: "contact-ban", ConditionKind.AREA_BAN: "area-ban",
             ConditionKind.REPORTING_DUTY: "reporting-duty", ConditionKind.ELECTRONIC_MONITORING: "electronic-monitoring",
             ConditionKind.OTHER: "other"}
OFFENCE = {OffenceKind.VIOLENT: "violent", OffenceKind.SEXUAL: "sexual"}
ADVICE = {AdviceKind.DR: "dr-advice", AdviceKind.PLACEMENT: "placement-advice",
          AdviceKind.CONDITIONAL_RELEASE: "conditional-release-advice"}
CONDITION_STATUS = {ConditionStatus.ARRANGED: "arranged", ConditionStatus.IN_PROGRESS: "in-progress",
                    ConditionStatus.NOT_ARRANGED: "not-arranged", ConditionStatus.NOT_NEEDED: "not-needed",
                    ConditionStatus.UNKNOWN: "unknown"}
# the contract's violenceRisk is a yes/no: yes when IRIS scores the risk of violence or of harm medium or high
VIOLENCE_YES = {Level.MEDIUM, Level.HIGH}


@dataclass(frozen=True)
class PlannedSend:
    type: str
    version: int
    purpose: str
    recipient: str  # an OIN, municipality:<cbs> or mayor:<cbs>
    payload: dict
    idempotency_key: str
    skn: str
    source_id: str  # the assessment id or report id in IRIS
    recipient_role: str  # prison | municipality | mayor


def content_hash(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def idempotency_key(skn: str, message_type: str, source_id: str, payload: dict, recipient: str) -> str:
    return f"iris:{skn}:{message_type}:{source_id}:{content_hash(payload)}:{recipient}"


def _subject(export: IrisExport) -> dict:
    c = export.client
    subject: dict = {"skn": c.skn}
    if c.bsn:
        subject["bsn"] = c.bsn
    if c.name:
        subject["name"] = c.name.model_dump(by_alias=True, exclude_none=True)
    if c.date_of_birth:
        subject["dateOfBirth"] = c.date_of_birth.isoformat()
    return subject


def risk_payload(export: IrisExport, a: RiskAssessment) -> dict:
    """A RISc assessment as ``risk-information`` v2, validated against the contract."""
    conditions = [c for c in (export.supervision.conditions if export.supervision else []) if c.active_on(a.assessment_date)]
    payload: dict = {
        "subject": _subject(export),
        "summary": {
            "instrument": INSTRUMENT[a.instrument],
            "assessmentDate": a.assessment_date.isoformat(),
            "recidivismRisk": RISK_LEVEL[a.recidivism_risk],
            "violenceRisk": a.violence_risk in VIOLENCE_YES or a.risk_of_harm in VIOLENCE_YES,
            "activeConditions": [{"kind": CONDITION[c.kind], **({"description": c.description} if c.description else {})}
                                 for c in conditions],
        },
    }
    factors = [{"factor": s.scale, "score": round(10 * s.score / s.max_score)} for s in a.scales if s.criminogenic]
    if factors or a.explanation:
        payload["detail"] = {"criminogenicFactors": factors, **({"narrative": a.explanation} if a.explanation else {})}
    if a.art18b:
        payload["risk18b"] = {"offenceKind": OFFENCE[a.art18b.offence_kind], "justification": a.art18b.justification,
                              "assertedBy": a.art18b.asserted_by, "assertedAt": a.art18b.asserted_at.isoformat()}
    return RiskInformationV2.model_validate(payload).model_dump(by_alias=True, exclude_none=True, mode="json")


def _basic_conditions(b: BasicConditions) -> dict:
    out = {}
    for field, entry in b:
        if entry is not None:
            out[BasicConditions.model_fields[field].alias or field] = {
                "status": CONDITION_STATUS[entry.status], **({"note": entry.note} if entry.note else {})}
    return out


def advice_payload(export: IrisExport, r: AdviceReport) -> dict:
    """An advice report as ``probation-advice`` v2, validated against the contract."""
    payload: dict = {
        "subject": _subject(export),
        "adviceKind": ADVICE[r.kind],
        "reportDate": r.report_date.isoformat(),
        "probationOrganisationOin": export.probation_organisation_oin,
    }
    if r.summary:
        payload["advice"] = {"summary": r.summary, "advisedInterventions": list(r.advised_interventions),
                             "specialConditions": list(r.special_conditions)}
    if r.basic_conditions:
        payload["basicConditions"] = _basic_conditions(r.basic_conditions)
    if r.social_network:
        payload["socialNetwork"] = r.social_network.model_dump(by_alias=True, exclude_none=True)
    if r.health:
        payload["health"] = r.health.model_dump(by_alias=True, exclude_none=True)
    return ProbationAdviceV2.model_validate(payload).model_dump(by_alias=True, exclude_none=True, mode="json")


def plan(export: IrisExport) -> list[PlannedSend]:
    """Every send this export calls for, in a stable order (assessments, then reports, by date)."""
    skn, d = export.client.skn, export.detention
    sends: list[PlannedSend] = []

    def add(type_: str, purpose: str, recipient: str, role: str, payload: dict, source_id: str) -> None:
        sends.append(PlannedSend(type_, 2, purpose, recipient, payload,
                                 idempotency_key(skn, type_, source_id, payload, recipient), skn, source_id, role))

    for a in sorted(export.risk_assessments, key=lambda a: (a.assessment_date, a.assessment_id)):
        if a.status is not Status.FINAL:
            continue
        payload = risk_payload(export, a)
        add("risk-information", "supervision", d.prison_oin, "prison", payload, a.assessment_id)
        if a.art18b:
            add("risk-information", "public-order", f"mayor:{d.municipality_of_return}", "mayor", payload, a.assessment_id)
    for r in sorted(export.advice_reports, key=lambda r: (r.report_date, r.report_id)):
        if r.status is not Status.FINAL:
            continue
        payload = advice_payload(export, r)
        add("probation-advice", "reintegration", d.prison_oin, "prison", payload, r.report_id)
        if r.basic_conditions or r.social_network:  # all a college may receive of an advice (Pm 20d lid 2)
            add("probation-advice", "reintegration", f"municipality:{d.municipality_of_return}", "municipality",
                payload, r.report_id)
    return sends
