"""The gateway's signed receipts, checked by a connector.

The 201 of a send and the answer to each acknowledgement carry a receipt: a compact JWS by the gateway's own
key (header ``typ`` ``brb-receipt+jwt``, ``alg`` ES256, ``kid``) over JSON claims naming what the gateway
accepted (message id, payload digest, recipients and decisions, or the acknowledgement's status, and the
time). Keep it with your copy: it proves to a third party what the gateway recorded, without trusting the
gateway's database. The gateway publishes its public keys as a JWK Set at ``/.well-known/jwks.json``::

    jwks = httpx.get(f"{base_url}/.well-known/jwks.json").json()
    claims = verify_receipt(answer["signedReceipt"], jwks)

It imports nothing of the gateway."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import JWKRegistry

RECEIPT_TYPE = "brb-receipt+jwt"
DEFAULT_ALGORITHM = "ES256"
# what a key of the set may name as its alg instead: asymmetric signatures only (never none or an HMAC)
ASYMMETRIC = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA", "Ed25519"})
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


class ReceiptInvalid(ValueError):
    """The receipt is not one the gateway's published keys vouch for; the message says why."""

    def __init__(self, reason: str):
        super().__init__(f"invalid receipt: {reason}")
        self.reason = reason


def _key_for(jwks: Mapping, kid: str) -> dict:
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise ReceiptInvalid("the key set is not a JWK Set (an object with a list 'keys')")
    for key in keys:
        if isinstance(key, Mapping) and key.get("kid") == kid:
            return {k: v for k, v in key.items() if k not in PRIVATE_MEMBERS}
    raise ReceiptInvalid(f"unknown kid {kid!r}: no such key in the JWK Set")


def verify_receipt(receipt: str, jwks: Mapping[str, Any], *, issuer: str | None = None) -> dict:
    """The claims of ``receipt`` once its signature verifies with the key its ``kid`` names in ``jwks`` (the
    gateway's JWK Set); ``ReceiptInvalid`` when it is malformed, not a receipt, signed by an unknown key or with
    another algorithm than the key's (ES256 unless the key says otherwise), altered, or (``issuer`` given)
    issued by another gateway."""
    if not isinstance(receipt, str) or receipt.count(".") != 2:
        raise ReceiptInvalid("not a compact JWS (<header>.<payload>.<signature>)")
    try:
        header = dict(jws.extract_compact(receipt.encode()).protected)
    except (JoseError, ValueError, TypeError) as exc:
        raise ReceiptInvalid(f"malformed: {exc}") from None
    if header.get("typ") != RECEIPT_TYPE:
        raise ReceiptInvalid(f"typ must be {RECEIPT_TYPE!r}, not {header.get('typ')!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ReceiptInvalid("the header names no kid")
    jwk = _key_for(jwks, kid)
    alg = jwk.get("alg", DEFAULT_ALGORITHM)
    if alg not in ASYMMETRIC:
        raise ReceiptInvalid(f"key {kid!r} is for alg {alg!r}, not an asymmetric signature")
    if header.get("alg") != alg:
        raise ReceiptInvalid(f"alg {header.get('alg')!r} in the header; key {kid!r} is for {alg}")
    if jwk.get("use", "sig") != "sig":
        raise ReceiptInvalid(f"key {kid!r} is not a signing key (use {jwk.get('use')!r})")
    try:
        key = JWKRegistry.import_key(jwk)
    except (JoseError, ValueError, TypeError) as exc:
        raise ReceiptInvalid(f"key {kid!r} of the JWK Set cannot be read: {exc}") from None
    try:
        signed = jws.deserialize_compact(receipt, key, algorithms=[alg])
    except BadSignatureError:
        raise ReceiptInvalid("the signature does not verify: the receipt was altered or another key signed it") from None
    except (JoseError, ValueError, TypeError) as exc:
        raise ReceiptInvalid(f"cannot be checked: {exc}") from None
    try:
        claims = json.loads(signed.payload)
    except ValueError:
        raise ReceiptInvalid("the payload is not JSON") from None
    if not isinstance(claims, dict):
        raise ReceiptInvalid("the payload is not a JSON object")
    if issuer is not None and claims.get("iss") != issuer:
        raise ReceiptInvalid(f"issued by {claims.get('iss')!r}, not {issuer!r}")
    return claims
