"""The organisation registry: organisations (OIN, kind, CBS code) and their public keys (JWK)."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

import jwt
from pydantic import Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from contracts.parties import CBS_KINDS, KINDS
from gateway.db.models import Organisation, OrganisationKey
from gateway.problems import Problem, field_detail
from gateway.schemas import Wire
from gateway.services import Services



class OrganisationRequest(Wire):
    oin: Annotated[str, Field(pattern=r"^[0-9]{20}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: str = Field(description=f"one of {', '.join(KINDS)}")
    cbs_code: Annotated[str, Field(pattern=r"^[0-9]{4}$")] | None = None
    parent_oin: Annotated[str, Field(pattern=r"^[0-9]{20}$", description="for an auditor: the organisation it audits")] | None = None


class KeyRequest(Wire):
    jwk: dict[str, Any] = Field(description="public key as JWK (EC P-256, RSA >= 2048 bit or Ed25519) with kid")


class KeyView(Wire):
    kid: str
    alg: str
    created_at: datetime
    revoked_at: datetime | None


class OrganisationView(Wire):
    oin: str
    name: str
    kind: str
    cbs_code: str | None
    parent_oin: str | None
    active: bool
    keys: list[KeyView] = []


class OrganisationList(Wire):
    items: list[OrganisationView]


def algorithm_for(jwk: dict) -> str:
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "RSA":
        return "RS256"
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
    raise Problem("validation-failed", field_detail([("/jwk/kty", "use an EC P-256, RSA or Ed25519 key")]))


def check_public_jwk(jwk: dict) -> tuple[str, str]:
    """(kid, alg) of a valid public JWK, or a validation problem."""
    problems = []
    if any(k in jwk for k in ("d", "p", "q", "dp", "dq", "qi", "k")):
        problems.append(("/jwk", "register the public key only, never private key material"))
    for name, value in jwk.items():  # RFC 7517 members are strings, booleans or arrays of strings
        if not (isinstance(value, (str, bool)) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            problems.append((f"/jwk/{name}", "a JWK member is a string, a boolean or an array of strings"))
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", kid):
        problems.append(("/jwk/kid", "a kid of 1-100 characters [A-Za-z0-9._-]"))
    if problems:
        raise Problem("validation-failed", field_detail(problems))
    alg = algorithm_for(jwk)
    try:
        key = jwt.PyJWK(jwk, algorithm=alg).key
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise Problem("validation-failed", field_detail([("/jwk", f"not a usable {alg} key: {exc}")])) from None
    if alg == "RS256" and key.key_size < 2048:
        raise Problem("validation-failed", field_detail([("/jwk/n", "RSA keys need at least 2048 bits")]))
    return kid, alg


def view(org: Organisation, keys: list[OrganisationKey]) -> OrganisationView:
    return OrganisationView(
        oin=org.oin, name=org.name, kind=org.kind, cbs_code=org.cbs_code, parent_oin=org.parent_oin, active=org.active,
        keys=[KeyView(kid=k.kid, alg=k.alg, created_at=k.created_at, revoked_at=k.revoked_at) for k in keys],
    )


async def add_organisation(services: Services, body: OrganisationRequest) -> OrganisationView:
    problems = []
    kind = KINDS.get(body.kind)
    if kind is None:
        problems.append(("/kind", f"one of {', '.join(KINDS)}"))
    elif kind.addressed_by_cbs_code and not body.cbs_code:
        problems.append(("/cbsCode", f"a {body.kind} needs its CBS code"))
    elif not kind.addressed_by_cbs_code and body.cbs_code:
        problems.append(("/cbsCode", f"only {' and '.join(CBS_KINDS)} organisations carry a CBS code"))
    if kind is not None and kind.audits_parent and not body.parent_oin:
        problems.append(("/parentOin", f"a {body.kind} names the organisation it audits"))
    if problems:
        raise Problem("validation-failed", field_detail(problems))
    try:
        async with services.db.write() as session:
            if (taken := await _code_taken(session, body)) is not None:
                raise taken
            org = Organisation(oin=body.oin, name=body.name, kind=body.kind, cbs_code=body.cbs_code,
                               parent_oin=body.parent_oin, created_at=services.clock.now())
            session.add(org)
    except IntegrityError:  # a registration committed meanwhile: the same OIN, or the same active CBS code
        async with services.db.read() as session:
            taken = None if await session.get(Organisation, body.oin) else await _code_taken(session, body)
        raise taken or Problem("conflict", f"organisation {body.oin} already exists") from None
    return view(org, [])


async def _code_taken(session, body: OrganisationRequest) -> Problem | None:
    """A CBS code has one active municipality and one active mayor; the unique index
    ``ux_organisations_active_cbs`` holds that when two registrations race past this check."""
    if body.kind not in CBS_KINDS:
        return None
    holder = (await session.exec(select(Organisation).where(
        Organisation.kind == body.kind, Organisation.cbs_code == body.cbs_code, Organisation.active))).first()
    return Problem("conflict", f"{body.kind}:{body.cbs_code} is already registered as {holder.oin}") if holder else None


async def add_key(services: Services, oin: str, jwk: dict) -> KeyView:
    kid, alg = check_public_jwk(jwk)
    public = {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y", "n", "e", "kid", "use", "alg")}
    try:
        async with services.db.write() as session:
            if await session.get(Organisation, oin) is None:
                raise Problem("not-found", "no such organisation")
            key = OrganisationKey(oin=oin, kid=kid, alg=alg, jwk=public, created_at=services.clock.now())
            session.add(key)
    except IntegrityError:
        raise Problem("conflict", f"kid {kid!r} is already registered for {oin}") from None
    return KeyView(kid=kid, alg=alg, created_at=key.created_at, revoked_at=None)


async def revoke_key(services: Services, oin: str, kid: str) -> KeyView:
    async with services.db.write() as session:
        key = (await session.exec(select(OrganisationKey).where(OrganisationKey.oin == oin, OrganisationKey.kid == kid))).first()
        if key is None:
            raise Problem("not-found", "no such key")
        if key.revoked_at is None:
            key.revoked_at = services.clock.now()
            session.add(key)
    return KeyView(kid=key.kid, alg=key.alg, created_at=key.created_at, revoked_at=key.revoked_at)


async def list_organisations(services: Services) -> OrganisationList:
    async with services.db.read() as session:
        orgs = (await session.exec(select(Organisation).order_by(col(Organisation.kind), col(Organisation.oin)))).all()
        keys = (await session.exec(select(OrganisationKey).order_by(col(OrganisationKey.id)))).all()
    by_org: dict[str, list[OrganisationKey]] = {}
    for k in keys:
        by_org.setdefault(k.oin, []).append(k)
    return OrganisationList(items=[view(o, by_org.get(o.oin, [])) for o in orgs])
