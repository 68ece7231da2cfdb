"""The small client every adapter (and any connector vendor) uses to talk to the gateway over HTTP.

It signs a fresh token for every request (the gateway accepts a ``jti`` once: a static token fails on the
second call), retries what may be retried (connection errors, 429 with ``Retry-After``, 502/503/504) with
exponential backoff and jitter, and sends every message with an ``Idempotency-Key`` so a retried or
re-run send is answered with the first receipt instead of a second message. Problems come back as
``GatewayProblem`` carrying the RFC 9457 body. Nothing here imports ``gateway``: copy it freely."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


class GatewayProblem(Exception):
    """The gateway refused a request; ``type`` is the problem's short name (e.g. ``consent-required``)."""

    def __init__(self, status: int, body: dict):
        self.status, self.body = status, body
        self.type = str(body.get("type", "")).rsplit("/", 1)[-1] or f"http-{status}"
        super().__init__(f"{status} {self.type}: {body.get('detail', '')}")


class _Retryable(Exception):
    def __init__(self, response: httpx.Response):
        self.response = response
        super().__init__(f"{response.status_code} from the gateway")


@dataclass(frozen=True)
class Identity:
    """Who an adapter acts as: its organisation's OIN, private JWK (with ``kid``) and the scopes it asks for."""

    oin: str
    private_jwk: dict
    scope: str
    audience: str = "urn:nl:brb:gateway"

    @classmethod
    def from_file(cls, oin: str, key_file: str | Path, scope: str, audience: str = "urn:nl:brb:gateway") -> "Identity":
        return cls(oin, json.loads(Path(key_file).read_text()), scope, audience)

    def token(self, lifetime: int = 60) -> str:
        now = int(time.time())
        claims = {"iss": self.oin, "sub": self.oin, "aud": self.audience, "iat": now, "exp": now + lifetime,
                  "jti": uuid.uuid4().hex, "scope": self.scope}
        alg = self.private_jwk.get("alg", "ES256")
        key = jwt.PyJWK(self.private_jwk, algorithm=alg).key
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": self.private_jwk["kid"]})


class GatewayClient:
    """``async with GatewayClient(base_url, identity) as gw: await gw.send(...)``."""

    def __init__(self, base_url: str, identity: Identity, *, attempts: int = 5, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.identity = identity
        self.attempts = attempts
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport)

    async def __aenter__(self) -> "GatewayClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None,
                      headers: dict | None = None) -> httpx.Response:
        """One API call, signed afresh on every attempt; a 4xx other than 429 is raised at once."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts), wait=wait_exponential_jitter(multiplier=0.2, max=10),
            retry=retry_if_exception(lambda e: isinstance(e, (_Retryable, httpx.TransportError))), reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._http.request(
                        method, path, json=json_body, params=params,
                        headers={"Authorization": f"Bearer {self.identity.token()}", **(headers or {})})
                    if response.status_code in RETRYABLE_STATUS:
                        raise _Retryable(response)
        except _Retryable as exc:
            response = exc.response
        if response.status_code >= 400:
            raise GatewayProblem(response.status_code, _body(response))
        return response

    async def send(self, type_: str, version: int, purpose: str, recipients: list[str], payload: dict,
                   idempotency_key: str) -> dict:
        """Send one message; the same ``idempotency_key`` with the same body answers the first receipt again."""
        response = await self.request(
            "POST", "/api/v1/messages", headers={"Idempotency-Key": idempotency_key},
            json_body={"type": type_, "version": version, "purpose": purpose, "recipients": recipients, "payload": payload})
        return response.json()

    async def read(self, message_id: str, purpose: str) -> dict:
        return (await self.request("GET", f"/api/v1/messages/{message_id}", params={"purpose": purpose})).json()

    async def acknowledge(self, message_id: str, status: str, reason: str | None = None) -> dict:
        body = {"status": status} | ({"reason": reason} if reason else {})
        return (await self.request("POST", f"/api/v1/messages/{message_id}/acknowledgements", json_body=body)).json()

    async def pages(self, path: str, params: dict | None = None):
        """Every item of a cursor-paged list (inbox, sent, audit records), page after page."""
        params = dict(params or {})
        while True:
            page = (await self.request("GET", path, params=params)).json()
            for item in page["items"]:
                yield item
            if not page.get("nextCursor"):
                return
            params["cursor"] = page["nextCursor"]


def _body(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:500]}
    return body if isinstance(body, dict) else {"detail": str(body)[:500]}
