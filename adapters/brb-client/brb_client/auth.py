"""A fresh token per request. The gateway accepts a token's ``jti`` once (replay guard), so a client
that holds one static token fails on its second call; ``TokenAuth`` signs anew for every request and
every retry: ``iss`` = ``sub`` = the OIN, ``aud``, ``iat``, ``exp`` one minute ahead, a random ``jti``."""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt

DEFAULT_AUDIENCE = "urn:nl:brb:gateway"


@dataclass(frozen=True)
class Identity:
    """Who a connector acts as: its organisation's OIN, a private JWK (with ``kid``) registered with the
    gateway, and the scopes it asks for (space-separated; only those its organisation's kind may hold)."""

    oin: str
    private_jwk: dict
    scope: str
    audience: str = DEFAULT_AUDIENCE

    @classmethod
    def from_file(cls, oin: str, key_file: str | Path, scope: str, audience: str = DEFAULT_AUDIENCE) -> "Identity":
        return cls(oin, json.loads(Path(key_file).read_text()), scope, audience)

    @property
    def kid(self) -> str:
        return self.private_jwk["kid"]

    def token(self, lifetime: int = 60) -> str:
        """A token for one request (the gateway refuses ``exp`` more than an hour ahead)."""
        now = int(time.time())
        claims = {"iss": self.oin, "sub": self.oin, "aud": self.audience, "iat": now, "exp": now + lifetime,
                  "jti": uuid.uuid4().hex, "scope": self.scope}
        alg = self.private_jwk.get("alg", "ES256")
        key = jwt.PyJWK(self.private_jwk, algorithm=alg).key
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": self.kid})

    def with_key(self, private_jwk: dict) -> "Identity":
        """The same organisation signing with another of its keys (rotation)."""
        return Identity(self.oin, private_jwk, self.scope, self.audience)

    def proof_of_possession(self, lifetime: int = 120) -> str:
        """The ``proof`` that registers this identity's key with ``POST /organisations/me/keys``: a short
        JWT signed with the key itself (so only its holder can register it)."""
        now = int(time.time())
        claims = {"iss": self.oin, "sub": self.oin, "aud": self.audience, "iat": now, "exp": now + lifetime,
                  "jti": uuid.uuid4().hex}
        alg = self.private_jwk.get("alg", "ES256")
        return jwt.encode(claims, jwt.PyJWK(self.private_jwk, algorithm=alg).key, algorithm=alg, headers={"kid": self.kid})


PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})


def public_part(private_jwk: dict) -> dict:
    """The JWK to register: the private key without its private members."""
    return {k: v for k, v in private_jwk.items() if k not in PRIVATE_MEMBERS}


class TokenAuth(httpx.Auth):
    """``httpx.Client(auth=TokenAuth(identity))``: every request, and every retry of one, carries a token
    of its own. ``identity`` may be swapped at run time (``auth.identity = identity.with_key(new)``)."""

    def __init__(self, identity: Identity):
        self.identity = identity

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.identity.token()}"
        yield request
