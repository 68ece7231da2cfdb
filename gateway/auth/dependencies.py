"""FastAPI dependencies: ``Depends(require(Scope.MESSAGES_SEND))`` authenticates, checks scope and rate."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable

from fastapi import Request

from gateway.auth.tokens import Caller, burn_jti, verify_token, with_reason
from gateway.metrics import TOKEN_FAILURES
from gateway.problems import Problem

log = logging.getLogger("brb.auth")


class RateLimiter:
    """Token bucket per organisation, per process (front the gateway with a shared limiter to go wider).
    An organisation's limit is ``per_minute`` unless ``take`` is given another (BRB_RATE_LIMIT_OVERRIDES)."""

    def __init__(self, per_minute: int, overrides: dict[str, int] | None = None):
        self.per_minute = per_minute
        self.overrides = dict(overrides or {})
        self._buckets: dict[str, tuple[float, float]] = {}

    def limit(self, key: str, per_minute: int | None = None) -> int:
        return per_minute or self.overrides.get(key) or self.per_minute

    def take(self, key: str, per_minute: int | None = None) -> float:
        """0 when allowed, else the seconds until a request is allowed again."""
        capacity = float(self.limit(key, per_minute))
        rate = capacity / 60.0
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / rate


def require(*scopes: str, jti_in_transaction: bool = False) -> Callable:
    """Any one of ``scopes`` suffices; none given: any valid token (the organisation's own, harmless views).

    ``jti_in_transaction``: the token's jti is not written here but handed to the handler (``caller.jti_claim``,
    passed on by ``caller.actor``) for its unit of work to record in its own transaction (``consume_jti``).
    The dependency then yields: when the handler ended without recording it (it failed before its
    transaction, or took a path with none), the jti is burnt afterwards in a small transaction of its own.
    Declare it ``Depends(require(..., jti_in_transaction=True), scope="function")``: FastAPI runs the exit
    code of a function-scoped dependency before the response is sent (the default, "request", runs it after,
    when a client could already replay the token)."""

    async def verified(request: Request, defer_jti: bool) -> Caller:
        try:
            return await verify_token(request.app.state.services, request.headers.get("authorization"),
                                      defer_jti=defer_jti)
        except Problem as exc:  # the one place token refusals are counted, by reason
            TOKEN_FAILURES.labels(getattr(exc, "token_failure", None) or exc.type.slug).inc()
            raise

    async def dependency(request: Request) -> Caller:
        return _admit(request, await verified(request, defer_jti=False), scopes)

    async def in_transaction(request: Request) -> AsyncIterator[Caller]:
        caller = await verified(request, defer_jti=True)
        try:
            yield _admit(request, caller, scopes)
        except BaseException:
            await _burn_late(request, caller, quiet=True)
            raise
        await _burn_late(request, caller, quiet=False)

    return in_transaction if jti_in_transaction else dependency


def _admit(request: Request, caller: Caller, scopes: tuple[str, ...]) -> Caller:
    """Rate and scope, for a verified caller."""
    limiter = request.app.state.rate_limiter
    per_minute = limiter.limit(caller.oin)  # the limiter holds BRB_RATE_LIMIT_OVERRIDES (gateway/app.py)
    wait = limiter.take(caller.oin)
    if wait:
        raise Problem("rate-limited", f"more than {per_minute} requests a minute",
                      headers={"Retry-After": str(math.ceil(wait))})
    if scopes and not (caller.scopes & set(scopes)):
        TOKEN_FAILURES.labels("scope-missing").inc()
        raise with_reason("scope-missing", Problem(
            "insufficient-scope",
            f"this operation needs scope {' or '.join(scopes)}; the token holds "
            f"{caller.scope or 'no scope'} (ask for it in the token's scope claim)",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{" ".join(scopes)}"'}))
    request.state.caller = caller
    return caller


async def _burn_late(request: Request, caller: Caller, *, quiet: bool) -> None:
    """Record a deferred jti the handler did not consume. Already recorded (a concurrent replay got there
    first): a warning, the request's outcome stands. ``quiet`` (the handler failed): any other error is
    logged too, so the handler's own problem stays the answer."""
    claim = caller.jti_claim
    if claim is None or claim.consumed:
        return
    try:
        await burn_jti(request.app.state.services, claim)
    except Problem:  # token-replayed: the IntegrityError, translated by burn_jti
        log.warning("token.replayed-late", extra={"oin": caller.oin})
    except Exception:
        if not quiet:
            raise
        log.warning("token.burn-failed", exc_info=True, extra={"oin": caller.oin})

