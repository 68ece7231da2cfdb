"""Render ``docs/legal-basis.md`` from the policy catalogue: one row per (message, from, to) with the
article and lid, for a privacy officer to review without reading code. ``python -m consent.legal_basis``
writes it; a test keeps the committed file equal to the catalogue."""
from __future__ import annotations

import sys
from pathlib import Path

from consent.catalogue import Catalogue, Rule, load

DOC = Path(__file__).resolve().parents[1] / "docs" / "legal-basis.md"


def _article(catalogue: Catalogue, basis: str) -> str:
    """The citation part of a basis text ("Art. 20d lid 3 Pm"), before its colon."""
    return catalogue.legal_bases[basis].split(":", 1)[0]


def _sections(catalogue: Catalogue, rule: Rule) -> str:
    parts = []
    for category, treatment in rule.sections.items():
        if treatment.kind == "pass":
            basis = treatment.basis or rule.basis
            parts.append(f"{category}: passes (`{basis}`)" if basis != rule.basis else f"{category}: passes")
        elif treatment.kind == "consent":
            parts.append(f"{category}: only with consent")
        else:
            parts.append(f"{category}: **never**")
    for section, basis in rule.section_basis.items():
        parts.append(f"section `{section}` on `{basis}`")
    return "; ".join(parts) or "—"


def _basis(catalogue: Catalogue, rule: Rule) -> str:
    text = f"`{rule.basis}` ({_article(catalogue, rule.basis)})"
    for condition, basis in rule.basis_when.items():
        text += f"; with {condition}: `{basis}` ({_article(catalogue, basis)})"
    return text


def render(catalogue: Catalogue) -> str:
    out = [
        "# Legal basis per exchange",
        "",
        f"Generated from `consent/catalogue.yaml` (version {catalogue.version}) by `python -m consent.legal_basis`;",
        "a test keeps this page equal to the catalogue the gateway enforces. Anything not listed is refused",
        "(`exchange-not-allowed`). Every decision names, per released section, the basis that let it through,",
        "and the audit record carries it (`docs/audit-log.md`).",
        "",
        "## Legal bases",
        "",
        "| basis | text |",
        "|---|---|",
        *[f"| `{name}` | {text} |" for name, text in catalogue.legal_bases.items()],
        "",
        "## Conditions",
        "",
        "| condition | refused as | text |",
        "|---|---|---|",
        *[f"| `{c.name}` | `{c.refusal}` | {c.text} |" for c in catalogue.conditions.values()],
        "",
        "## Consent",
        "",
        *[f"- the {giver.replace('-', ' ')} may consent to: "
          + ("every category" if scope is None else ", ".join(f"`{c}`" for c in sorted(scope)))
          for giver, scope in catalogue.consent_givers.items()],
        "- consent is **no basis** for: " + ", ".join(f"`{c}`" for c in sorted(catalogue.consent_is_no_basis_for)),
        "",
        "## Exchanges",
        "",
        "| message | from | to | purposes | basis | requires | sections | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rule in sorted(catalogue.rules, key=lambda r: (r.message, r.sender_kind, r.recipient_kind)):
        out.append(
            f"| `{rule.message}` | {rule.sender_kind} | {rule.recipient_kind} | {', '.join(sorted(rule.purposes))} "
            f"| {_basis(catalogue, rule)} | {', '.join(f'`{c}`' for c in rule.requires) or '—'} "
            f"| {_sections(catalogue, rule)} | {rule.note or ''} |"
        )
    out += ["", "## Categories", "", "| category | what it holds |", "|---|---|",
            *[f"| `{name}` | {text} |" for name, text in catalogue.categories.items()], ""]
    return "\n".join(out)


if __name__ == "__main__":
    DOC.write_text(render(load()), encoding="utf-8")
    print(DOC, file=sys.stderr)
