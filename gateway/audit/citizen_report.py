"""The subject report as the person it is about reads it (AVG art. 15 inzage).

``build`` turns a ``SubjectReport`` (the audit records about one person) into a ``CitizenReport``: every
processing in plain words — local time, which organisation, what it did, with whom, for which purpose, on
which legal basis, with what outcome, which kinds of data — and what was withheld from whom and why, which
legal bases, purposes and kinds of data that means, how long copies are kept, the person's rights and whom
to ask. It is pure: no database, no clock, no settings read from the environment. ``render_html``,
``render_pdf`` and ``render_json`` lay the same content out as an accessible HTML document, a PDF (the
built-in fonts, WinAnsi) and JSON (camelCase, like the rest of the API).

Every code the audit log writes has its words in ``citizen_texts.yaml``, in Dutch and English; a code
missing there is a test failure (tests/unit/test_citizen_report.py), so no code reaches the person."""
from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape as xml_escape
from zoneinfo import ZoneInfo

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from contracts.parties import SYSTEM_OIN
from gateway.audit.record import Activity
from gateway.audit.report import SubjectReport
from gateway.schemas import Wire

LANGUAGES = ("nl", "en")
TEXTS_PATH = Path(__file__).with_name("citizen_texts.yaml")
TEMPLATES = Path(__file__).with_name("templates")
CONSENT_BASIS = "consent"

# how the gateway writes the details this report reads (gateway/exchange/send.py, read.py, policy.py)
_WITHHELD = re.compile(r"^(?P<read>read: )?section (?P<section>\S+) \((?P<category>[^)]+)\): (?P<reason>[\w-]+)$")
_OPENED = re.compile(r"^section (?P<section>\S+) \((?P<category>[^)]+)\) opened by consent")
_RELEASED = re.compile(r"^sections: (?P<pairs>.+)$")
_MESSAGE_IN_DETAIL = re.compile(r"^(?P<type>[a-z][a-z0-9-]*)(?: v\d+ |: )")


@functools.cache
def texts() -> dict[str, Any]:
    """The text table (citizen_texts.yaml), parsed once."""
    return yaml.safe_load(TEXTS_PATH.read_text(encoding="utf-8"))


# --- the structure -------------------------------------------------------------------------------------

class Term(Wire):
    """A code explained: its plain name and what it means."""

    name: str
    text: str


class Glossary(Wire):
    heading: str
    intro: str | None = None
    terms: list[Term]
    note: str | None = None


class Paragraphs(Wire):
    heading: str
    intro: str | None = None
    items: list[str]
    notes: list[str] = []


class Note(Wire):
    heading: str
    text: str


class Withheld(Wire):
    """One section that did not reach an organisation, and why."""

    seq: int
    when: str
    when_iso: str
    section: str
    category: str
    recipient: str
    sender: str | None
    summary: str
    how: str
    why: str


class Processing(Wire):
    """One audit record, in words."""

    seq: int
    when: str
    when_iso: str
    organisation: str
    what: str
    message: str | None
    counterparty: str | None
    purpose: str | None
    legal_basis: str | None
    outcome: str
    reason: str | None
    shared: list[str]
    withheld: list[str]
    categories: list[str]


class Columns(Wire):
    when: str
    organisation: str
    what: str
    with_whom: str
    purpose: str
    legal_basis: str
    outcome: str
    data: str


class Words(Wire):
    """The small words a renderer puts around the values."""

    message: str
    shared: str
    withheld: str
    none: str
    page: str


class Table(Wire):
    heading: str
    caption: str
    columns: Columns
    rows: list[Processing]
    empty: str | None


class WithheldList(Wire):
    heading: str
    intro: str
    items: list[Withheld]
    empty: str | None


class CitizenReport(Wire):
    lang: str
    title: str
    service: str
    intro: str
    generated: str
    generated_at: str
    times: str
    count: int
    count_text: str
    scope: Note | None
    processings: Table
    withheld: WithheldList
    legal_bases: Glossary
    purposes: Glossary
    categories: Glossary
    retention: Paragraphs
    rights: Paragraphs
    contact: Paragraphs
    words: Words


# --- building it ---------------------------------------------------------------------------------------

class _Say:
    """The text table in one language."""

    def __init__(self, lang: str):
        if lang not in LANGUAGES:
            raise ValueError(f"language {lang!r}: one of {', '.join(LANGUAGES)}")
        self.lang, self.t = lang, texts()
        self.labels: dict[str, Any] = self.t["labels"][lang]

    def __call__(self, key: str, **values: Any) -> str:
        return self.labels[key].format(**values)

    def pick(self, table: str, code: str | None) -> str | None:
        entry = self.t[table].get(code) if code else None
        return entry[self.lang] if entry else None

    def activity(self, code: str) -> str:
        if code not in Activity._value2member_map_:
            return _plain_code(code)
        return Activity(code).text if self.lang == "en" else self.t["activities"][code]["nl"]

    def outcome(self, activity: str, outcome: str) -> str:
        if activity == Activity.DENY:
            return self.t["outcomes"]["any"]["deny"][self.lang]
        entry = self.t["outcomes"].get(activity, {}).get(outcome) or self.t["outcomes"]["any"].get(outcome)
        return entry[self.lang] if entry else _plain_code(outcome)

    def cite(self, basis: str | None) -> str | None:
        if not basis:
            return None
        entry = self.t["legal_bases"].get(basis)
        return entry["cite"][self.lang] if entry else basis

    def named(self, table: str, code: str) -> str:
        entry = self.t[table].get(code)
        return entry["name"][self.lang] if entry else _plain_code(code)

    def section(self, name: str) -> str:
        return self.pick("sections", name) or _plain_code(name)

    def message_type(self, code: str | None) -> str | None:
        return self.pick("message_types", code)

    def term(self, days: int) -> str:
        """A number of days as a citizen says it: ten years, six months, 45 days."""
        def counted(n: int, one: str, many: str) -> str:
            numbers = self.labels["numbers"]
            return self(one) if n == 1 else self(many, n=numbers[n] if n < len(numbers) else n)

        if days >= 365 and days % 365 == 0:
            return counted(days // 365, "year", "years")
        months = round(days / 30.4375)
        if months >= 1 and abs(days - months * 30.4375) <= 1.5:
            return counted(months, "month", "months")
        return counted(days, "day", "days")

    def join(self, items: list[str]) -> str:
        return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {self('and')} {items[-1]}"


def plain_words(lang: str) -> _Say:
    """The text table's plain words for codes in one language, for other readers than the citizen too:
    the audit pages name outcomes, legal bases, purposes and message types with them."""
    return _Say(lang)


def _plain_code(code: str) -> str:
    """A code no text was found for, as words rather than a slug (the tests keep this path unused)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", code).replace("-", " ").lower()


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


class _Clock:
    def __init__(self, say: _Say, tz_name: str):
        self.say, self.tz = say, ZoneInfo(tz_name)

    def show(self, at: datetime) -> tuple[str, str]:
        """A moment as local date and time in words, and as ISO 8601 with its offset. In the hour that
        repeats when summer time ends, the words say which of the two it was."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        local = at.astimezone(self.tz)
        text = f"{local.day} {self.say.labels['month_names'][local.month - 1]} {local.year}, {local:%H:%M}"
        naive = local.replace(tzinfo=None)
        if naive.replace(tzinfo=self.tz, fold=0).utcoffset() != naive.replace(tzinfo=self.tz, fold=1).utcoffset():
            text += f" ({self.say('summer_time') if local.dst() else self.say('winter_time')})"
        return text, local.isoformat(timespec="seconds")


@functools.cache
def _section_categories() -> dict[str, str]:
    """Section name -> data category, where the contracts give a section one category only."""
    from contracts.registry import MODELS, section_paths

    seen: dict[str, set[str]] = {}
    for model in MODELS:
        for path, category in section_paths(model).items():
            seen.setdefault(path[-1], set()).add(category)
    return {name: next(iter(c)) for name, c in seen.items() if len(c) == 1}


def _message_type(record: Any) -> str | None:
    """The message type a record is about: its catalogue rule (``dr-plan/dji-to-municipality``), or the
    type its detail starts with (``dr-plan v1 to 1 recipient(s)``, ``detention-notice: ...``)."""
    known = texts()["message_types"]
    if record.rule and "/" in record.rule and record.rule.split("/", 1)[0] in known:
        return record.rule.split("/", 1)[0]
    if record.detail and (m := _MESSAGE_IN_DETAIL.match(record.detail)) and m["type"] in known:
        return m["type"]
    return None


def build(report: SubjectReport, names: dict[str, str], *, lang: str = "nl", scope_oin: str | None = None,
          scope_name: str | None = None, now_tz: str = "Europe/Amsterdam", settings: Any = None) -> CitizenReport:
    """The report in words, ready to render. ``names``: organisation names by OIN. ``scope_oin``: the report
    was made by that organisation's data protection officer and covers its processing only (the records
    were chosen so by the caller; this says so). ``settings``: the retention terms (gateway.settings.Settings);
    without it, the defaults."""
    say = _Say(lang)
    clock = _Clock(say, now_tz)

    def org(oin: str | None, named: str | None = None) -> str | None:
        if not oin:
            return None
        if oin == SYSTEM_OIN:
            return say("system_actor")
        return names.get(oin) or named or say("unknown_org", oin=oin)

    rows: list[Processing] = []
    withheld: list[Withheld] = []
    bases: list[str] = []
    purposes: list[str] = []
    categories: list[str] = []
    orgs: list[str] = []

    def note(into: list[str], code: str | None) -> None:
        if code and code not in into:
            into.append(code)

    for r in report.records:
        when, when_iso = clock.show(r.recorded_at)
        # the view may carry the names itself (actorName, counterpartyName); ``names`` wins
        actor = org(r.actor_oin, getattr(r, "actor_name", None))
        other = org(r.counterparty_oin, getattr(r, "counterparty_name", None))
        for oin, name in ((r.actor_oin, actor), (r.counterparty_oin, other)):
            if oin and oin != SYSTEM_OIN and name not in orgs:
                orgs.append(name)
        note(bases, r.legal_basis)
        note(purposes, r.purpose)
        shared, held, cats = [], [], []
        reason = (say.pick("deny_reasons", r.outcome) or say.pick("deny_reasons", "deny")) if r.activity == Activity.DENY else None
        detail = r.detail or ""
        if r.activity in (Activity.DELIVER, Activity.READ) and (m := _RELEASED.match(detail)):
            for pair in m["pairs"].split(", "):
                section, _, basis = pair.partition("=")
                note(bases, basis)
                text = say.section(section)
                if basis and basis != r.legal_basis:
                    text += f" ({say('on_basis', cite=say.cite(basis))})"
                shared.append(text)
                note(cats, _section_categories().get(section))
        elif r.activity == Activity.DISCLOSE and (m := _OPENED.match(detail)):
            shared.append(say.section(m["section"]))
            note(cats, m["category"])
        elif r.activity == Activity.REDACT and (m := _WITHHELD.match(detail)):
            on_read = bool(m["read"])
            # on a send the actor is the sender and the counterparty the recipient; on a read the other way round
            recipient, sender = (actor, other) if on_read else (other, actor)
            section, category = say.section(m["section"]), say.named("categories", m["category"])
            entry = texts()["withheld_reasons"].get(m["reason"]) or texts()["withheld_reasons"]["other"]
            who = recipient or say("none")
            withheld.append(Withheld(
                seq=r.seq, when=when, when_iso=when_iso, section=section, category=category, recipient=who,
                sender=sender, summary=say("withheld_item" if section.lower() != category.lower() else "withheld_item_plain",
                                           section=section, category=category, recipient=who),
                how=texts()["withheld_stages"]["read" if on_read else "send"][lang].format(
                    sender=sender or say("none"), recipient=who),
                why=entry[lang].format(recipient=who),
            ))
            held.append(section)
            note(cats, m["category"])
        for c in cats:
            note(categories, c)
        rows.append(Processing(
            seq=r.seq, when=when, when_iso=when_iso, organisation=actor or say("none"), what=say.activity(r.activity),
            message=say.message_type(_message_type(r)), counterparty=other,
            purpose=say.named("purposes", r.purpose) if r.purpose else None, legal_basis=say.cite(r.legal_basis),
            outcome=say.outcome(r.activity, r.outcome), reason=reason, shared=shared, withheld=held,
            categories=[say.named("categories", c) for c in cats],
        ))

    generated, generated_iso = clock.show(report.generated_at)
    scope = None
    if scope_oin:
        scope_name = scope_name or names.get(scope_oin) or say("unknown_org", oin=scope_oin)
        scope = Note(heading=say("scope_heading"), text=say("scope_note", name=scope_name))
    t = texts()
    return CitizenReport(
        lang=lang, title=say("title"), service=say("service"), intro=say("intro"),
        generated=say("generated", when=generated), generated_at=generated_iso,
        times=say("times_local") if now_tz == "Europe/Amsterdam" else say("times_zone", zone=now_tz),
        count=len(rows), count_text=say("count_one") if len(rows) == 1 else say("count_many", n=len(rows)),
        scope=scope,
        processings=Table(
            heading=say("processings"), caption=say("table_caption"),
            columns=Columns(when=say("col_when"), organisation=say("col_organisation"), what=say("col_what"),
                            with_whom=say("col_with"), purpose=say("col_purpose"), legal_basis=say("col_basis"),
                            outcome=say("col_outcome"), data=say("col_data")),
            rows=rows, empty=None if rows else say("none_found")),
        withheld=WithheldList(heading=say("withheld_heading"), intro=say("withheld_intro"), items=withheld,
                              empty=None if withheld else say("withheld_none")),
        legal_bases=Glossary(
            heading=say("bases_heading"), intro=say("bases_intro"), note=say("abbreviations"),
            terms=[Term(name=say.cite(b), text=t["legal_bases"][b]["text"][lang] if b in t["legal_bases"] else b)
                   for b in _in_table_order(bases, t["legal_bases"])]),
        purposes=Glossary(heading=say("purposes_heading"), terms=_terms(say, "purposes", purposes)),
        categories=Glossary(heading=say("categories_heading"), terms=_terms(say, "categories", categories)),
        retention=_retention(say, settings),
        rights=Paragraphs(heading=say("rights_heading"), items=[
            say(k) for k in ("right_access", "right_rectification", "right_objection", "right_consent",
                             "right_complaint", "right_wjsg")]),
        contact=Paragraphs(heading=say("contact_heading"), items=[
            say("contact_scope", name=scope_name) if scope else say("contact_all"),
            *([say("contact_orgs", names=say.join(orgs))] if orgs else [])]),
        words=Words(message=say("message"), shared=say("shared_sections"), withheld=say("withheld_section"),
                    none=say("none"), page=say("page", n="{n}")),
    )


def _in_table_order(codes: Iterable[str], table: dict) -> list[str]:
    order = list(table)
    return sorted(codes, key=lambda c: (order.index(c) if c in order else len(order), c))


def _terms(say: _Say, table: str, codes: list[str]) -> list[Term]:
    entries = texts()[table]
    return [Term(name=_capital(say.named(table, c)), text=entries[c]["text"][say.lang] if c in entries else "")
            for c in _in_table_order(codes, entries)]


def _retention(say: _Say, settings: Any) -> Paragraphs:
    """The retention schedule (gateway/settings.py, gateway/exchange/retention.py) in words."""
    if settings is None:
        from gateway.settings import Settings

        fields = Settings.model_fields
        after = fields["retention_after_release_days"].default_factory()
        without = fields["retention_without_release_days"].default_factory()
        own = fields["sender_retention_days"].default_factory()
    else:
        after, without = settings.retention_after_release_days, settings.retention_without_release_days
        own = settings.sender_retention_days
    items = []
    for kind in texts()["holders"]:
        holder = say.pick("holders", kind)
        kept = own.get(kind, 3650)  # gateway/exchange/retention.py own_copy_due's default
        if kind in after:
            items.append(say("retention_received_after_release", holder=holder, term=say.term(after[kind]),
                             fallback=say.term(without.get(kind, 365))))
            items.append(say("retention_own_copy", holder=holder, term=say.term(kept)))
        else:
            items.append(say("retention_all_copies", holder=holder, term=say.term(kept)))
    return Paragraphs(heading=say("retention_heading"), intro=say("retention_intro"),
                      items=[_capital(i) for i in items],
                      notes=[say("retention_dossier"), say("retention_purge"), say("retention_log")])


def language_from(accept_language: str | None) -> str:
    """The report's language for an ``Accept-Language`` header: English when the caller prefers it to
    Dutch, otherwise Dutch (the default)."""
    best, best_q = "nl", 0.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        lang = tag.strip().lower().split("-", 1)[0]
        q = 1.0
        if (m := re.search(r"\bq=([^;]*)", params)) is not None:
            try:
                q = float(m[1].strip())
            except ValueError:
                q = 0.0  # a weight that is no number counts for nothing
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best


# --- HTML ----------------------------------------------------------------------------------------------

@functools.cache
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render_html(c: CitizenReport) -> str:
    """A complete HTML document: one file, no external resources, every value escaped."""
    return _environment().get_template("citizen_report.html").render(c=c)


# --- JSON ----------------------------------------------------------------------------------------------

def render_json(c: CitizenReport) -> dict:
    return c.model_dump(by_alias=True, mode="json")


# --- PDF -----------------------------------------------------------------------------------------------

def _pdf(text: str | None) -> str:
    """A value as Paragraph markup: escaped, and only characters the built-in fonts (WinAnsi) carry."""
    text = (text or "").encode("cp1252", "replace").decode("cp1252")
    return xml_escape(text)


def render_pdf(c: CitizenReport) -> bytes:
    """The same content as a PDF (A4 landscape), in the built-in Helvetica."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontName="Helvetica", fontSize=10, leading=13)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10)
    head = ParagraphStyle("head", parent=small, fontName="Helvetica-Bold")
    h1 = ParagraphStyle("h1", parent=styles["Heading1"], fontName="Helvetica-Bold")
    h2 = ParagraphStyle("h2", parent=styles["Heading2"], fontName="Helvetica-Bold")
    h3 = ParagraphStyle("h3", parent=styles["Heading3"], fontName="Helvetica-Bold", fontSize=10)
    bullet = ParagraphStyle("bullet", parent=body, leftIndent=12, bulletIndent=2)

    def p(text: str | None, style=body) -> Paragraph:
        return Paragraph(_pdf(text), style)

    story: list = [p(c.service, small), p(c.title, h1), p(c.intro), p(f"{c.generated} {c.times} {c.count_text}")]
    if c.scope:
        box = Table([[p(c.scope.heading, h3)], [p(c.scope.text)]], colWidths=[250 * mm])
        box.setStyle(TableStyle([("BOX", (0, 0), (-1, -1), 1, colors.black),
                                 ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#fff4d6"))]))
        story += [Spacer(1, 4 * mm), box]

    story.append(p(c.processings.heading, h2))
    if c.processings.empty:
        story.append(p(c.processings.empty))
    else:
        cols = c.processings.columns
        data = [[p(x, head) for x in (cols.when, cols.organisation, cols.what, cols.with_whom, cols.purpose,
                                      cols.legal_basis, cols.outcome, cols.data)]]
        for r in c.processings.rows:
            what = [_pdf(r.what)]
            if r.message:
                what.append(f"{_pdf(c.words.message)}: {_pdf(r.message)}")
            if r.shared:
                what.append(f"{_pdf(c.words.shared)}: {_pdf(', '.join(r.shared))}")
            if r.withheld:
                what.append(f"{_pdf(c.words.withheld)}: {_pdf(', '.join(r.withheld))}")
            outcome = _pdf(r.outcome) + (f": {_pdf(r.reason)}" if r.reason else "")
            data.append([p(r.when, small), p(r.organisation, small), Paragraph("<br/>".join(what), small),
                         p(r.counterparty or c.words.none, small), p(r.purpose or c.words.none, small),
                         p(r.legal_basis or c.words.none, small), Paragraph(outcome, small),
                         p(", ".join(r.categories) or c.words.none, small)])
        widths = [w * mm for w in (27, 33, 55, 33, 30, 30, 28, 26)]
        table = Table(data, colWidths=widths, repeatRows=1)
        table.setStyle(TableStyle([
            ("GRID", (0, 0), (-1, -1), 0.5, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6e6e6")),
        ]))
        story.append(table)

    story.append(p(c.withheld.heading, h2))
    story.append(p(c.withheld.intro))
    if c.withheld.empty:
        story.append(p(c.withheld.empty))
    for w in c.withheld.items:
        story.append(KeepTogether([p(w.summary, h3), p(w.when, small), p(w.how), p(w.why)]))

    for glossary in (c.legal_bases, c.purposes, c.categories):
        story.append(p(glossary.heading, h2))
        if glossary.intro:
            story.append(p(glossary.intro))
        for term in glossary.terms:
            story.append(Paragraph(f"<b>{_pdf(term.name)}</b>: {_pdf(term.text)}", bullet, bulletText="•"))
        if glossary.note:
            story.append(p(glossary.note, small))

    for part in (c.retention, c.rights, c.contact):
        story.append(p(part.heading, h2))
        if part.intro:
            story.append(p(part.intro))
        story += [Paragraph(_pdf(i), bullet, bulletText="•") for i in part.items]
        story += [p(n) for n in part.notes]

    def footer(canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.drawString(15 * mm, 8 * mm, _plain_pdf(f"{c.service} — {c.title}"))
        canvas.drawRightString(landscape(A4)[0] - 15 * mm, 8 * mm, _plain_pdf(c.words.page.format(n=doc.page)))
        canvas.restoreState()

    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=landscape(A4), leftMargin=15 * mm, rightMargin=15 * mm,
                            topMargin=15 * mm, bottomMargin=15 * mm, title=_plain_pdf(c.title),
                            author=_plain_pdf(c.service), subject=_plain_pdf(c.intro[:200]), lang=c.lang)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return out.getvalue()


def _plain_pdf(text: str) -> str:
    return text.encode("cp1252", "replace").decode("cp1252")
