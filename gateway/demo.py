"""Demo organisations, keys and secrets for the embedded local setup (``brb demo``).

Everything lands under ``.var/`` (git-ignored): the SQLite database, generated secrets, and each demo
organisation's PRIVATE key, so ``brb token`` can act as that organisation. Never for production."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from gateway.auth.mint import new_key_pair
from gateway.crypto import KeyRing

VAR = Path(".var")
KEYS = VAR / "demo-keys"
SECRETS = VAR / "demo-secrets.json"
CHECKPOINTS = VAR / "audit-checkpoints.jsonl"  # production: a volume the database operator cannot write

# OINs are fictitious (20 digits, "00000001" + 9 + "000" style); CBS codes are the real ones.
DEMO_ORGANISATIONS = [
    {"oin": "00000001001234567000", "name": "PI Vught", "kind": "dji"},
    {"oin": "00000001001234568000", "name": "PI Zwolle", "kind": "dji"},
    {"oin": "00000001002345678000", "name": "Reclassering Nederland", "kind": "probation"},
    {"oin": "00000001009990363000", "name": "Gemeente Amsterdam (nazorg)", "kind": "municipality", "cbsCode": "0363"},
    {"oin": "00000001009990599000", "name": "Gemeente Rotterdam (nazorg)", "kind": "municipality", "cbsCode": "0599"},
    {"oin": "00000001009990363100", "name": "Burgemeester van Amsterdam", "kind": "mayor", "cbsCode": "0363"},
    {"oin": "00000001009990599100", "name": "Burgemeester van Rotterdam", "kind": "mayor", "cbsCode": "0599"},
    {"oin": "00000001009990363900", "name": "FG Gemeente Amsterdam", "kind": "auditor", "parentOin": "00000001009990363000"},
    {"oin": "00000001009999999000", "name": "Inspectie Justitie en Veiligheid", "kind": "inspectorate"},
    {"oin": "00000001000000001000", "name": "Beheer Berichtenbox Re-integratie", "kind": "operator"},
]

def _receipt_signing_key() -> str:
    """The gateway's receipt key (gateway/receipts.py): a private EC P-256 JWK, as JSON."""
    return json.dumps(new_key_pair(kid="brb-receipts-demo-1")[0])


# secrets added after the first demos: generated into an existing .var/demo-secrets.json that lacks them
ADDED_LATER = {
    "BRB_SESSION_SECRET": lambda: secrets.token_urlsafe(32),  # signs the audit pages' session cookie
    "BRB_RECEIPT_SIGNING_KEY": _receipt_signing_key,  # signs the gateway's receipts
}


def kept_secrets() -> dict[str, str]:
    """The demo's secrets, generated once and kept in .var/demo-secrets.json; one made by an older version
    gets what it lacks (``ADDED_LATER``) added."""
    if SECRETS.exists():
        values = json.loads(SECRETS.read_text())
        lacking = {name: make() for name, make in ADDED_LATER.items() if name not in values}
        if not lacking:
            return values
        values.update(lacking)
    else:
        VAR.mkdir(exist_ok=True)
        values = {
            "BRB_PSEUDONYM_KEY": secrets.token_urlsafe(32),
            "BRB_ENCRYPTION_KEYS": KeyRing.new_key_spec("demo-1"),
            "BRB_AUDIT_CHAIN_KEY": secrets.token_urlsafe(32),
        } | {name: make() for name, make in ADDED_LATER.items()}
    SECRETS.write_text(json.dumps(values, indent=2))
    SECRETS.chmod(0o600)
    return values


def demo_secrets() -> dict[str, str]:
    """The demo's secrets (``kept_secrets``), and where the demo keeps the audit chain's signed checkpoints
    (.var/audit-checkpoints.jsonl unless BRB_AUDIT_CHECKPOINT_FILE says)."""
    checkpoints = {"BRB_AUDIT_CHECKPOINT_FILE": os.environ.get("BRB_AUDIT_CHECKPOINT_FILE", str(CHECKPOINTS))}
    return {**kept_secrets(), **checkpoints}


def key_file(oin: str) -> Path:
    return KEYS / f"{oin}.jwk.json"


def demo_key(oin: str) -> tuple[dict, dict]:
    """(private, public) JWK of a demo organisation, generated on first use."""
    path = key_file(oin)
    if path.exists():
        private = json.loads(path.read_text())
        public = {k: v for k, v in private.items() if k != "d"}
        return private, public
    KEYS.mkdir(parents=True, exist_ok=True)
    private, public = new_key_pair(kid=f"{oin[-6:]}-demo-1")
    path.write_text(json.dumps(private, indent=2))
    path.chmod(0o600)
    return private, public
