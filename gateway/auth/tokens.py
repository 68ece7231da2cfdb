"""Verify a caller's JWT exactly as DESIGN §4 says.

Asymmetric algorithms only; the algorithm is taken from the registered key, never from the token
alone; ``iss`` = ``sub`` = an active OIN; ``aud``; ``exp`` at most an hour ahead; ``nbf``/``iat`` with a
small leeway (``clock_skew_seconds``); a ``jti`` is accepted once (kept in the database, so across restarts
and processes); ``scope`` is one space-delimited string of scopes the organisation's kind may hold.
docs/authentication.md is the caller's side of this.

The organisation and its key come from this process's key cache (gateway/auth/keycache.py), so a warm
check costs no database round trip. The ``jti`` is written in its own transaction, or, with
``defer_jti``, handed back as a ``JtiClaim`` for the request's own transaction to record (``consume_jti``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import jwt
from sqlalchemy import and_, delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.parties import KINDS, Scope
from gateway.auth.keycache import KeyEntry, key_cache
from gateway.db.engine import core
from gateway.db.models import Organisation, OrganisationKey, UsedToken
from gateway.problems import Problem
from gateway.services import Actor, Services

ALLOWED_ALGORITHMS = ("ES256", "RS256", "EdDSA")


@dataclass
class JtiClaim:
    """A verified token's jti, still to be recorded: by ``consume_jti`` in the request's own transaction
    (the caller sets ``consumed`` once that transaction committed), else by the dependency afterwards."""

    iss: str
    jti: str
    expires_at: datetime
    consumed: bool = False


@dataclass(frozen=True)
class Caller:
    oin: str
    kind: str
    name: str
    cbs_code: str | None
    parent_oin: str | None
    scopes: frozenset[str]
    jti: str
    jti_claim: JtiClaim | None = field(default=None, compare=False)  # set when the jti is still to be recorded

    @property
    def scope(self) -> str:
        return " ".join(sorted(self.scopes))

    @property
    def actor(self) -> Actor:
        """The caller as the actor of a unit of work: its audit records carry this token's jti and scope, and
        the unit of work records a deferred jti in its own transaction."""
        return Actor(oin=self.oin, kind=self.kind, token_id=self.jti, scope=self.scope, jti_claim=self.jti_claim)


# Why a token was refused: a short stable code per refusal, counted in brb_token_failures_total{reason}
# (gateway/auth/dependencies.py); the problem details say the same in words.
TOKEN_FAILURE_REASONS = (
    "missing", "malformed", "bad-algorithm", "no-kid", "bad-issuer", "bad-claim", "unknown-issuer", "unknown-kid",
    "revoked-kid", "alg-mismatch", "expired", "not-yet-valid", "wrong-audience", "bad-signature", "missing-claim",
    "rejected", "lifetime-too-long", "bad-jti", "replayed", "bad-scope-claim", "scope-not-allowed", "scope-missing",
)


def with_reason(reason: str, problem: Problem) -> Problem:
    """``problem``, marked with the refusal's reason code (one of ``TOKEN_FAILURE_REASONS``)."""
    problem.token_failure = reason
    return problem


def _invalid(reason: str, detail: str) -> Problem:
    return with_reason(reason, Problem("invalid-token", detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}))


def _replayed() -> Problem:
    return with_reason("replayed", Problem("token-replayed", "this jti was already used; mint a new token per request",
                                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}))


async def verify_token(services: Services, authorization: str | None, *, defer_jti: bool = False) -> Caller:
    """The caller of a valid token. Its jti is recorded here in a transaction of its own, or, with
    ``defer_jti``, left to the caller: the ``Caller`` then carries a ``JtiClaim`` (see ``consume_jti``)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise _invalid("missing", "send an Authorization: Bearer <JWT> header")
    token = authorization[len("Bearer "):].strip()
    try:  # header and claims in one parse (PyJWT's strict base64url parsing is a good part of a warm check)
        parsed = jwt.decode_complete(token, options={"verify_signature": False})
        header, unverified = parsed["header"], parsed["payload"]
    except jwt.PyJWTError as exc:
        raise _invalid("malformed", f"malformed token: {exc}") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALLOWED_ALGORITHMS:
        raise _invalid("bad-algorithm", f"algorithm {alg!r} is not accepted; use one of {', '.join(ALLOWED_ALGORITHMS)}")
    if not kid or not isinstance(kid, str):
        raise _invalid("no-kid", "the token header has no kid")
    iss, sub = unverified.get("iss"), unverified.get("sub")
    if not isinstance(iss, str) or iss != sub:
        raise _invalid("bad-issuer", "iss and sub must both be the calling organisation's OIN")
    for claim in ("exp", "iat", "nbf"):  # RFC 7519 NumericDate: a JSON number, not a string or a boolean
        value = unverified.get(claim)
        if value is not None and (type(value) not in (int, float) or not 0 <= value < 2**53):
            raise _invalid("bad-claim", f"{claim} must be a NumericDate (seconds since the epoch, as a JSON number)")

    key = await registered_key(services, iss, kid)
    if not key.active:
        raise _invalid("unknown-issuer", "the issuer is not a registered, active organisation")
    if key.revoked_at is not None:
        raise _invalid("revoked-kid", f"key {kid!r} was revoked")
    if key.alg != alg:
        raise _invalid("alg-mismatch", f"key {kid!r} is registered for {key.alg}, the token says {alg}")

    settings = services.settings
    try:
        claims = jwt.decode(
            token, key.verifier, algorithms=[key.alg], audience=settings.audience, issuer=iss,
            leeway=settings.clock_skew_seconds, options={"require": ["exp", "iat", "jti", "iss", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise _invalid("expired", f"the token has expired: exp lies more than the allowed clock skew of "
                       f"{settings.clock_skew_seconds} s in the past; mint a fresh token") from None
    except jwt.ImmatureSignatureError:
        raise _invalid("not-yet-valid", f"the token is not valid yet: nbf or iat lies more than the allowed clock skew of "
                       f"{settings.clock_skew_seconds} s in the future; check the sender's clock") from None
    except jwt.InvalidAudienceError:
        raise _invalid("wrong-audience", f"wrong audience: the gateway is {settings.audience!r}") from None
    except jwt.InvalidSignatureError as exc:
        raise _invalid("bad-signature", f"token rejected: {exc}") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _invalid("missing-claim", f"token rejected: {exc}") from None
    except jwt.InvalidIssuerError as exc:
        raise _invalid("bad-issuer", f"token rejected: {exc}") from None
    except jwt.PyJWTError as exc:
        raise _invalid("rejected", f"token rejected: {exc}") from None
    if claims["exp"] - time.time() > settings.token_max_lifetime_seconds + settings.clock_skew_seconds:
        raise _invalid("lifetime-too-long", f"exp lies more than {settings.token_max_lifetime_seconds} s ahead "
                       f"(plus the clock skew of {settings.clock_skew_seconds} s)")
    jti = claims["jti"]
    if not isinstance(jti, str) or not 8 <= len(jti) <= 200:
        raise _invalid("bad-jti", "jti must be a string of 8 to 200 characters")

    claim = JtiClaim(iss=iss, jti=jti, expires_at=datetime.fromtimestamp(claims["exp"], timezone.utc))
    if not defer_jti:
        await burn_jti(services, claim)
    scopes = granted_scopes(key.kind, claims.get("scope", ""))
    return Caller(key.oin, key.kind, key.name, key.cbs_code, key.parent_oin, scopes, jti,
                  jti_claim=claim if defer_jti else None)


async def registered_key(services: Services, iss: str, kid: str) -> KeyEntry:
    """The organisation ``iss`` and its key ``kid``: from the key cache, else one query (then cached).
    Unknown issuers and kids are refused and never cached."""
    cache = key_cache(services)
    entry = cache.get(iss, kid)
    if entry is not None:
        return entry
    generation = cache.generation
    async with services.db.read() as session:  # organisation and key in one round trip
        row = (await session.exec(
            select(Organisation, OrganisationKey).outerjoin(
                OrganisationKey, and_(OrganisationKey.oin == Organisation.oin, OrganisationKey.kid == kid))
            .where(Organisation.oin == iss)
        )).first()
    org, key = row if row else (None, None)
    if org is None or not org.active:
        raise _invalid("unknown-issuer", "the issuer is not a registered, active organisation")
    if key is None:
        raise _invalid("unknown-kid", f"unknown kid {kid!r} for this organisation")
    try:
        verifier = jwt.PyJWK(key.jwk, algorithm=key.alg).key
    except (jwt.PyJWTError, ValueError, KeyError) as exc:  # a stored key this library cannot use
        raise _invalid("rejected", f"token rejected: {exc}") from None
    entry = KeyEntry(oin=org.oin, kind=org.kind, name=org.name, cbs_code=org.cbs_code, parent_oin=org.parent_oin,
                     active=org.active, alg=key.alg, revoked_at=key.revoked_at, verifier=verifier, jwk=key.jwk,
                     loaded_at=time.monotonic())
    cache.put(iss, kid, entry, generation)
    return entry


async def consume_jti(session: AsyncSession, claim: JtiClaim) -> None:
    """Insert the UsedToken row in this session's transaction and flush; a duplicate raises the same
    token-replayed Problem (with reason "replayed") as today. Does not set ``consumed``: the caller
    sets it after its commit."""
    try:  # one statement of its own: an IntegrityError here is this jti, never another pending row
        await (await core(session)).execute(_USED_TOKEN, _record(claim))
    except IntegrityError:
        raise _replayed() from None


async def burn_jti(services: Services, claim: JtiClaim) -> None:
    """Record ``claim`` in a transaction of its own (a replay: token-replayed), and mark it consumed."""
    try:
        async with services.db.write() as session:
            await (await core(session)).execute(_USED_TOKEN, _record(claim))
    except IntegrityError:
        raise _replayed() from None
    claim.consumed = True


_USED_TOKEN = insert(UsedToken.__table__)  # built once (a statement built per request costs as much as running it)


def _record(claim: JtiClaim) -> dict:
    return {"iss": claim.iss, "jti": claim.jti, "expires_at": claim.expires_at}


_JSON_TYPES = {list: "array", dict: "object", int: "number", float: "number", bool: "boolean", type(None): "null"}


def granted_scopes(kind_name: str, requested: object) -> frozenset[str]:
    """The token's ``scope`` claim, all of it or nothing: callers sign their own tokens, so a scope they
    may not hold is a mistake to report (403, naming what the kind may hold), never silently dropped."""
    if not isinstance(requested, str):  # RFC 9068 / RFC 8693: one space-delimited string
        raise _invalid("bad-scope-claim", f"scope must be one space-delimited string, e.g. \"messages:send messages:read\", "
                       f"not a JSON {_JSON_TYPES.get(type(requested), 'value')}")
    kind = KINDS.get(kind_name)
    allowed = kind.scopes if kind else frozenset()
    asked = frozenset(requested.split())
    refused = asked - allowed
    if refused:
        known = {str(s) for s in Scope}
        unknown = sorted(refused - known)
        parts = []
        if refused & known:
            parts.append(f"a {kind_name} organisation may not hold scope(s) {' '.join(sorted(refused & known))}")
        if unknown:
            parts.append(f"no kind may hold the unknown scope(s) {' '.join(unknown)}")
        raise with_reason("scope-not-allowed", Problem(
            "insufficient-scope",
            f"the token asks for what it cannot get: {', and '.join(parts)}. "
            f"A {kind_name} may hold: {' '.join(sorted(allowed))} (ask only for what the request needs)",
            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'}))
    return asked


async def prune_used_tokens(services: Services) -> int:
    """Forget jtis whose token has expired (plus the clock skew): they can no longer be replayed."""
    cutoff = services.clock.now() - timedelta(seconds=services.settings.clock_skew_seconds)
    async with services.db.write() as session:
        result = await session.exec(delete(UsedToken).where(UsedToken.expires_at < cutoff))
        return result.rowcount or 0
