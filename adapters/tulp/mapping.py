"""From one detainee of a TULP export to the gateway's messages (pure: no I/O).

Order per detainee: detention-notice (it establishes the competent municipality, so it goes first),
transfer-notices, screening-result, dr-plan, release-notice. Each message has a deterministic
Idempotency-Key ``tulp:<skn>:<kind>:<content hash>``: the same export gives the same keys, a changed
source a new key (and so a new message)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date

from contracts import ContractError, validate_payload

from adapters.tulp.export import Area, AreaWithArrangement, Detainee, NeedsOnly, ReleaseKind, StayKind

PURPOSE = "reintegration"
TAB_NAMES = {
    "01": "D&R 01 Algemeen", "02": "D&R 02 Intake", "03": "D&R 03 Mentor PIW", "04": "D&R 04 Arbeid",
    "05": "D&R 05 Onderwijs", "06": "D&R 06 Sport", "07": "D&R 07 Re-integratietrainer", "08": "D&R 08 Casemanager",
    "09": "D&R 09 Zorg", "10": "D&R 10 ORZ", "11": "D&R 11 Re-integratie en Resocialisatie", "12": "D&R 12 DBT",
    "13": "D&R 13 MDO/Actielijst", "14": "D&R 14 Risicoscreener",
}
PLAN_TABS = ("01", "04", "05", "08", "09", "10", "11", "12", "13")  # the tabs the dr-plan is assembled from
ARRANGEMENT = {"geregeld": "arranged", "in-behandeling": "in-progress", "niet-geregeld": "not-arranged",
               "niet-nodig": "not-needed", "onbekend": "unknown"}
RELEASE_TYPE = {
    ReleaseKind.EINDE_STRAF: "end-of-sentence", ReleaseKind.VOORWAARDELIJKE_INVRIJHEIDSTELLING: "conditional-release",
    ReleaseKind.OPHEFFING_VOORLOPIGE_HECHTENIS: "release-from-remand",
    ReleaseKind.SCHORSING_VOORLOPIGE_HECHTENIS: "suspension-of-remand",
    ReleaseKind.OVERPLAATSING_ZORG: "transfer-to-care", ReleaseKind.ANDERS: "other",
}


@dataclass(frozen=True)
class Planned:
    """One message the export calls for."""

    skn: str
    kind: str  # detention-notice | transfer-notice | screening-result | dr-plan | release-notice
    type: str
    version: int
    recipients: list[str]
    payload: dict
    urgent: bool = False
    purpose: str = PURPOSE
    key: str = field(init=False)
    content_hash: str = field(init=False)

    def __post_init__(self):
        try:  # the contract's normal form (its defaults filled in), which is what a signature is over
            object.__setattr__(self, "payload", validate_payload(self.type, self.version, self.payload)
                               .model_dump(mode="json", by_alias=True, exclude_none=True))
        except ContractError:
            pass  # refused by ``validate`` before it is sent
        body = {"type": self.type, "version": self.version, "purpose": self.purpose,
                "recipients": self.recipients, "payload": self.payload}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
        object.__setattr__(self, "content_hash", digest)
        object.__setattr__(self, "key", f"tulp:{self.skn}:{self.kind}:{digest}")

    def validate(self) -> None:
        """Raise ``contracts.ContractError`` when the payload does not satisfy its contract."""
        validate_payload(self.type, self.version, self.payload)


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None and v != [] and v != {}}


def _subject(d: Detainee) -> dict:
    subject = {"bsn": d.bsn, "skn": d.skn, "dateOfBirth": d.date_of_birth.isoformat() if d.date_of_birth else None}
    if d.name:
        subject["name"] = _drop_none({"givenNames": d.name.given_names, "surnamePrefix": d.name.surname_prefix,
                                      "surname": d.name.surname})
    return _drop_none(subject)


def municipality_recipients(d: Detainee) -> list[str]:
    """The competent municipalities: of residence, and the intended one when it differs."""
    codes = [c for c in (d.stay.municipality_of_residence, d.stay.intended_municipality) if c]
    return [f"municipality:{c}" for c in dict.fromkeys(codes)]


def _recipients(d: Detainee, *extra: str | None) -> list[str]:
    out = municipality_recipients(d) + [x for x in extra if x]
    if d.stay.probation_organisation_oin:
        out.append(d.stay.probation_organisation_oin)
    return list(dict.fromkeys(out))


def detention_notice(d: Detainee) -> Planned:
    s = d.stay
    payload = _drop_none({
        "subject": _subject(d), "prisonOin": s.prison_oin, "arrivalDate": s.arrival_date.isoformat(),
        "detentionKind": "remand" if s.stay_kind == StayKind.PREVENTIEVE_HECHTENIS else "sentence",
        "municipalityOfResidence": s.municipality_of_residence, "intendedMunicipality": s.intended_municipality,
        "probationOrganisationOin": s.probation_organisation_oin,
    })
    return Planned(d.skn, "detention-notice", "detention-notice", 1, _recipients(d), payload)


def transfer_notices(d: Detainee) -> list[Planned]:
    out, current = [], d.stay.prison_oin
    for t in sorted(d.transfers, key=lambda t: t.date):
        if t.to_prison_oin == current:
            continue
        payload = _drop_none({
            "subject": _subject(d), "fromPrisonOin": current, "toPrisonOin": t.to_prison_oin,
            "transferDate": t.date.isoformat(), "reason": t.reason, "intendedMunicipality": d.stay.intended_municipality,
        })
        out.append(Planned(d.skn, "transfer-notice", "transfer-notice", 2, _recipients(d, t.to_prison_oin), payload))
        current = t.to_prison_oin
    return out


def _needs(n: NeedsOnly | None) -> dict | None:
    return _drop_none({"situation": n.situation, "needs": list(n.needs)}) or None if n else None


def screening_result(d: Detainee) -> Planned | None:
    tab = d.tabs.t02
    if tab is None:
        return None
    f = tab.fields
    screening = max(f.screening_date, d.stay.arrival_date)
    payload = _drop_none({
        "subject": _subject(d), "arrivalDate": d.stay.arrival_date.isoformat(), "screeningDate": screening.isoformat(),
        "instruments": [_drop_none({"instrument": i.instrument, "date": i.date.isoformat(), "conclusion": i.conclusion})
                        for i in f.instruments] or None,
        "basicConditions": _drop_none({
            "identityDocument": _needs(f.identity_document), "housing": _needs(f.housing),
            "workIncome": _needs(f.work_income), "debts": _needs(f.debts), "care": _needs(f.care)}) or None,
        "socialNetwork": _needs(f.social_network), "childrenFamily": _needs(f.children_family),
    })
    return Planned(d.skn, "screening-result", "screening-result", 2, _recipients(d), payload)


def _section(tab_number: str, meta, *areas: Area | None) -> dict | None:
    areas = [a for a in areas if a is not None]
    if not areas:
        return None
    situation = " / ".join(a.situation for a in areas if a.situation)
    goals, seen = [], set()
    for a in areas:
        for g in a.goals:
            gid = g.id if g.id not in seen else f"{g.id}-{len(seen)}"
            seen.add(gid)
            goals.append({"id": gid, "description": g.description})
    return _drop_none({
        "currentSituation": situation or None,
        "needs": [n for a in areas for n in a.needs][:20],
        "goals": goals[:20],
        "actions": [_drop_none({"description": x.description, "ownerOin": x.owner_oin,
                                "dueDate": x.due_date.isoformat() if x.due_date else None, "status": x.status})
                    for a in areas for x in a.actions][:50],
        "provenance": _drop_none({"tulpTab": TAB_NAMES[tab_number], "reportType": meta.report_type,
                                  "reportVersion": meta.report_version, "reportStatus": meta.report_status}),
    })


def plan_version(d: Detainee) -> int:
    """The plan's version number, from the source alone (so it is the same after a lost state): the sum of
    the revisions of the tabs the plan is assembled from. Every saved change of such a tab adds one."""
    return max(1, sum(getattr(d.tabs, f"t{n}").revision for n in PLAN_TABS if getattr(d.tabs, f"t{n}") is not None))


def dr_plan(d: Detainee) -> Planned | None:
    t = d.tabs
    sections = {}
    if t.t11:
        sections["identity-document"] = _section("11", t.t11, t.t11.fields.identity_document)
        sections["housing"] = _section("11", t.t11, t.t11.fields.housing)
        sections["debts"] = _section("11", t.t11, t.t11.fields.debts)
    work = t.t04.fields.work if t.t04 else None
    education = t.t05.fields.education if t.t05 else None
    if t.t04 or t.t05:
        sections["work-income"] = _section("04" if work else "05", t.t04 or t.t05, work, education)
    if t.t09:
        sections["care"] = _section("09", t.t09, t.t09.fields.care)
        sections["health"] = _section("09", t.t09, t.t09.fields.treatment)
    if t.t08:
        sections["social-network"] = _section("08", t.t08, t.t08.fields.social_network)
        sections["children-family"] = _section("08", t.t08, t.t08.fields.children_family)
    if t.t10:
        sections["restorative-work"] = _section("10", t.t10, t.t10.fields.restorative)
    if t.t12:
        sections["behaviour"] = _section("12", t.t12, t.t12.fields.behaviour)
    sections = _drop_none(sections)
    if not sections:
        return None
    status = "final" if t.t01 and t.t01.fields.plan_status == "definitief" else "draft"
    mdo = t.t13.fields if t.t13 else None
    payload = _drop_none({
        "subject": _subject(d), "planVersion": plan_version(d), "status": status, "prisonOin": d.stay.prison_oin,
        "establishedDate": mdo.plan_established_date.isoformat() if mdo and mdo.plan_established_date else None,
        "reviewDate": mdo.next_review_date.isoformat() if mdo and mdo.next_review_date else None,
        "sections": sections,
    })
    aftercare = t.t11.fields.aftercare_municipality if t.t11 else None
    return Planned(d.skn, "dr-plan", "dr-plan", 2,
                   _recipients(d, f"municipality:{aftercare}" if aftercare else None), payload)


def _arrangement(area: AreaWithArrangement | None) -> dict | None:
    if area is None or area.arrangement is None:
        return None
    return {"status": ARRANGEMENT[area.arrangement.value]}


def is_unexpected_release(d: Detainee) -> bool:
    s = d.stay
    return s.actual_release_date is not None and (s.expected_release_date is None
                                                  or s.actual_release_date < s.expected_release_date)


def release_notice(d: Detainee) -> Planned | None:
    """The expected release (certainty planned for a sentence, provisional for remand), or the actual
    release when it came earlier than expected (certainty ``unexpected``: the contract has no urgency flag;
    such a notice is sent first in a run)."""
    s = d.stay
    unexpected = is_unexpected_release(d)
    release: date | None = s.actual_release_date if unexpected else (s.expected_release_date or s.actual_release_date)
    destination = s.intended_municipality or s.municipality_of_residence
    if release is None or destination is None:
        return None
    remand = s.stay_kind == StayKind.PREVENTIEVE_HECHTENIS
    kind = s.release_kind or (ReleaseKind.OPHEFFING_VOORLOPIGE_HECHTENIS if remand else ReleaseKind.EINDE_STRAF)
    t = d.tabs
    arrangements = _drop_none({
        "identityDocument": _arrangement(t.t11.fields.identity_document) if t.t11 else None,
        "housing": _arrangement(t.t11.fields.housing) if t.t11 else None,
        "workIncome": _arrangement(t.t04.fields.work) if t.t04 else None,
        "debts": _arrangement(t.t11.fields.debts) if t.t11 else None,
        "care": _arrangement(t.t09.fields.care) if t.t09 else None,
    })
    legal = None
    if s.supervision or s.special_conditions:
        legal = {"supervision": s.supervision, "specialConditions": list(s.special_conditions),
                 "aftercareLead": "probation" if s.supervision else "municipality"}
    payload = _drop_none({
        "subject": _subject(d), "arrivalDate": s.arrival_date.isoformat(),
        "expectedReleaseDate": max(release, s.arrival_date).isoformat(),
        "certainty": "unexpected" if unexpected else ("provisional" if remand else "planned"),
        "releaseType": RELEASE_TYPE[kind], "destinationMunicipality": destination,
        "legalFramework": legal, "arrangements": arrangements or None,
    })
    aftercare = t.t11.fields.aftercare_municipality if t.t11 else None
    return Planned(d.skn, "release-notice", "release-notice", 2,
                   _recipients(d, f"municipality:{aftercare}" if aftercare else None), payload, urgent=unexpected)


def plan(d: Detainee) -> list[Planned]:
    """Every message this detainee's record calls for, in the order they must be sent: the detention-notice
    first (it establishes the competent municipality), transfers, an unexpected release, the screening
    result, the plan, a planned release."""
    out = [detention_notice(d), *transfer_notices(d)]
    release = release_notice(d)
    if release is not None and release.urgent:  # an unexpected release right after what establishes competence
        out.append(release)
        release = None
    for m in (screening_result(d), dr_plan(d), release):
        if m is not None:
            out.append(m)
    return out
