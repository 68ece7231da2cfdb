"""Admin API of the organisation registry."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from contracts.parties import Scope
from gateway import registry
from gateway.api.common import Svc
from gateway.api.params import Kid, OinPath
from gateway.auth.dependencies import require

router = APIRouter(prefix="/organisations", tags=["organisations"])
Admin = Depends(require(Scope.ADMIN))


@router.post("", status_code=201, summary="Register an organisation", dependencies=[Admin])
async def add_organisation(body: registry.OrganisationRequest, svc: Svc) -> registry.OrganisationView:
    """Register an organisation: OIN, name, kind, CBS code (municipality, mayor), the audited organisation (auditor)."""
    return await registry.add_organisation(svc, body)


@router.get("", summary="List organisations and their keys", dependencies=[Admin])
async def list_organisations(svc: Svc) -> registry.OrganisationList:
    """All organisations and their keys."""
    return await registry.list_organisations(svc)


@router.post("/{oin}/keys", status_code=201, summary="Add a public key (JWK)", dependencies=[Admin])
async def add_key(oin: OinPath, body: registry.KeyRequest, svc: Svc) -> registry.KeyView:
    """Add a public key (JWK with kid). Several keys may be active at once, for rotation."""
    return await registry.add_key(svc, oin, body.jwk)


@router.post("/{oin}/keys/{kid}/revocation", status_code=201, summary="Revoke a key", dependencies=[Admin])
async def revoke_key(oin: OinPath, kid: Kid, svc: Svc) -> registry.KeyView:
    """Revoke a key: tokens signed with it are refused from now on."""
    return await registry.revoke_key(svc, oin, kid)
