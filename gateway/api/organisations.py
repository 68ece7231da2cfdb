"""Admin API of the organisation registry."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from contracts.parties import Scope
from gateway import registry
from gateway.api.common import Svc, caller_with
from gateway.api.params import Kid, OinPath
from gateway.auth.dependencies import require
from gateway.openapi import problems

router = APIRouter(prefix="/organisations", tags=["organisations"])
Admin = Depends(require(Scope.ADMIN))
Own = caller_with()  # any valid token of the organisation: it sees its own public keys
OwnKeys = caller_with(Scope.KEYS_WRITE)


# Self-service (declared before the /{oin} routes, which would otherwise take "me" for an OIN).
@router.get("/me/keys", summary="List your organisation's keys")
async def list_own_keys(caller: Own, svc: Svc) -> registry.KeyList:
    """Your organisation's keys, public parts only: kid, algorithm, when added, when revoked."""
    return await registry.list_keys(svc, caller.oin)


@router.post("/me/keys", status_code=201, summary="Register a new key of your own (rotation)",
             responses=problems("conflict", "invalid-proof"))
async def add_own_key(body: registry.OwnKeyRequest, caller: OwnKeys, svc: Svc) -> registry.KeyView:
    """Register a new public key (JWK with kid) for your organisation, authenticated with a token signed by a
    current key and carrying scope `keys:write`. `proof` is a JWT signed with the NEW private key (header kid =
    the new kid; iss = sub = your OIN, aud, iat, exp at most 5 minutes later, jti), else an `invalid-proof` 422.
    Rotate: register the new key, switch your signer to it, then revoke the old one."""
    return await registry.add_own_key(svc, caller.oin, body)


@router.post("/me/keys/{kid}/revocation", status_code=201, summary="Revoke one of your keys",
             responses=problems("conflict"))
async def revoke_own_key(kid: Kid, caller: OwnKeys, svc: Svc) -> registry.KeyView:
    """Revoke one of your organisation's keys: tokens signed with it are refused from now on. Your last active
    key cannot be revoked (409): register its successor first."""
    return await registry.revoke_key(svc, caller.oin, kid, keep_last=True, by="self")


@router.get("/{oin}/jwks", summary="An organisation's public keys, to check its signatures", response_model=registry.JwkSet,
            responses=problems("not-found"))
async def get_organisation_jwks(oin: OinPath, caller: Own, svc: Svc) -> registry.JwkSet:
    """The organisation's registered public keys as a JWK Set, revoked ones included (with `revokedAt`): what a
    message's `proof.signature` is checked with (brb_client.proof.verify_payload, `brb verify message`). A key
    revoked before a message was sent did not sign it: the gateway refuses signatures by revoked keys."""
    return await registry.jwks_of(svc, oin)


@router.post("", status_code=201, summary="Register an organisation", dependencies=[Admin],
             responses=problems("conflict"))
async def add_organisation(body: registry.OrganisationRequest, svc: Svc) -> registry.OrganisationView:
    """Register an organisation: OIN, name, kind, CBS code (municipality, mayor), the audited organisation (auditor)."""
    return await registry.add_organisation(svc, body)


@router.get("", summary="List organisations and their keys", dependencies=[Admin])
async def list_organisations(svc: Svc) -> registry.OrganisationList:
    """All organisations and their keys."""
    return await registry.list_organisations(svc)


@router.post("/{oin}/keys", status_code=201, summary="Add a public key (JWK)", dependencies=[Admin],
             responses=problems("conflict"))
async def add_key(oin: OinPath, body: registry.KeyRequest, svc: Svc) -> registry.KeyView:
    """Add a public key (JWK with kid). Several keys may be active at once, for rotation."""
    return await registry.add_key(svc, oin, body.jwk)


@router.post("/{oin}/keys/{kid}/revocation", status_code=201, summary="Revoke a key", dependencies=[Admin],
             responses=problems("conflict"))
async def revoke_key(oin: OinPath, kid: Kid, svc: Svc) -> registry.KeyView:
    """Revoke a key: tokens signed with it are refused from now on."""
    return await registry.revoke_key(svc, oin, kid)
