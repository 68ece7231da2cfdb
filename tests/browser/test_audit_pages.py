"""An FG of one municipality, in Chromium: logs in through the demo issuer, searches, opens a record, runs
the chain verification, downloads an export and a subject report — and cannot reach another
municipality's records by editing a URL or a form field. axe-core finds nothing serious on any page."""
from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.browser.conftest import (
    examples,
    send,
    AMSTERDAM,
    AMSTERDAM_DETAINEE,
    FG_AMSTERDAM,
    INSPECTORATE,
    ROTTERDAM,
    ROTTERDAM_DETAINEE,
    screenshot,
    serious_violations,
)


def log_in(page, demo, oin: str = FG_AMSTERDAM, start: str = "/audit/") -> None:
    page.goto(demo.base + start)
    assert "/audit/login" in page.url, page.url  # no session: every page sends you to the login
    page.get_by_role("link", name="Inloggen bij de identiteitsdienst").click()
    assert "/audit/dev-issuer/authorize" in page.url
    assert page.get_by_role("heading", name="Ontwikkel-inlogdienst (alleen demo)").is_visible()
    page.locator(f"button[data-oin='{oin}']").click()
    page.wait_for_url(re.compile(r".*/audit/(?!login|dev-issuer|callback).*"))


def accessible(page, name: str) -> None:
    screenshot(page, name)
    assert serious_violations(page) == [], name


def rotterdam_records(demo) -> list[dict]:
    """What the inspectorate's API sees of Rotterdam's exchanges (the FG of Amsterdam must see none of it)."""
    answer = httpx.get(f"{demo.base}/api/v1/audit/records", params={"organisation": ROTTERDAM, "pageSize": 200},
                       headers=demo.headers(INSPECTORATE))
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def test_an_fg_searches_opens_verifies_exports_and_reports_on_their_own_municipality(demo, page):
    page.goto(demo.base + "/audit/login")
    accessible(page, "01-login")
    page.get_by_role("link", name="Inloggen bij de identiteitsdienst").click()
    accessible(page, "02-dev-issuer")
    page.locator(f"button[data-oin='{FG_AMSTERDAM}']").click()
    page.wait_for_url(demo.base + "/audit/")

    # overview: the charts and their tables
    assert page.get_by_role("heading", name="Overzicht", level=1).is_visible()
    assert page.get_by_text("FG Gemeente Amsterdam", exact=False).first.is_visible()
    page.wait_for_function("() => window.Chart && Object.keys(Chart.instances).length === 3")
    accessible(page, "03-overview")

    # search: exchanges of D&R-plans, via the form (htmx swaps the results in)
    page.get_by_role("link", name="Zoeken in het logboek").click()
    page.get_by_label("Berichtsoort").select_option("dr-plan")
    page.get_by_role("button", name="Zoeken").click()
    page.wait_for_url(re.compile(r".*messageType=dr-plan.*"))
    rows = page.locator("#results tbody tr")
    assert rows.count() > 0
    text = page.locator("#results").inner_text()
    assert "Rotterdam" not in text and "Gemeente Amsterdam" in text
    accessible(page, "04-search")

    # a record and its place in the chain
    first = rows.first.locator("a").first
    seq = first.inner_text()
    first.click()
    assert page.get_by_role("heading", name=f"Logregel {seq}").is_visible()
    assert re.search(r"[0-9a-f]{64}", page.locator("main").inner_text())
    accessible(page, "05-record")

    # export of the same search
    page.go_back()
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV (puntkomma, Nederlandse Excel)").click()
    body = Path(download.value.path()).read_text(encoding="utf-8")
    assert body.startswith("\ufeff")
    table = list(csv.DictReader(io.StringIO(body.removeprefix("\ufeff")), delimiter=";"))
    assert table and all(AMSTERDAM in (r["actorOin"], r["counterpartyOin"]) for r in table)
    assert all(ROTTERDAM not in (r["actorOin"], r["counterpartyOin"]) for r in table)

    # chain verification with its progress
    page.get_by_role("link", name="Keten controleren").click()
    accessible(page, "06-verify")
    page.get_by_role("button", name="Controle starten").click()
    result = page.locator("#verify-result")
    result.wait_for()
    assert "De keten is intact." in result.inner_text()
    accessible(page, "07-verify-result")

    # a subject's report: the BSN goes in a POST body, never a URL
    page.get_by_role("link", name="Inzage voor een persoon").click()
    page.get_by_label("BSN").fill(AMSTERDAM_DETAINEE["bsn"])
    page.get_by_role("button", name="Overzicht maken").click()
    assert AMSTERDAM_DETAINEE["bsn"] not in page.url
    heading = page.get_by_role("heading", name=re.compile(r"\d+ verwerkingen gevonden"))
    assert int(heading.inner_text().split()[0]) > 0
    # the report as the person will read it: limited to the FG's organisation, what was withheld from whom
    # and why, and the person's rights
    report = page.locator(".brb-report__document")
    assert report.get_by_role("heading", name="Let op: dit overzicht gaat over één organisatie").is_visible()
    assert report.get_by_role("heading", name="Wat niet is gedeeld, en waarom").is_visible()
    withheld = report.locator("article[id^='h']")
    assert withheld.count() > 0
    assert "Gemeente Amsterdam" in withheld.first.inner_text()
    assert report.get_by_role("heading", name="Uw rechten").is_visible()
    assert "Autoriteit Persoonsgegevens" in report.inner_text()
    assert "pm-20d-2" not in report.inner_text() and "allow-with-redaction" not in report.inner_text()
    accessible(page, "08-subject")
    with page.expect_download() as pdf:
        page.get_by_role("button", name="Download als PDF").click()
    assert Path(pdf.value.path()).read_bytes()[:5] == b"%PDF-"
    with page.expect_download() as js:
        page.get_by_role("button", name="Download als JSON").click()
    report = json.loads(Path(js.value.path()).read_text(encoding="utf-8"))
    assert AMSTERDAM_DETAINEE["bsn"] not in json.dumps(report)

    # English on request
    page.get_by_role("link", name="English").click()
    assert page.get_by_role("heading", name="Report for a person", level=1).is_visible()
    page.get_by_label("BSN").fill(AMSTERDAM_DETAINEE["bsn"])
    page.get_by_role("button", name="Make the report").click()
    assert page.locator(".brb-report__document").get_by_role("heading", name="Your rights").is_visible()
    accessible(page, "09-subject-en")


def test_the_fg_cannot_reach_another_municipalitys_records_by_editing_a_url_or_a_form_field(demo, page):
    theirs = rotterdam_records(demo)
    assert theirs, "the demo sent Rotterdam's exchanges"
    log_in(page, demo)

    # a Rotterdam record's own address: not found, like the API
    answer = page.goto(f"{demo.base}/audit/records/{theirs[0]['seq']}")
    assert answer.status == 404
    assert page.get_by_role("heading", name="Er ging iets mis").is_visible()
    accessible(page, "10-not-found")

    # the organisation and counterparty fields set to Rotterdam by hand: nothing of Rotterdam's comes back
    for field in ("organisation", "counterparty"):
        page.goto(f"{demo.base}/audit/records?{field}={ROTTERDAM}")
        assert page.locator("#results tbody tr").count() == 0
        assert "Geen verwerkingen gevonden" in page.locator("#results").inner_text()
    export = page.request.get(f"{demo.base}/audit/export?organisation={ROTTERDAM}&format=jsonl")
    assert export.status == 200 and export.text().strip() == ""

    # a BSN typed into the pseudonym field by mistake never reaches a URL: the browser refuses the form
    page.goto(f"{demo.base}/audit/records")
    page.get_by_label("Pseudoniem van de persoon").fill(AMSTERDAM_DETAINEE["bsn"])
    page.get_by_role("button", name="Zoeken").click()
    page.wait_for_timeout(500)
    assert AMSTERDAM_DETAINEE["bsn"] not in page.url
    assert page.evaluate("() => document.getElementById('f-subjectId').validity.patternMismatch")

    # Rotterdam's detainee looked up by BSN: the FG sees none of that person's processing
    page.goto(f"{demo.base}/audit/subject")
    page.get_by_label("BSN").fill(ROTTERDAM_DETAINEE["bsn"])
    page.get_by_role("button", name="Overzicht maken").click()
    assert page.get_by_role("heading", name="0 verwerkingen gevonden").is_visible()


def test_every_page_view_and_search_is_itself_in_the_audit_log_naming_the_officer(demo, page):
    log_in(page, demo, start="/audit/records?messageType=dr-plan")
    page.goto(f"{demo.base}/audit/verify")
    records = httpx.get(f"{demo.base}/api/v1/audit/records", params={"activity": "audit-query", "pageSize": 200,
                                                                     "organisation": FG_AMSTERDAM},
                        headers=demo.headers(INSPECTORATE)).json()["items"]
    mine = [r for r in records if r["actorOin"] == FG_AMSTERDAM and r["tokenId"] == f"oidc:demo-officer-{FG_AMSTERDAM}"]
    details = " | ".join(r["detail"] or "" for r in mine)
    assert "logged in to the audit pages" in details
    assert "records; own organisation; message_type=dr-plan" in details  # the search, with its filter
    assert "audit page: verify" in details


def test_without_a_session_every_page_redirects_to_login_and_a_forged_cookie_is_refused(demo, context, page):
    for path in ("/audit/", "/audit/records", "/audit/records/1", "/audit/subject", "/audit/verify", "/audit/export"):
        page.goto(demo.base + path)
        assert page.url.startswith(demo.base + "/audit/login?next="), path
    context.add_cookies([{"name": "brb_audit_session", "value": "eyJvZmZpY2VyIjogeyJvaW4iOiAiMDAwMDAwMDEwMDk5OTk5OTkwMDAifX0=.forged.sig",
                          "url": demo.base + "/audit/"}])
    page.goto(demo.base + "/audit/records")
    assert "/audit/login" in page.url


def test_a_form_without_its_csrf_token_is_refused(demo, page):
    log_in(page, demo)
    refused = page.request.post(f"{demo.base}/audit/verify", form={"fromSeq": "1"})
    assert refused.status == 403
    assert refused.json()["type"].endswith("/csrf-failed")
    wrong = page.request.post(f"{demo.base}/audit/subject", form={"bsn": AMSTERDAM_DETAINEE["bsn"], "csrf_token": "x" * 43})
    assert wrong.status == 403


@pytest.mark.parametrize("oin", [INSPECTORATE])
def test_the_inspectorate_sees_both_municipalities(demo, page, oin):
    log_in(page, demo, oin=oin, start="/audit/records?messageType=dr-plan")
    text = page.locator("#results").inner_text()
    assert "Rotterdam" in text and "Amsterdam" in text


def test_the_search_pages_through_every_record_the_fg_may_see_and_no_other(demo, page):
    """Ten per page, "Volgende pagina" swapped in by htmx with the address following: the pages together are
    exactly what the API gives the FG's organisation for the same filter, each record once."""
    for _ in range(2):  # two more D&R-plans to Amsterdam: five records each
        plan = examples("dr-plan/v2/valid-full.json")
        plan["subject"].update(AMSTERDAM_DETAINEE)
        send(demo, "dr-plan", 2, "municipality:0363", plan)
    expected = httpx.get(f"{demo.base}/api/v1/audit/records", params={"messageType": "dr-plan", "pageSize": 200},
                         headers=demo.headers(FG_AMSTERDAM))
    assert expected.status_code == 200, expected.text
    want = [r["seq"] for r in expected.json()["items"]]
    assert len(want) > 10, "the demo data gives the FG more than one page"
    log_in(page, demo, start="/audit/records?messageType=dr-plan&pageSize=10")
    assert page.get_by_label("Logregels per pagina").input_value() == "10"
    seen: list[int] = []
    while True:
        rows = page.locator("#results tbody tr")
        assert 0 < rows.count() <= 10
        seen += [int(rows.nth(i).locator("a").first.inner_text()) for i in range(rows.count())]
        more = page.get_by_role("link", name="Volgende pagina")
        if more.count() == 0:
            break
        before = page.url
        more.click()
        page.wait_for_function("before => location.href !== before", arg=before)
        assert "cursor=" in page.url and "pageSize=10" in page.url
    assert seen == want


def test_verify_names_the_first_broken_link_after_a_record_is_altered_in_the_database(demo, page):
    """Someone with access to the database edits one record the FG may see: the verification page says the chain
    is broken and links to that record. The demo's SQLite file is put back afterwards."""
    mine = httpx.get(f"{demo.base}/api/v1/audit/records", params={"messageType": "dr-plan", "pageSize": 5},
                     headers=demo.headers(FG_AMSTERDAM)).json()["items"]
    seq = mine[1]["seq"]
    database = sqlite3.connect(demo.cwd / ".var" / "brb.sqlite3")
    (original,) = database.execute("SELECT detail FROM audit_records WHERE seq = ?", (seq,)).fetchone()
    try:
        with database:
            database.execute("UPDATE audit_records SET detail = 'nothing withheld' WHERE seq = ?", (seq,))
        log_in(page, demo, start="/audit/verify")
        page.get_by_role("button", name="Controle starten").click()
        result = page.locator("#verify-result")
        result.wait_for()
        assert "De keten is verbroken." in result.inner_text()
        assert "er is een veld gewijzigd of de logregel is vervalst" in result.inner_text()  # the reason, in Dutch
        accessible(page, "11-verify-broken")
        result.get_by_role("link", name=str(seq)).click()
        assert page.get_by_role("heading", name=f"Logregel {seq}").is_visible()
        assert "nothing withheld" in page.locator("main").inner_text()  # the page shows what the database holds now
    finally:
        with database:
            database.execute("UPDATE audit_records SET detail = ? WHERE seq = ?", (original, seq))
        database.close()
    intact = httpx.get(f"{demo.base}/api/v1/audit/verify", headers=demo.headers(INSPECTORATE))
    assert intact.json()["intact"] is True, intact.text


def test_after_logout_a_copy_of_the_session_cookie_opens_nothing(demo, browser, page):
    log_in(page, demo)
    copied = page.context.cookies()
    assert any(c["name"] == "brb_audit_session" for c in copied)
    page.get_by_role("button", name="Uitloggen").click()
    page.wait_for_url(re.compile(r".*/audit/login.*"))
    other = browser.new_context()  # the copy, in another browser: the server ended the session, not only this tab
    try:
        other.add_cookies(copied)
        elsewhere = other.new_page()
        elsewhere.goto(demo.base + "/audit/records")
        assert "/audit/login" in elsewhere.url
    finally:
        other.close()
