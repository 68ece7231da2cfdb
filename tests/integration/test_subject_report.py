"""The subject report for the person it is about, through the API (POST /api/v1/audit/subject-report with
``Accept: text/html``): after a real D&R-plan to a municipality with sections withheld, the Dutch document
names each withheld section with its recipient and reason and the plain legal basis, carries no code and no
BSN; English on ``Accept-Language: en``; an FG's report says it covers its own organisation only."""
import re

from tests.scenario import BSN, Chain

REPORT = "/api/v1/audit/subject-report"


async def html_report(client, org, **headers) -> str:
    r = await client.post(REPORT, json={"bsn": BSN}, headers=org.headers(Accept="text/html", **headers))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    return r


async def test_the_dutch_report_names_the_withheld_sections_and_the_plain_legal_basis(client, orgs, stay):
    chain = Chain(client, orgs)
    sent = (await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], purpose="aftercare")).json()
    assert {r["section"] for r in sent["deliveries"][0]["redactions"]} == {"behaviour", "restorative-work", "social-network"}
    await chain.read(orgs.amsterdam, sent["id"], "aftercare")

    r = await html_report(client, orgs.inspectorate)
    html = r.text
    assert r.headers["content-language"] == "nl" and html.startswith('<!doctype html>\n<html lang="nl">')
    assert "Wat er met uw gegevens is gebeurd" in html
    # who, what, with whom, why: in words
    assert "PI Vught" in html and "Gemeente Amsterdam (nazorg)" in html
    assert "heeft een bericht over u verstuurd" in html and "deels gedeeld" in html
    assert ">art. 18a lid 4 Pbw en art. 20d lid 2 Pm</td>" in html and "nazorg na vrijlating" in html
    assert "Zorg (op grond van art. 20d lid 3 Pm)" in html  # a section on a basis of its own
    # each withheld section, from whom, and why
    assert "‘Gedrag en motivatie’ (gedrag en detentieverloop) is niet gedeeld met Gemeente Amsterdam (nazorg)" in html
    assert "‘Herstel en slachtofferbewustzijn’ is niet gedeeld met Gemeente Amsterdam (nazorg)" in html
    assert "‘Sociaal netwerk’ (kinderen en gezin) is niet gedeeld met Gemeente Amsterdam (nazorg)" in html
    assert "PI Vught had dit onderdeel in het bericht aan Gemeente Amsterdam (nazorg) staan." in html
    assert "Toen Gemeente Amsterdam (nazorg) het bericht van PI Vught las, is dit onderdeel niet getoond." in html
    assert "niet nodig voor de wettelijke taak van Gemeente Amsterdam (nazorg)" in html
    assert "mag deze gegevens alleen krijgen met uw toestemming" in html
    # no code, no BSN, no organisation-only scope note for the inspectorate
    for code in ("pbw-18a", "pm-20d-2", "pm-20d-3", "allow-with-redaction", "withheld", "not-permitted",
                 "consent-required", "offence-related", "children-family", "restorative-work", "aftercare", "dr-plan/"):
        assert not re.search(rf"(?<![\w-]){re.escape(code)}(?![\w-])", html), code
    assert BSN not in html and "sub-" not in html
    assert "gaat over één organisatie" not in html
    # and the processings are those of the JSON report, this very look-up included
    report = (await client.post(REPORT, json={"bsn": BSN}, headers=orgs.inspectorate.headers())).json()
    assert html.count("<tr class=\"utrecht-table__row\" id=") == report["count"] - 1  # the JSON report's own look-up came after the HTML one
    assert "heeft het logboek met verwerkingen van uw gegevens bekeken" in html


async def test_the_report_in_english_on_accept_language(client, orgs, stay):
    await Chain(client, orgs).send(orgs.vught, "dr-plan", ["municipality:0363"], purpose="aftercare")
    r = await html_report(client, orgs.inspectorate, **{"Accept-Language": "en-GB,en;q=0.9,nl;q=0.5"})
    html = r.text
    assert r.headers["content-language"] == "en" and '<html lang="en">' in html
    assert "What happened to your personal data" in html and "Article 18a(4) Pbw with Article 20d(2) Pm" in html
    assert "‘Behaviour and motivation’ (behaviour and course of detention) was not shared with Gemeente Amsterdam (nazorg)" in html
    assert BSN not in html


async def test_an_fg_report_says_it_covers_its_own_organisation_only(client, orgs, stay):
    chain = Chain(client, orgs)
    await chain.send(orgs.vught, "dr-plan", ["municipality:0363"], purpose="aftercare")
    await chain.send(orgs.vught, "dr-plan", ["00000001002345678000"])  # to probation: not Amsterdam's processing
    html = (await html_report(client, orgs.fg_amsterdam)).text
    assert "Let op: dit overzicht gaat over één organisatie" in html
    assert "Dit overzicht is gemaakt door de functionaris voor gegevensbescherming (FG) van Gemeente Amsterdam (nazorg)." in html
    assert "Reclassering Nederland" not in html  # the probation delivery is outside the FG's view
    everything = (await html_report(client, orgs.inspectorate)).text
    assert "Reclassering Nederland" in everything and "gaat over één organisatie" not in everything


async def test_an_fg_report_names_its_organisation_even_without_records(client, orgs):
    html = (await html_report(client, orgs.fg_amsterdam)).text
    assert "Er zijn geen verwerkingen van gegevens over u gevonden." in html
    assert "functionaris voor gegevensbescherming (FG) van Gemeente Amsterdam (nazorg)" in html
