"""Docs that users rely on stay in step with the code."""
import re
from pathlib import Path

from gateway.outbox.events import EVENT_TYPES
from gateway.problems import PROBLEM_TYPES

ROOT = Path(__file__).resolve().parents[2]


def test_every_problem_type_is_in_the_catalogue_with_its_status():
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (\d{3}) \|", (ROOT / "docs/problems.md").read_text(), re.M))
    assert rows == {slug: str(t.status) for slug, t in PROBLEM_TYPES.items()}


def test_every_event_type_is_documented():
    types = (ROOT / "docs/events.md").read_text().split("## Types", 1)[1].split("## Topics", 1)[0]
    documented = set(re.findall(r"^\| `([a-z]+\.[a-z]+)` \|", types, re.M))
    assert documented == set(EVENT_TYPES)


def test_the_vendored_spectral_ruleset_equals_the_shared_one_when_present():
    shared = ROOT.parent / "shared" / "adr" / "spectral.yml"
    vendored = (ROOT / ".spectral.yaml").read_text()
    assert "nlgov:problem-schema-members" in vendored
    if shared.exists():
        assert vendored == shared.read_text()


def test_readme_quick_start_has_exactly_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_glossary_explains_the_dutch_terms_of_art():
    glossary = (ROOT / "docs/glossary.md").read_text()
    for term in ("D&R-plan", "basisvoorwaarden", "nazorg", "SKN", "OIN", "CBS code", "burgemeester"):
        assert f"**{term}**" in glossary, term


def test_the_legal_basis_page_equals_the_catalogue_the_gateway_enforces():
    from consent import load
    from consent.legal_basis import DOC, render

    assert DOC.read_text(encoding="utf-8") == render(load()), "run `make schemas` (python -m consent.legal_basis)"
    for basis in ("pbw-18a", "pm-20d-2", "pm-20d-3", "pm-20d-4", "pbw-18b", "consent"):
        assert f"`{basis}`" in DOC.read_text(encoding="utf-8")
