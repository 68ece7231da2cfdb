"""Minting tokens the way a connector does: with its own private key (CLI ``brb token``, demo, tests)."""
from __future__ import annotations

import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm


def new_key_pair(kid: str) -> tuple[dict, dict]:
    """(private JWK, public JWK) for ES256."""
    private = ec.generate_private_key(ec.SECP256R1())
    private_jwk = json.loads(ECAlgorithm.to_jwk(private))
    public_jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    private_jwk.update(kid=kid, alg="ES256", use="sig")
    public_jwk.update(kid=kid, alg="ES256", use="sig")
    return private_jwk, public_jwk


def mint(private_jwk: dict, oin: str, audience: str, scopes: list[str] | str, lifetime: int = 300, **extra) -> str:
    now = int(time.time())
    claims = {
        "iss": oin, "sub": oin, "aud": audience, "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex,
        "scope": scopes if isinstance(scopes, str) else " ".join(scopes),
    }
    claims.update(extra)
    key = jwt.PyJWK(private_jwk, algorithm=private_jwk.get("alg", "ES256"))
    return jwt.encode(claims, key.key, algorithm=private_jwk.get("alg", "ES256"), headers={"kid": private_jwk["kid"]})
