"""The demo's built-in OpenID Connect issuer: a development stand-in for the identity provider, so `make run`
can log in the demo organisations' officers. Served only in demo mode (``BRB_DEMO``, set by `brb demo`),
clearly marked on its page, and refused by the pages when not in demo mode.

It implements just the authorization code flow with PKCE (S256) for the pages' own client: a page to pick
a demo officer, a token endpoint that checks the code, the redirect URI and the code verifier, and a JWKS
for its ES256 ID tokens. Codes live in this process for a minute and are used once. Production points
``BRB_OIDC_ISSUER`` at the organisation's real identity provider instead."""
from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse
from sqlmodel import select

from gateway.db.models import Organisation
from gateway.pages.officer import ROLES
from gateway.pages.render import page
from gateway.problems import Problem

PATH = "/dev-issuer"  # under the pages' mount: <public URL>/audit/dev-issuer
CODE_SECONDS = 60
KID = "dev-issuer-1"
_ROLE_OF_KIND = {kind: role for role, kind in ROLES.items()}


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    claims: dict
    expires: float


def is_dev_issuer(issuer: str | None) -> bool:
    return bool(issuer) and issuer.rstrip("/").endswith("/audit" + PATH)


def router() -> APIRouter:
    key = ec.generate_private_key(ec.SECP256R1())  # a new key per start: ID tokens of a previous run do not verify
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": KID, "use": "sig", "alg": "ES256"}
    grants: dict[str, _Grant] = {}
    r = APIRouter(prefix=PATH, include_in_schema=False)

    def issuer(request: Request) -> str:
        return request.app.state.services.settings.oidc_issuer.rstrip("/")

    def callback(request: Request) -> str:
        return issuer(request).removesuffix(PATH) + "/callback"

    @r.get("/.well-known/openid-configuration")
    async def configuration(request: Request) -> JSONResponse:
        base = issuer(request)
        return JSONResponse({
            "issuer": base, "authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks", "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"], "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"], "scopes_supported": ["openid", "profile"],
            "grant_types_supported": ["authorization_code"],
        })

    @r.get("/jwks")
    async def jwks() -> JSONResponse:
        return JSONResponse({"keys": [public]})

    def check_request(request: Request, client_id: str, redirect_uri: str, challenge: str, method: str) -> None:
        settings = request.app.state.services.settings
        if client_id != settings.oidc_client_id or redirect_uri != callback(request):
            raise Problem("invalid-request", "unknown client_id or redirect_uri")
        if method != "S256" or not challenge:
            raise Problem("invalid-request", "PKCE with code_challenge_method=S256 is required")

    @r.get("/authorize")
    async def authorize(request: Request, client_id: str = "", redirect_uri: str = "", state: str = "", nonce: str = "",
                        code_challenge: str = "", code_challenge_method: str = "", scope: str = "",
                        response_type: str = ""):
        check_request(request, client_id, redirect_uri, code_challenge, code_challenge_method)
        if response_type != "code" or "openid" not in scope.split():
            raise Problem("invalid-request", "response_type=code and scope openid are required")
        async with request.app.state.services.db.read() as session:
            orgs = (await session.exec(select(Organisation).where(Organisation.kind.in_(tuple(_ROLE_OF_KIND)))
                                       .order_by(Organisation.name))).all()
        officers = [{"oin": o.oin, "organisation": o.name, "role": _ROLE_OF_KIND[o.kind]} for o in orgs if o.active]
        return page(request, "dev_issuer.html", officers=officers, params={
            "client_id": client_id, "redirect_uri": redirect_uri, "state": state, "nonce": nonce,
            "code_challenge": code_challenge, "code_challenge_method": code_challenge_method}, officer=None)

    @r.post("/authorize")
    async def choose(request: Request, oin: str = Form(...), client_id: str = Form(...), redirect_uri: str = Form(...),
                     state: str = Form(""), nonce: str = Form(""), code_challenge: str = Form(...),
                     code_challenge_method: str = Form(...)):
        check_request(request, client_id, redirect_uri, code_challenge, code_challenge_method)
        async with request.app.state.services.db.read() as session:
            org = (await session.exec(select(Organisation).where(Organisation.oin == oin))).first()
        if org is None or org.kind not in _ROLE_OF_KIND:
            raise Problem("invalid-request", "not a demo officer's organisation")
        settings = request.app.state.services.settings
        claims = {"sub": f"demo-officer-{org.oin}", "name": f"Demo-functionaris ({org.name})", "nonce": nonce,
                  settings.oidc_organisation_claim: org.oin, settings.oidc_role_claim: _ROLE_OF_KIND[org.kind]}
        code = secrets.token_urlsafe(24)
        now = time.time()
        for stale in [c for c, g in grants.items() if g.expires < now]:
            grants.pop(stale, None)
        grants[code] = _Grant(client_id, redirect_uri, code_challenge, claims, now + CODE_SECONDS)
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", status_code=303)

    @r.post("/token")
    async def token(request: Request, grant_type: str = Form(...), code: str = Form(...), redirect_uri: str = Form(...),
                    code_verifier: str = Form(...), client_id: str = Form(...)) -> JSONResponse:
        grant = grants.pop(code, None)  # once
        digest = base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest()).rstrip(b"=").decode()
        if (grant_type != "authorization_code" or grant is None or grant.expires < time.time()
                or grant.client_id != client_id or grant.redirect_uri != redirect_uri
                or not secrets.compare_digest(grant.challenge, digest)):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        now = int(time.time())
        id_token = jwt.encode({**grant.claims, "iss": issuer(request), "aud": client_id, "iat": now, "auth_time": now,
                               "exp": now + 300}, key, algorithm="ES256", headers={"kid": KID})
        return JSONResponse({"access_token": secrets.token_urlsafe(24), "token_type": "Bearer", "expires_in": 300,
                             "id_token": id_token}, headers={"Cache-Control": "no-store"})

    return r
