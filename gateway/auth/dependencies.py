"""FastAPI dependencies: ``Depends(require(Scope.MESSAGES_SEND))`` authenticates, checks scope and rate."""
from __future__ import annotations

import math
import time
from collections.abc import Callable

from fastapi import Request

from gateway.auth.tokens import Caller, verify_token, with_reason
from gateway.metrics import TOKEN_FAILURES
from gateway.problems import Problem


class RateLimiter:
    """Token bucket per organisation, per process (front the gateway with a shared limiter to go wider)."""

    def __init__(self, per_minute: int):
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds until a request is allowed again."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate


def require(*scopes: str) -> Callable:
    """Any one of ``scopes`` suffices; none given: any valid token (the organisation's own, harmless views)."""

    async def dependency(request: Request) -> Caller:
        services = request.app.state.services
        try:
            caller = await verify_token(services, request.headers.get("authorization"))
        except Problem as exc:  # the one place token refusals are counted, by reason
            TOKEN_FAILURES.labels(getattr(exc, "token_failure", None) or exc.type.slug).inc()
            raise
        wait = request.app.state.rate_limiter.take(caller.oin)
        if wait:
            raise Problem("rate-limited", f"more than {services.settings.rate_limit_per_minute} requests a minute",
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

    return dependency
