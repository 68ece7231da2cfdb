"""The audit pages need nothing from the internet: their CSS and scripts are the npm packages of
package.json, copied by `make assets` into gateway/pages/static/vendor (and committed); every word a
template asks for exists in Dutch and English; no template loads anything from elsewhere or runs inline script."""
import json
import re
from pathlib import Path

from gateway.pages.texts import LANGUAGES, TEXTS

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "gateway/pages/static/vendor"
TEMPLATES = ROOT / "gateway/pages/templates"
VENDORED = {
    "utrecht-components.css": ("@utrecht/component-library-css", "dist/index.css"),
    "utrecht-design-tokens.css": ("@utrecht/design-tokens", "dist/theme.css"),
    "htmx.min.js": ("htmx.org", "dist/htmx.min.js"),
    "chart.umd.min.js": ("chart.js", "dist/chart.umd.min.js"),
}


def test_the_vendored_assets_are_the_pinned_npm_packages_byte_for_byte():
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    for name, (package, path) in VENDORED.items():
        installed = ROOT / "node_modules" / package
        assert json.loads((installed / "package.json").read_text())["version"] == pinned[package], package
        assert (VENDOR / name).read_bytes() == (installed / path).read_bytes(), f"{name}: run `make assets`"
    assert {p.name for p in VENDOR.iterdir()} == set(VENDORED)


def test_every_text_a_template_asks_for_exists_in_both_languages():
    assert set(TEXTS) == set(LANGUAGES) and set(TEXTS["nl"]) == set(TEXTS["en"])
    asked = set()
    for template in TEMPLATES.glob("*.html"):
        asked |= set(re.findall(r"""t\(["']([a-z_-]+)["']\)""", template.read_text()))
    assert asked and asked <= set(TEXTS["nl"]), asked - set(TEXTS["nl"])


def test_no_template_loads_from_elsewhere_or_runs_inline_script():
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"""(src|href)=["'](https?:)?//""", text), template.name
        assert not re.search(r"<script(?![^>]*\b(src=|type=\"application/json\"))", text), template.name
        assert " style=" not in text and "<style" not in text and " on" + "click=" not in text, template.name


def test_every_field_of_an_audit_record_has_a_label_on_the_record_page_in_both_languages():
    from gateway.audit.record import AuditRecordView

    shown = {f.alias or name for name, f in AuditRecordView.model_fields.items()} - {"prevHash", "hash"}
    for lang in LANGUAGES:
        missing = {name for name in shown if f"field_{name}" not in TEXTS[lang]}
        assert not missing, (lang, missing)


def test_every_way_the_chain_can_break_is_said_in_both_languages():
    from gateway.audit.chain import ChainBreak

    for lang in LANGUAGES:
        missing = {code.value for code in ChainBreak if f"verify_reason_{code.value}" not in TEXTS[lang]}
        assert not missing, (lang, missing)
