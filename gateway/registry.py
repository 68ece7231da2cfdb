"""The organisation registry: organisations (OIN, kind, CBS code) and their public keys (JWK).

Keys are added and revoked here only, whether the operator does it (admin) or the organisation itself
(self-service rotation: a new key proves possession of its private half; the last active key stays).
Every change increments the registry version in its own transaction and clears this process's key cache
(gateway/auth/keycache.py): the other processes follow within BRB_KEY_CACHE_POLL_SECONDS."""
from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from typing import Annotated, Any

import jwt
from pydantic import Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from brb_client.proof import ProofInvalid, algorithm_of
from contracts.parties import CBS_KINDS, KINDS
from gateway.auth import keycache
from gateway.db.models import Organisation, OrganisationKey
from gateway.problems import Problem, field_detail
from gateway.schemas import Inbound, Wire
from gateway.services import Services

log = logging.getLogger("brb.registry")
PROOF_MAX_LIFETIME_SECONDS = 300

class OrganisationRequest(Inbound):
    oin: Annotated[str, Field(pattern=r"^[0-9]{20}$")]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: str = Field(description=f"one of {', '.join(KINDS)}")
    cbs_code: Annotated[str, Field(pattern=r"^[0-9]{4}$")] | None = None
    parent_oin: Annotated[str, Field(pattern=r"^[0-9]{20}$", description="for an auditor: the organisation it audits")] | None = None


class KeyRequest(Inbound):
    jwk: dict[str, Any] = Field(description="public key as JWK (EC P-256, RSA >= 2048 bit or Ed25519) with kid")


class OwnKeyRequest(Inbound):
    """A new key of the caller's own organisation, with proof that the caller holds its private half."""

    jwk: dict[str, Any] = Field(description="the new public key as JWK (EC P-256, RSA >= 2048 bit or Ed25519) with kid")
    proof: Annotated[str, Field(min_length=1, max_length=8192, description=(
        "proof of possession: a compact JWT signed with the NEW private key; header kid = the new kid; claims "
        f"iss = sub = your OIN, aud = the gateway's audience, iat, exp (at most {PROOF_MAX_LIFETIME_SECONDS} s "
        "after iat), jti"))]


class KeyView(Wire):
    kid: str
    alg: str
    created_at: datetime
    revoked_at: datetime | None


class KeyList(Wire):
    items: list[KeyView]


class JwkSet(Wire):
    keys: list[dict[str, Any]] = Field(description="public JWKs (kid, alg, use sig), revokedAt for a revoked one")


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
    try:
        return algorithm_of(jwk)
    except ProofInvalid:
        raise Problem("validation-failed", field_detail([("/jwk/kty", "use an EC P-256, RSA or Ed25519 key")])) from None


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
            await session.flush()  # the organisation's own conflicts first, then the counter
            await keycache.bump(session)
    except IntegrityError:  # a registration committed meanwhile: the same OIN, or the same active CBS code
        async with services.db.read() as session:
            taken = None if await session.get(Organisation, body.oin) else await _code_taken(session, body)
        raise taken or Problem("conflict", f"organisation {body.oin} already exists") from None
    keycache.changed(services)
    return view(org, [])


async def _code_taken(session, body: OrganisationRequest) -> Problem | None:
    """A CBS code has one active municipality and one active mayor; the unique index
    ``ux_organisations_active_cbs`` holds that when two registrations race past this check."""
    if body.kind not in CBS_KINDS:
        return None
    holder = (await session.exec(select(Organisation).where(
        Organisation.kind == body.kind, Organisation.cbs_code == body.cbs_code, Organisation.active))).first()
    return Problem("conflict", f"{body.kind}:{body.cbs_code} is already registered as {holder.oin}") if holder else None


def check_proof(services: Services, oin: str, jwk: dict, proof: str) -> None:
    """The proof of possession (``OwnKeyRequest.proof``) verifies with the submitted public key, or a 422."""
    kid, alg = check_public_jwk(jwk)
    settings = services.settings

    def refuse(why: str) -> Problem:
        return Problem("invalid-proof", f"{why}; sign a short-lived JWT with the new private key: header kid "
                                        f"{kid!r}, claims iss = sub = {oin}, aud = {settings.audience!r}, iat, exp, jti")

    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError as exc:
        raise refuse(f"the proof is not a compact JWT ({exc})") from None
    if header.get("alg") != alg:
        raise refuse(f"the proof is signed with {header.get('alg')!r}, the new key is an {alg} key")
    if header.get("kid") != kid:
        raise refuse(f"the proof's header kid is {header.get('kid')!r}, not the new key's")
    try:
        claims = jwt.decode(proof, jwt.PyJWK(jwk, algorithm=alg).key, algorithms=[alg], audience=settings.audience,
                            issuer=oin, leeway=settings.clock_skew_seconds,
                            options={"require": ["exp", "iat", "jti", "iss", "sub", "aud"]})
    except jwt.InvalidSignatureError:
        raise refuse("the proof's signature does not verify with the submitted JWK") from None
    except jwt.InvalidIssuerError:
        raise refuse("the proof's iss is not your OIN") from None
    except jwt.InvalidAudienceError:
        raise refuse("the proof's aud is not the gateway's audience") from None
    except jwt.ExpiredSignatureError:
        raise refuse(f"the proof has expired (clock skew allowed: {settings.clock_skew_seconds} s)") from None
    except jwt.PyJWTError as exc:
        raise refuse(f"the proof is not valid: {exc}") from None
    if claims["sub"] != oin:
        raise refuse("the proof's sub is not your OIN")
    if not isinstance(claims["jti"], str) or not 8 <= len(claims["jti"]) <= 200:
        raise refuse("the proof's jti must be a string of 8 to 200 characters")
    if claims["exp"] - claims["iat"] > PROOF_MAX_LIFETIME_SECONDS or \
            claims["exp"] - time.time() > PROOF_MAX_LIFETIME_SECONDS + settings.clock_skew_seconds:
        raise refuse(f"the proof lives longer than {PROOF_MAX_LIFETIME_SECONDS} s")


async def add_own_key(services: Services, oin: str, body: OwnKeyRequest) -> KeyView:
    """Self-service: a key the organisation proves it holds. A replayed proof gains nothing: it can only
    register the same kid again, which is a conflict (a kid stays taken after revocation)."""
    check_proof(services, oin, body.jwk, body.proof)
    return await add_key(services, oin, body.jwk, by="self")


async def add_key(services: Services, oin: str, jwk: dict, *, by: str = "operator") -> KeyView:
    kid, alg = check_public_jwk(jwk)
    public = {k: v for k, v in jwk.items() if k in ("kty", "crv", "x", "y", "n", "e", "kid", "use", "alg")}
    try:
        async with services.db.write() as session:
            if await session.get(Organisation, oin) is None:
                raise Problem("not-found", "no such organisation")
            key = OrganisationKey(oin=oin, kid=kid, alg=alg, jwk=public, created_at=services.clock.now())
            session.add(key)
            await session.flush()  # a kid taken: the IntegrityError below, before the counter moves
            await keycache.bump(session)
    except IntegrityError:
        raise Problem("conflict", f"kid {kid!r} is already registered for {oin}; choose a new kid") from None
    keycache.changed(services)
    log.info("registry.key-added", extra={"oin": oin, "kid": kid, "alg": alg, "by": by})
    return KeyView(kid=kid, alg=alg, created_at=key.created_at, revoked_at=None)


async def revoke_key(services: Services, oin: str, kid: str, *, keep_last: bool = False, by: str = "operator") -> KeyView:
    """Revoke a key (again: unchanged). ``keep_last``: refuse to revoke the organisation's last active key
    (self-service would lock itself out; the operator may, e.g. after a compromise)."""
    revoked = False
    async with services.db.write() as session:
        # the organisation's row is the lock two concurrent revocations of its last two keys meet at
        # (PostgreSQL; SQLite's writes are serial anyway)
        await session.exec(select(Organisation.oin).where(Organisation.oin == oin).with_for_update())
        keys = (await session.exec(select(OrganisationKey).where(OrganisationKey.oin == oin))).all()
        key = next((k for k in keys if k.kid == kid), None)
        if key is None:
            raise Problem("not-found", "no such key")
        if key.revoked_at is None:
            if keep_last and not any(k.revoked_at is None for k in keys if k is not key):
                raise Problem("conflict", f"key {kid!r} is your organisation's last active key: register its successor "
                                          "first (POST /organisations/me/keys), sign with it, then revoke this one")
            key.revoked_at = services.clock.now()
            session.add(key)
            await keycache.bump(session)
            revoked = True
    if revoked:
        keycache.changed(services)
        log.info("registry.key-revoked", extra={"oin": oin, "kid": kid, "by": by})
    return KeyView(kid=key.kid, alg=key.alg, created_at=key.created_at, revoked_at=key.revoked_at)


async def list_keys(services: Services, oin: str) -> KeyList:
    """An organisation's keys, public parts only (kid, algorithm, when added and revoked)."""
    async with services.db.read() as session:
        keys = (await session.exec(select(OrganisationKey).where(OrganisationKey.oin == oin)
                                   .order_by(col(OrganisationKey.id)))).all()
    return KeyList(items=[KeyView(kid=k.kid, alg=k.alg, created_at=k.created_at, revoked_at=k.revoked_at) for k in keys])


async def jwks_of(services: Services, oin: str) -> JwkSet:
    async with services.db.read() as session:
        if await session.get(Organisation, oin) is None:
            raise Problem("not-found", "no such organisation")
        keys = (await session.exec(select(OrganisationKey).where(OrganisationKey.oin == oin)
                                   .order_by(col(OrganisationKey.id)))).all()
    return JwkSet(keys=[{**k.jwk, "alg": k.alg, "use": "sig",
                         **({"revokedAt": k.revoked_at.isoformat()} if k.revoked_at else {})} for k in keys])


async def list_organisations(services: Services) -> OrganisationList:
    async with services.db.read() as session:
        orgs = (await session.exec(select(Organisation).order_by(col(Organisation.kind), col(Organisation.oin)))).all()
        keys = (await session.exec(select(OrganisationKey).order_by(col(OrganisationKey.id)))).all()
    by_org: dict[str, list[OrganisationKey]] = {}
    for k in keys:
        by_org.setdefault(k.oin, []).append(k)
    return OrganisationList(items=[view(o, by_org.get(o.oin, [])) for o in orgs])
