"""The audit pages in a real browser: Playwright driving Debian's Chromium, launched by its executable path
(`make chromium` installs it; nothing is downloaded), against `brb demo` on loopback. A screenshot of each
page is kept in test-artefacts/pages/ (BRB_TEST_ARTEFACTS moves it) for a reviewer to look at."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.support.demo import ROOT, running_demo

CHROMIUM = os.environ.get("BRB_CHROMIUM", "/usr/bin/chromium")
ARTEFACTS = Path(os.environ.get("BRB_TEST_ARTEFACTS", ROOT / "test-artefacts")) / "pages"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PI_VUGHT = "00000001001234567000"
AMSTERDAM, ROTTERDAM = "00000001009990363000", "00000001009990599000"
FG_AMSTERDAM, INSPECTORATE = "00000001009990363900", "00000001009999999000"
AMSTERDAM_DETAINEE = {"bsn": "999990019", "skn": "12345678"}
ROTTERDAM_DETAINEE = {"bsn": "999990020", "skn": "12345679"}


def examples(name: str) -> dict:
    import json

    return json.loads((ROOT / "contracts" / "examples" / name).read_text())


def send(demo, kind: str, version: int, recipient: str, payload: dict) -> httpx.Response:
    sent = httpx.post(f"{demo.base}/api/v1/messages", headers=demo.headers(PI_VUGHT, **{"Idempotency-Key": uuid.uuid4().hex}),
                      json={"type": kind, "version": version, "purpose": "reintegration", "recipients": [recipient],
                            "payload": payload}, timeout=30)
    assert sent.status_code == 201, sent.text
    return sent


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo with two detainees: one returning to Amsterdam, one to Rotterdam, each with a detention notice
    and a D&R-plan (sections withheld from the municipality), sent by PI Vught."""
    with running_demo(tmp_path_factory.mktemp("pages-demo")) as running:
        for detainee, cbs in ((AMSTERDAM_DETAINEE, "0363"), (ROTTERDAM_DETAINEE, "0599")):
            notice = examples("detention-notice/valid-full.json")
            notice["subject"].update(detainee)
            notice["municipalityOfResidence"] = cbs
            send(running, "detention-notice", 1, f"municipality:{cbs}", notice)
            plan = examples("dr-plan/v2/valid-full.json")
            plan["subject"].update(detainee)
            send(running, "dr-plan", 2, f"municipality:{cbs}", plan)
        yield running


@pytest.fixture(scope="module")
def browser():
    """Playwright's sync API runs an event loop of its own while it is open: closed after the module, so the
    asyncio tests that run after it get theirs."""
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: run `make chromium` (Debian's package chromium)"
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(accept_downloads=True, locale="nl-NL", viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    p = context.new_page()
    p.set_default_timeout(15_000)
    yield p


def screenshot(page, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5_000, f"{name}: an empty screenshot"
    return path


def serious_violations(page) -> list[dict]:
    """axe-core's WCAG 2.1 A/AA findings of impact serious or critical, injected by the test (CSP-exempt)."""
    page.evaluate(AXE.read_text())
    found = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [v for v in found if v["impact"] in ("serious", "critical")]
