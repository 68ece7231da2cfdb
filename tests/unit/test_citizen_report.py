"""The subject report for the citizen (gateway/audit/citizen_report.py): every code the audit log writes has
plain words in Dutch and English, times are Dutch local time across the DST changes, withheld sections are
explained, an FG's report says it covers one organisation, and HTML, PDF and JSON carry the same content."""
from __future__ import annotations

import json
import re
import typing
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from consent import load
from consent.engine import Outcome, Withheld
from contracts.parties import EXCHANGE_KINDS, SYSTEM_OIN
from contracts.registry import MESSAGE_TYPES, MODELS, section_paths
from gateway.audit import citizen_report as cr
from gateway.audit.record import Activity, AuditRecordView
from gateway.audit.report import SubjectReport
from gateway.exchange.policy import DENY_PROBLEM
from gateway.statuses import Acknowledgement, DeadlineState

ROOT = Path(__file__).resolve().parents[2]
TEXTS = cr.texts()
CATALOGUE = load()
LANGS = ("nl", "en")

VUGHT, AMSTERDAM, ROTTERDAM = "00000001001234567000", "00000001009990363000", "00000001009990599000"
FG_AMSTERDAM = "00000001009990363900"
NAMES = {VUGHT: "PI Vught", AMSTERDAM: "Gemeente Amsterdam (nazorg)", ROTTERDAM: "Gemeente Rotterdam (nazorg)",
         FG_AMSTERDAM: "FG Gemeente Amsterdam"}
DR_PLAN = dict(purpose="aftercare", legal_basis="pm-20d-2", rule="dr-plan/dji-to-municipality", message_id="m-1")
AT = datetime(2026, 11, 23, 9, 14, tzinfo=timezone.utc)


def record(seq: int, activity: str, outcome: str, actor: str, counterparty: str | None = None, **fields) -> AuditRecordView:
    values = dict(seq=seq, id=f"rec-{seq}", trace_id="t-1", activity=activity, actor_oin=actor,
                  counterparty_oin=counterparty, subject_id="sub-" + "0" * 32, outcome=outcome, recorded_at=AT,
                  prev_hash="0" * 64, hash="1" * 64) | fields
    return AuditRecordView.model_validate({name: values.get(name) for name in AuditRecordView.model_fields})


def subject_report(*records: AuditRecordView, at: datetime = AT) -> SubjectReport:
    return SubjectReport(subject_id="sub-" + "0" * 32, generated_at=at, count=len(records), records=list(records))


def a_send_with_redactions() -> list[AuditRecordView]:
    """A dr-plan from PI Vught to Amsterdam, three sections withheld; Amsterdam reads it, one withheld again."""
    return [
        record(1, "send", "accepted", VUGHT, purpose="aftercare", message_id="m-1", detail="dr-plan v1 to 1 recipient(s)"),
        record(2, "deliver", "allow-with-redaction", VUGHT, AMSTERDAM,
               detail="sections: care=pm-20d-3, housing=pm-20d-2", **DR_PLAN),
        record(3, "redact", "withheld", VUGHT, AMSTERDAM, detail="section behaviour (offence-related): not-permitted", **DR_PLAN),
        record(4, "redact", "withheld", VUGHT, AMSTERDAM,
               detail="section social-network (children-family): consent-required", **DR_PLAN),
        record(5, "read", "allow-with-redaction", AMSTERDAM, VUGHT, detail="sections: housing=pm-20d-2", **DR_PLAN),
        record(6, "redact", "withheld", AMSTERDAM, VUGHT,
               detail="read: section social-network (children-family): consent-required", **DR_PLAN),
    ]


# --- the text table covers every code ------------------------------------------------------------------

def test_every_activity_has_a_dutch_and_an_english_text():
    for activity in Activity:
        assert TEXTS["activities"][activity.value]["nl"].strip(), activity
        assert activity.text.strip(), activity  # English: record.py's _ACTIVITY_TEXT
        for lang in LANGS:
            said = cr._Say(lang).activity(activity.value)
            assert said and said != activity.value
    assert set(TEXTS["activities"]) == {a.value for a in Activity}, "a text for an activity that does not exist"


def test_every_legal_basis_of_the_catalogue_has_a_citation_and_an_explanation_in_both_languages():
    assert set(CATALOGUE.legal_bases) == set(TEXTS["legal_bases"])
    doc = (ROOT / "docs" / "legal-basis.md").read_text()
    for basis in CATALOGUE.legal_bases:
        assert f"`{basis}`" in doc  # the same codes the generated page names
        for lang in LANGS:
            entry = TEXTS["legal_bases"][basis]
            assert entry["cite"][lang].strip() and entry["text"][lang].strip(), (basis, lang)
            if "-" in basis:  # a code such as pbw-18a never stands in for its words ("consent" is a word too)
                assert basis not in entry["cite"][lang] and basis not in entry["text"][lang]
    assert TEXTS["legal_bases"]["pm-20d-2"]["cite"]["nl"].startswith("art. 18a lid 4 Pbw")


@pytest.mark.parametrize("table", ["purposes", "categories"])
def test_every_purpose_and_category_of_the_catalogue_has_a_name_and_an_explanation_in_both_languages(table):
    codes = getattr(CATALOGUE, table)
    assert set(codes) == set(TEXTS[table])
    for code in codes:
        for lang in LANGS:
            assert TEXTS[table][code]["name"][lang].strip() and TEXTS[table][code]["text"][lang].strip(), (code, lang)


def test_every_deny_reason_and_withheld_reason_has_text_in_both_languages():
    reasons = set(DENY_PROBLEM) | {c.refusal for c in CATALOGUE.conditions.values()} | {"deny"}
    for reason in reasons:
        for lang in LANGS:
            assert TEXTS["deny_reasons"][reason][lang].strip(), (reason, lang)
    reasons = set(typing.get_args(typing.get_type_hints(Withheld)["reason"]))  # consent/engine.py
    assert reasons == {"consent-required", "not-permitted"}
    for reason in reasons | {"other"}:
        for lang in LANGS:
            assert "{recipient}" in TEXTS["withheld_reasons"][reason][lang], (reason, lang)


def test_every_message_type_and_section_of_the_contracts_has_text_in_both_languages():
    for message_type in MESSAGE_TYPES:
        for lang in LANGS:
            assert TEXTS["message_types"][message_type][lang].strip(), (message_type, lang)
    sections = {path[-1] for model in MODELS for path in section_paths(model)}
    for section in sections:
        for lang in LANGS:
            assert TEXTS["sections"][section][lang].strip(), (section, lang)
    assert set(TEXTS["holders"]) == set(EXCHANGE_KINDS)


def _written_outcomes() -> set[tuple[str, str]]:
    """Every (activity, outcome) the gateway writes: the string literals of each ``uow.audit(`` call, and
    the values behind the expressions that are not literals."""
    dynamic = {
        "decision.deny_reason or \"deny\"": set(DENY_PROBLEM) | {c.refusal for c in CATALOGUE.conditions.values()} | {"deny"},
        "decision.outcome": set(typing.get_args(Outcome)) - {"deny"},  # a denied decision is a deny record
        "said.value": {a.value for a in Acknowledgement},
        "OVERDUE": {DeadlineState.OVERDUE.value},
        # gateway/triage/record.py: ``kind: str  # established | outcome | new-round | decided``
        "c.kind": set(re.search(r"kind: str\s+#\s*(.*)", (ROOT / "gateway/triage/record.py").read_text())[1].split(" | ")),
    }
    variables = {"activity": {Activity.AUDIT_QUERY.value, Activity.EXPORT.value}}  # _audit_the_query's callers
    found: set[tuple[str, str]] = set()
    for path in sorted((ROOT / "gateway").rglob("*.py")):
        for m in re.finditer(r"uow\.audit\(\s*([\w.]+)\s*,\s*([^,]+?)\s*,", path.read_text()):
            first, second = m[1], m[2]
            activities = {Activity[first.split(".", 1)[1]].value} if first.startswith("Activity.") else variables[first]
            if second in dynamic:
                values = dynamic[second]
            else:
                values = set(re.findall(r'"([^"]*)"', second))
                assert values, f"{path.relative_to(ROOT)}: outcome {second!r} is neither a literal nor known to this test"
            found |= {(a, v) for a in activities for v in values}
    return found


def test_every_outcome_the_gateway_writes_has_plain_words_in_both_languages():
    written = _written_outcomes()
    assert ("deliver", "allow-with-redaction") in written and ("redact", "withheld") in written
    assert ("triage", "new-round") in written and ("acknowledge", "rejected") in written
    for activity, outcome in sorted(written):
        for lang in LANGS:
            said = cr._Say(lang).outcome(activity, outcome)
            entry = TEXTS["outcomes"].get(activity, {}).get(outcome) or TEXTS["outcomes"]["any"].get(outcome)
            assert entry or activity == "deny", f"no words for {activity}/{outcome}"
            assert said.strip(), (activity, outcome, lang)
            if lang == "nl":
                assert said != outcome, (activity, outcome)
    nl = cr._Say("nl")
    assert (nl.outcome("deliver", "allow"), nl.outcome("deliver", "allow-with-redaction")) == ("gedeeld", "deels gedeeld")
    assert nl.outcome("deny", "recipient-not-competent") == "geweigerd"


# --- times ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("utc", "nl", "iso"), [
    (datetime(2026, 3, 29, 0, 30, tzinfo=timezone.utc), "29 maart 2026, 01:30", "2026-03-29T01:30:00+01:00"),
    (datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc), "29 maart 2026, 03:30", "2026-03-29T03:30:00+02:00"),
    (datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc), "25 oktober 2026, 02:30 (zomertijd)", "2026-10-25T02:30:00+02:00"),
    (datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc), "25 oktober 2026, 02:30 (wintertijd)", "2026-10-25T02:30:00+01:00"),
    (datetime(2026, 10, 25, 2, 30, tzinfo=timezone.utc), "25 oktober 2026, 03:30", "2026-10-25T03:30:00+01:00"),
    (datetime(2026, 7, 1, 22, 5, tzinfo=timezone.utc), "2 juli 2026, 00:05", "2026-07-02T00:05:00+02:00"),
])
def test_times_are_shown_in_dutch_local_time_across_the_dst_changes(utc, nl, iso):
    c = cr.build(subject_report(record(1, "send", "accepted", VUGHT, recorded_at=utc), at=utc), NAMES)
    row = c.processings.rows[0]
    assert (row.when, row.when_iso) == (nl, iso)
    assert c.generated == f"Dit overzicht is gemaakt op {nl}." and c.generated_at == iso
    html = cr.render_html(c)
    assert f'<time datetime="{iso}">{nl}</time>' in html and "UTC" not in html
    assert "Alle tijden zijn Nederlandse tijd." in html


def test_a_naive_time_is_read_as_utc_and_another_zone_is_named():
    c = cr.build(subject_report(record(1, "send", "accepted", VUGHT, recorded_at=datetime(2026, 1, 5, 12, 0))), NAMES,
                 lang="en", now_tz="Europe/London")
    assert c.processings.rows[0].when == "5 January 2026, 12:00" and "Europe/London" in c.times


# --- the document ---------------------------------------------------------------------------------------

def every_kind_of_record() -> list[AuditRecordView]:
    """One record of every activity and outcome the gateway writes, on every legal basis and purpose."""
    records = a_send_with_redactions()
    seq = len(records)
    bases, purposes = list(CATALOGUE.legal_bases), list(CATALOGUE.purposes)
    for i, (activity, outcome) in enumerate(sorted(_written_outcomes())):
        seq += 1
        records.append(record(seq, activity, outcome, VUGHT, AMSTERDAM, purpose=purposes[i % len(purposes)],
                              legal_basis=bases[i % len(bases)], rule="risk-information/dji-to-probation"))
    sections = sorted({(path[-1], c) for model in MODELS for path, c in section_paths(model).items()})
    for section, category in sections:
        seq += 1
        records.append(record(seq, "redact", "withheld", VUGHT, AMSTERDAM, detail=f"section {section} ({category}): not-permitted",
                              **DR_PLAN))
        seq += 1
        records.append(record(seq, "disclose", "consent", AMSTERDAM, VUGHT, legal_basis="consent", purpose="aftercare",
                              detail=f"section {section} ({category}) opened by consent c-1"))
    seq += 1
    records.append(record(seq, "purge", "purged", SYSTEM_OIN, AMSTERDAM, detail="retention for municipality"))
    return records


CODES = sorted((
    {a.value for a in Activity} | set(CATALOGUE.legal_bases) | set(CATALOGUE.purposes) | set(CATALOGUE.categories)
    | {o for _, o in _written_outcomes()} | set(TEXTS["sections"]) | set(MESSAGE_TYPES) | {"not-permitted"}
) - {"triage", "detail"})  # words that are Dutch too (SOM-triage, details) are no codes here


def test_the_dutch_html_says_every_code_in_words():
    c = cr.build(subject_report(*every_kind_of_record()), NAMES)
    html = cr.render_html(c)
    left = [code for code in CODES if re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", html)]
    assert not left, f"codes in the Dutch report: {left}"
    assert {"pbw-18a", "allow-with-redaction", "pm-20d-2"} <= set(CODES)
    for basis in CATALOGUE.legal_bases:
        assert TEXTS["legal_bases"][basis]["cite"]["nl"] in html
    assert "art. 18a lid 4 Pbw en art. 20d lid 2 Pm" in html and "deels gedeeld" in html and "geweigerd" in html


def test_the_english_html_says_every_code_in_words_too():
    html = cr.render_html(cr.build(subject_report(*every_kind_of_record()), NAMES, lang="en"))
    hyphenated = [code for code in CODES if "-" in code and re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", html)]
    assert not hyphenated, hyphenated
    assert '<html lang="en">' in html and "What happened to your personal data" in html and "partly shared" in html


def test_withheld_sections_are_named_with_the_recipient_and_why():
    c = cr.build(subject_report(*a_send_with_redactions()), NAMES)
    held = {(w.seq, w.summary): w for w in c.withheld.items}
    assert [s for _, s in held] == [
        "‘Gedrag en motivatie’ (gedrag en detentieverloop) is niet gedeeld met Gemeente Amsterdam (nazorg)",
        "‘Sociaal netwerk’ (kinderen en gezin) is niet gedeeld met Gemeente Amsterdam (nazorg)",
        "‘Sociaal netwerk’ (kinderen en gezin) is niet gedeeld met Gemeente Amsterdam (nazorg)",
    ]
    behaviour, network_on_send, network_on_read = c.withheld.items
    # not permitted: the recipient has no need for it and consent cannot open it
    assert "niet nodig voor de wettelijke taak van Gemeente Amsterdam (nazorg)" in behaviour.why
    assert "ook niet met uw toestemming" in behaviour.why
    # consent required: the recipient had no consent
    assert "alleen krijgen met uw toestemming" in network_on_send.why and "geen geldige toestemming" in network_on_send.why
    # on sending the sender had included it; on reading the recipient was not shown it
    assert network_on_send.how.startswith("PI Vught had dit onderdeel in het bericht aan Gemeente Amsterdam (nazorg) staan.")
    assert network_on_read.how == "Toen Gemeente Amsterdam (nazorg) het bericht van PI Vught las, is dit onderdeel niet getoond."
    assert (network_on_read.recipient, network_on_read.sender) == ("Gemeente Amsterdam (nazorg)", "PI Vught")
    rows = {r.seq: r for r in c.processings.rows}
    assert rows[3].withheld == ["Gedrag en motivatie"] and rows[3].outcome == "niet gedeeld"
    assert rows[2].shared == ["Zorg (op grond van art. 20d lid 3 Pm)", "Wonen"] and rows[2].outcome == "deels gedeeld"
    assert rows[2].message == "D&R-plan (detentie- en re-integratieplan)" and rows[2].categories == ["basisvoorwaarden"]
    html = cr.render_html(c)
    assert "‘Gedrag en motivatie’ (gedrag en detentieverloop) is niet gedeeld met Gemeente Amsterdam (nazorg)" in html
    assert 'href="#h3"' in html and '<article id="h3">' in html
    en = cr.build(subject_report(*a_send_with_redactions()), NAMES, lang="en")
    assert en.withheld.items[0].summary == \
        "‘Behaviour and motivation’ (behaviour and course of detention) was not shared with Gemeente Amsterdam (nazorg)"


def test_without_withholdings_the_report_says_nothing_was_withheld():
    c = cr.build(subject_report(record(1, "send", "accepted", VUGHT)), NAMES)
    assert c.withheld.items == [] and c.withheld.empty == "Er is geen informatie over u achtergehouden."


def test_a_refusal_says_why():
    c = cr.build(subject_report(record(1, "deny", "recipient-not-competent", VUGHT, ROTTERDAM, detail="dr-plan: …",
                                       **DR_PLAN)), NAMES)
    row = c.processings.rows[0]
    assert row.outcome == "geweigerd" and "niet de gemeente waar u woonde" in row.reason
    assert row.counterparty == "Gemeente Rotterdam (nazorg)" and row.message.startswith("D&R-plan")


def test_the_fg_scope_note_is_there_only_with_a_scope():
    records = a_send_with_redactions()
    scoped = cr.build(subject_report(*records), NAMES, scope_oin=AMSTERDAM)
    assert scoped.scope is not None
    assert "alleen over wat Gemeente Amsterdam (nazorg) met uw gegevens deed" in scoped.scope.text
    assert "functionaris voor gegevensbescherming (FG) van Gemeente Amsterdam (nazorg)" in scoped.contact.items[0]
    html = cr.render_html(scoped)
    assert scoped.scope.heading in html and 'role="note"' in html
    named = cr.build(subject_report(*records), NAMES, scope_oin=AMSTERDAM, scope_name="Gemeente Amsterdam")
    assert "alleen over wat Gemeente Amsterdam met" in named.scope.text
    whole = cr.build(subject_report(*records), NAMES)
    assert whole.scope is None and "gaat over één organisatie" not in cr.render_html(whole)
    assert cr.render_json(whole)["scope"] is None


def test_organisations_unknown_by_name_and_the_gateway_itself_are_said_in_words():
    c = cr.build(subject_report(record(1, "purge", "purged", SYSTEM_OIN, "00000001000000000042")), {})
    row = c.processings.rows[0]
    assert row.organisation == "Berichtenbox Re-integratie (automatisch)"
    assert row.counterparty == "organisatie 00000001000000000042"
    assert row.outcome == "verwijderd, omdat de bewaartermijn voorbij was"


HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def test_the_html_escapes_a_hostile_organisation_name():
    names = NAMES | {VUGHT: HOSTILE}
    html = cr.render_html(cr.build(subject_report(*a_send_with_redactions()), names, scope_oin=VUGHT))
    assert "<script>" not in html and "<img" not in html and HOSTILE not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in html


def test_the_html_is_a_complete_accessible_document_without_external_resources():
    html = cr.render_html(cr.build(subject_report(*a_send_with_redactions()), NAMES))
    assert html.startswith("<!doctype html>\n<html lang=\"nl\">")
    assert '<meta charset="utf-8">' in html and "<title>Wat er met uw gegevens is gebeurd — Berichtenbox Re-integratie</title>" in html
    assert html.count("<h1") == 1 and "<main>" in html and "<caption" in html
    assert html.count('scope="col"') == 8 and html.count('scope="row"') == 6
    assert not re.search(r"<(link|script|img|iframe)\b|\bsrc=|@import|url\(|https?://", html)
    assert html.rstrip().endswith("</html>")
    for heading in ("Verwerkingen", "Wat niet is gedeeld, en waarom", "Waarom dit mocht: de wettelijke grondslagen",
                    "Hoe lang uw gegevens worden bewaard", "Uw rechten", "Vragen of contact"):
        assert f">{heading}</h2>" in html


def test_the_rights_and_contact_paragraphs():
    c = cr.build(subject_report(*a_send_with_redactions()), NAMES)
    rights = " ".join(c.rights.items)
    for words in ("Verbetering", "Bezwaar", "Autoriteit Persoonsgegevens", "Toestemming intrekken", "Wjsg"):
        assert words in rights
    assert c.contact.items == [
        "Vragen over dit overzicht? Neem contact op met de organisatie die het u gaf.",
        "Vragen over wat een organisatie met uw gegevens deed? Neem contact op met de functionaris voor "
        "gegevensbescherming (FG) van die organisatie: PI Vught en Gemeente Amsterdam (nazorg).",
    ]
    en = " ".join(cr.build(subject_report(), NAMES, lang="en").rights.items)
    assert "Rectification" in en and "Objection" in en and "Dutch Data Protection Authority" in en


def test_retention_follows_the_settings():
    default = cr.build(subject_report(), NAMES)
    assert "Wat de gemeente over u kreeg: tot zes maanden na de datum van uw vrijlating. Is die datum niet bekend, " \
           "dan tot een jaar nadat het bericht is bezorgd." in default.retention.items
    assert "Wat de gevangenis over u kreeg of verstuurde: tien jaar." in default.retention.items
    settings = SimpleNamespace(retention_after_release_days={"municipality": 90, "mayor": 45},
                               retention_without_release_days={"municipality": 730},
                               sender_retention_days={"dji": 3650, "probation": 1825, "municipality": 30, "mayor": 400})
    items = cr.build(subject_report(), NAMES, settings=settings).retention.items
    assert "Wat de gemeente over u kreeg: tot drie maanden na de datum van uw vrijlating. Is die datum niet bekend, " \
           "dan tot twee jaar nadat het bericht is bezorgd." in items
    assert "Wat de burgemeester over u kreeg: tot 45 dagen na de datum van uw vrijlating. Is die datum niet bekend, " \
           "dan tot een jaar nadat het bericht is bezorgd." in items
    assert "Wat de reclassering over u kreeg of verstuurde: vijf jaar." in items
    assert "Wat de gemeente zelf over u verstuurde: een maand." in items
    assert "Wat de burgemeester zelf over u verstuurde: 400 dagen." in items


def test_an_empty_report_says_nothing_was_found():
    c = cr.build(SubjectReport(subject_id=None, generated_at=AT, count=0, records=[]), NAMES)
    assert c.count == 0 and c.processings.empty == "Er zijn geen verwerkingen van gegevens over u gevonden."
    html = cr.render_html(c)
    assert "<table>" not in html and c.processings.empty in html
    assert cr.render_pdf(c).startswith(b"%PDF")


def test_an_unknown_language_is_refused():
    with pytest.raises(ValueError):
        cr.build(subject_report(), NAMES, lang="de")


@pytest.mark.parametrize(("header", "lang"), [
    (None, "nl"), ("", "nl"), ("nl-NL,nl;q=0.9", "nl"), ("en", "en"), ("en-GB,en;q=0.9,nl;q=0.8", "en"),
    ("nl;q=0.9,en;q=0.5", "nl"), ("de-DE,de;q=0.9,en;q=0.8", "en"), ("de", "nl"), ("fr;q=1,en;q=bad", "nl"),
    ("*", "nl"), ("EN-us", "en"),
])
def test_the_language_from_accept_language(header, lang):
    assert cr.language_from(header) == lang


# --- PDF and JSON ----------------------------------------------------------------------------------------

def pdf_text(pdf: bytes) -> str:
    """The text of a PDF: with pypdf when installed, else the literal strings of an uncompressed one."""
    try:
        import pypdf
    except ImportError:
        def unescape(s: bytes) -> str:
            s = re.sub(rb"\\([0-7]{1,3})", lambda m: bytes([int(m[1], 8)]), s)
            s = re.sub(rb"\\(.)", rb"\1", s)
            return s.decode("cp1252")

        # the strings shown (Tj); a line operator (T*, Td, ET) between two of them is a space
        text = ""
        for m in re.finditer(rb"\(((?:[^()\\]|\\.)*)\)\s*Tj|\bT\*|\bTd\b|\bET\b", pdf):
            text += unescape(m[1]) if m[1] is not None else " "
        return re.sub(r" +", " ", text)
    import io

    return " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


@pytest.fixture
def uncompressed_pdf(monkeypatch):
    from reportlab import rl_config

    monkeypatch.setattr(rl_config, "pageCompression", 0)
    monkeypatch.setattr(rl_config, "invariant", 1)


def test_the_pdf_carries_the_same_content(uncompressed_pdf):
    c = cr.build(subject_report(*a_send_with_redactions()), NAMES, scope_oin=AMSTERDAM)
    pdf = cr.render_pdf(c)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    text = pdf_text(pdf)
    for words in ("Wat er met uw gegevens is gebeurd", "PI Vught", "Gemeente Amsterdam (nazorg)", "deels gedeeld",
                  "Gedrag en motivatie", "art. 18a lid 4 Pbw", "Uw rechten", "Autoriteit Persoonsgegevens",
                  "Let op: dit overzicht gaat over", "Pagina 1"):
        assert words in text, words
    assert cr.render_pdf(c) == pdf  # invariant: the same report, the same bytes


def test_the_pdf_takes_dutch_characters_and_anything_else_without_crashing(uncompressed_pdf):
    names = NAMES | {VUGHT: "PI Vught — ’s-Hertogenbosch, coöperatie ë é ≈ 😀 " + HOSTILE + " (a) \\ b"}
    pdf = cr.render_pdf(cr.build(subject_report(*a_send_with_redactions()), names))
    text = pdf_text(pdf)
    assert "PI Vught — ’s-Hertogenbosch, coöperatie ë é" in text  # WinAnsi carries these
    assert '<script>alert("x")</script>' in text  # shown as text, not taken for markup
    assert "😀" not in text and "≈" not in text  # no glyph in the built-in fonts: a question mark instead
    pdf_en = cr.render_pdf(cr.build(subject_report(*a_send_with_redactions()), names, lang="en"))
    assert "What happened to your personal data" in pdf_text(pdf_en)


def _keys(value, path="") -> list[str]:
    if isinstance(value, dict):
        return [k for key, v in value.items() for k in [f"{path}/{key}", *_keys(v, f"{path}/{key}")]]
    if isinstance(value, list):
        return [k for i, v in enumerate(value) for k in _keys(v, f"{path}/{i}")]
    return []


def test_the_json_is_camel_case_and_carries_the_same_content():
    c = cr.build(subject_report(*a_send_with_redactions()), NAMES, scope_oin=AMSTERDAM)
    data = cr.render_json(c)
    assert json.loads(json.dumps(data)) == data
    bad = [k for k in _keys(data) if not re.fullmatch(r"[a-z][a-zA-Z0-9]*", k.rsplit("/", 1)[1])]
    assert not bad, bad
    assert {"generatedAt", "countText", "legalBases", "processings", "withheld", "scope"} <= set(data)
    row = data["processings"]["rows"][1]
    assert {"whenIso", "legalBasis", "counterparty"} <= set(row) and row["legalBasis"] == "art. 18a lid 4 Pbw en art. 20d lid 2 Pm"
    assert data["processings"]["columns"]["withWhom"] == "Met wie"
    assert len(data["processings"]["rows"]) == c.count == 6 and len(data["withheld"]["items"]) == 3
    assert cr.CitizenReport.model_validate(data) == c
