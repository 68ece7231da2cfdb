"""The search form's fields and the values each select offers: the same closed vocabularies the API
validates (gateway/audit/queries.py), and the organisations the officer may name."""
from __future__ import annotations

from fastapi import Request

from gateway.audit import queries
from gateway.audit.citizen_report import plain_words
from gateway.pages.officer import Officer
from gateway.pages.render import language, texts_for
from gateway.services import Services


async def filter_fields(services: Services, who: Officer, request: Request) -> list[dict]:
    t, plain = texts_for(request), plain_words(language(request))
    names = await queries.organisation_names(services)
    orgs = sorted(((oin, f"{name} ({oin})") for oin, name in names.items()), key=lambda o: o[1])
    vocab = queries.vocabularies(services.catalogue)

    def select(name: str, label: str, values) -> dict:
        return {"name": name, "label": label, "options": list(values), "hint": None}

    def text(name: str, label: str, type_: str = "text", hint: str | None = None, pattern: str | None = None) -> dict:
        return {"name": name, "label": label, "options": None, "type": type_, "hint": hint, "pattern": pattern}

    fields = [text("since", "since", "date"), text("until", "until", "date")]
    if queries.sees_all(who.caller()):
        fields.append(select("organisation", "organisation", orgs))
    fields += [
        select("counterparty", "counterparty", orgs),
        # plain words first, then the code the API, the export and the records use
        select("messageType", "message_type", ((v, f"{plain.message_type(v) or v} — {v}") for v in vocab["message_type"])),
        select("purpose", "purpose", ((v, f"{plain.named('purposes', v)} — {v}") for v in vocab["purpose"])),
        select("legalBasis", "legal_basis", ((v, f"{plain.cite(v)} — {v}") for v in vocab["legal_basis"])),
        select("outcome", "outcome", ((v, t(v)) for v in vocab["outcome"])),
        select("activity", "activity", ((v, v) for v in vocab["activity"])),
        # the browser refuses to put anything but a pseudonym (a BSN typed by mistake) into the URL
        text("subjectId", "subject_id", hint="subject_id_hint", pattern=queries.FORMATS["subject_id"][0].strip("^$")),
        text("traceId", "trace_id", pattern=queries.FORMATS["trace_id"][0].strip("^$")),
    ]
    return fields
