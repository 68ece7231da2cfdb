"""Subject pseudonyms: a keyed HMAC of an identifier. Only the pseudonym leaves the payload."""
from __future__ import annotations

import hashlib
import hmac


class Pseudonymizer:
    def __init__(self, key: bytes):
        self._key = key

    def identifier_hash(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def subject_id(self, kind: str, value: str) -> str:
        """The pseudonym a new subject gets: 32 hex chars derived from its first identifier."""
        return "sub-" + hmac.new(self._key, f"subject|{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]
