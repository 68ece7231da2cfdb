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
