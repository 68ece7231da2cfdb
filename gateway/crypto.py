"""Envelope encryption of payloads at rest.

Each payload gets its own random data key (AES-256-GCM); that data key is wrapped by the newest key
of the ring. Rotation: add a key at the end of ``BRB_ENCRYPTION_KEYS``; old data stays readable and
``brb keys rewrap`` re-wraps data keys under the newest key (payload ciphertexts stay as they are)."""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12


@dataclass(frozen=True)
class Sealed:
    ciphertext: bytes  # nonce || AES-GCM(data key, plaintext)
    wrapped_key: bytes  # nonce || AES-GCM(ring key, data key)
    key_id: str


class KeyRing:
    def __init__(self, keys: dict[str, bytes]):
        if not keys:
            raise ValueError("the key ring is empty")
        for kid, key in keys.items():
            if len(key) != 32:
                raise ValueError(f"ring key {kid!r} must be 32 bytes")
        self._keys = dict(keys)
        self.current_id = list(keys)[-1]

    @classmethod
    def parse(cls, spec: str) -> "KeyRing":
        keys: dict[str, bytes] = {}
        for item in filter(None, (p.strip() for p in spec.split(","))):
            kid, _, b64 = item.partition(":")
            keys[kid] = base64.b64decode(b64)
        return cls(keys)

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
