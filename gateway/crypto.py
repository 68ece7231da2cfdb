"""Envelope encryption of payloads at rest.

Each payload gets its own random data key (AES-256-GCM); that data key is wrapped by the ring's
SEALING key. Which keys a process KNOWS (can open with) and which one SEALS are separate: the known keys
come from ``BRB_ENCRYPTION_KEYS_FILE`` (reloaded without a restart, gateway/keyrotation.py) or
``BRB_ENCRYPTION_KEYS``; the sealing key is chosen fleet-wide in the database (``brb key promote``), so
adding a key never makes it seal before every process knows it (deploy/runbook-key-rotation.md)."""
from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes  # nonce || AES-GCM(data key, plaintext)
    wrapped_key: bytes  # nonce || AES-GCM(ring key, data key)
    key_id: str


def _checked(keys: dict[str, bytes], current_id: str | None) -> tuple[dict[str, bytes], str]:
    if not keys:
        raise ValueError("the key ring is empty")
    for kid, key in keys.items():
        if not kid or len(kid) > 40 or "," in kid or ":" in kid:
            raise ValueError(f"ring key id {kid!r}: 1-40 characters, no ',' or ':'")
        if len(key) != 32:
            raise ValueError(f"ring key {kid!r} must be 32 bytes")
    current_id = current_id or list(keys)[-1]
    if current_id not in keys:
        raise ValueError(f"the sealing key {current_id!r} is not in the ring")
    return dict(keys), current_id


class KeyRing:
    """The keys this process knows, and the one it seals with. Mutable in place (``replace``,
    ``use``): every part of the process holds this one object, so a reload reaches them all."""

    def __init__(self, keys: dict[str, bytes], current_id: str | None = None):
        self._keys, self.current_id = _checked(keys, current_id)

    @classmethod
    def parse(cls, spec: str) -> "KeyRing":
        return cls(parse_spec(spec))

    @classmethod
    def from_file(cls, path: str | Path) -> "KeyRing":
        return cls(*read_key_file(path))

    @property
    def held(self) -> list[str]:
        return list(self._keys)

    def holds(self, kid: str) -> bool:
        return kid in self._keys

    def replace(self, keys: dict[str, bytes], current_id: str | None = None) -> None:
        """Swap the known keys at once (a reloaded key file); the sealing key stays unless given. A ring
        that would lose its sealing key is refused (ValueError) and the old one kept."""
        self._keys, self.current_id = _checked(keys, current_id or self.current_id)

    def use(self, kid: str) -> None:
        """Seal with ``kid`` from now on (it must be known)."""
        if kid not in self._keys:
            raise KeyError(f"ring key {kid!r} is not configured")
        self.current_id = kid

    @staticmethod
    def new_key_spec(kid: str) -> str:
        return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE)
        ciphertext = nonce + AESGCM(data_key).encrypt(nonce, plaintext, aad)
        return Sealed(ciphertext, self._wrap(data_key, self.current_id), self.current_id)

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        data_key = self._unwrap(sealed.wrapped_key, sealed.key_id)
        return AESGCM(data_key).decrypt(sealed.ciphertext[:_NONCE], sealed.ciphertext[_NONCE:], aad)

    def rewrap(self, sealed: Sealed) -> Sealed:
        """The same ciphertext with its data key wrapped under the current ring key."""
        if sealed.key_id == self.current_id:
            return sealed
        data_key = self._unwrap(sealed.wrapped_key, sealed.key_id)
        return Sealed(sealed.ciphertext, self._wrap(data_key, self.current_id), self.current_id)

    def _wrap(self, data_key: bytes, kid: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + AESGCM(self._keys[kid]).encrypt(nonce, data_key, kid.encode())

    def _unwrap(self, wrapped: bytes, kid: str) -> bytes:
        if kid not in self._keys:
            raise KeyError(f"ring key {kid!r} is not configured")
        return AESGCM(self._keys[kid]).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], kid.encode())


def ring_from_settings(settings) -> KeyRing:
    """The ring a process starts with: its key file (BRB_ENCRYPTION_KEYS_FILE), else BRB_ENCRYPTION_KEYS
    (the last key seals until the database records the fleet's sealing key)."""
    if settings.encryption_keys_file:
        return KeyRing.from_file(settings.encryption_keys_file)
    return KeyRing(parse_spec(settings.encryption_keys.get_secret_value()))


def parse_spec(spec: str) -> dict[str, bytes]:
    """``kid:base64,kid2:base64`` (BRB_ENCRYPTION_KEYS) as {kid: key}."""
    keys: dict[str, bytes] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        kid, _, b64 = item.partition(":")
        keys[kid] = base64.b64decode(b64)
    return keys


def read_key_file(path: str | Path) -> tuple[dict[str, bytes], str | None]:
    """A key file (BRB_ENCRYPTION_KEYS_FILE): JSON ``{"keys": {"kid": "base64-32-bytes", ...},
    "current": "kid"}``. ``current`` only seeds the fleet's sealing key the first time a database sees the
    ring; from then on ``brb key promote`` decides (gateway/keyrotation.py)."""
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict):
        raise ValueError(f"{path}: expected {{\"keys\": {{\"kid\": \"base64\"}}, \"current\": \"kid\"}}")
    keys = {str(kid): base64.b64decode(b64) for kid, b64 in doc["keys"].items()}
    return keys, doc.get("current")


def write_key_file(path: str | Path, keys: dict[str, bytes], current: str | None) -> None:
    """Write a key file atomically (a reader never sees half a file), readable by its owner only."""
    path = Path(path)
    _checked(keys, current)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"keys": {kid: base64.b64encode(k).decode() for kid, k in keys.items()},
                   **({"current": current} if current else {})}, f, indent=2)
    os.replace(tmp, path)


@dataclass(frozen=True)
class SealedColumns:
    """Where a row keeps one value sealed with the key ring: its ciphertext, wrapped data key and key id
    columns, and, for free text stored in plain before migration 0003, the legacy plain column."""

    ciphertext: str
    wrapped_key: str
    key_id: str
    legacy_plain: str | None = None

    def get(self, row) -> Sealed | None:
        ciphertext = getattr(row, self.ciphertext)
        return None if ciphertext is None else Sealed(ciphertext, getattr(row, self.wrapped_key), getattr(row, self.key_id))

    def put(self, row, sealed: Sealed | None) -> None:
        setattr(row, self.ciphertext, sealed.ciphertext if sealed else None)
        setattr(row, self.wrapped_key, sealed.wrapped_key if sealed else None)
        setattr(row, self.key_id, sealed.key_id if sealed else None)

    def sealed_values(self, keyring: KeyRing, text: str | None, aad: bytes) -> dict:
        """The columns' values holding ``text`` sealed (None clears them), for a row or an UPDATE; the
        legacy plain column is cleared: never plain text again, also where migration 0003 left one."""
        sealed = keyring.seal(text.encode(), aad=aad) if text else None
        values = {self.ciphertext: sealed.ciphertext if sealed else None,
                  self.wrapped_key: sealed.wrapped_key if sealed else None, self.key_id: sealed.key_id if sealed else None}
        return values | ({self.legacy_plain: None} if self.legacy_plain else {})

    def seal_text(self, keyring: KeyRing, row, text: str | None, aad: bytes) -> None:
        for column, value in self.sealed_values(keyring, text, aad).items():
            setattr(row, column, value)

    def open_text(self, keyring: KeyRing | None, row, aad: bytes) -> str | None:
        """The text for the parties; a legacy plain value as it is; without the ring it stays shut (None)."""
        sealed = self.get(row)
        if sealed is None:
            return getattr(row, self.legacy_plain) if self.legacy_plain else None
        return keyring.open(sealed, aad=aad).decode() if keyring is not None else None
