"""The gateway over HTTP: retries what may be retried (connection errors, 429 with ``Retry-After``,
502/503/504) with exponential backoff and jitter, sends every message with an ``Idempotency-Key`` (a
retried or re-run send is answered with the first receipt instead of a second message), and answers a
refusal with ``GatewayProblem`` carrying the RFC 9457 body."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from brb_client.auth import Identity, TokenAuth, public_part
from brb_client.cursor import CursorFile
from brb_client.proof import sign_payload

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
API = "/api/v1"


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
class InboxPage:
    items: list[dict]
    cursor: str  # where to resume: store it, pass it next time
    has_more: bool


class GatewayClient:
    """``async with GatewayClient(base_url, identity) as gw: await gw.send(...)``."""

    def __init__(self, base_url: str, identity: Identity, *, attempts: int = 5, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None,
                 sections: Callable[[str, int], Iterable[str]] | None = None):
        """``sections(type, version)``: the JSON Pointers of a contract's sections (``proof.section_pointers`` of
        its JSON Schema, or ``contracts.registry.section_pointers``). Given, every send is signed with the
        identity's key (brb_client/proof.py); the gateway may require it (BRB_REQUIRE_SIGNED_MESSAGES)."""
        self.auth = TokenAuth(identity)
        self.sections = sections
        self.attempts = attempts
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport, auth=self.auth,
                                       headers={"User-Agent": "brb-client/1.0"})

    @property
    def identity(self) -> Identity:
        return self.auth.identity

    @identity.setter
    def identity(self, identity: Identity) -> None:
        self.auth.identity = identity

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
                    response = await self._http.request(method, path, json=json_body, params=params, headers=headers)
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
        body = {"type": type_, "version": version, "purpose": purpose, "recipients": recipients, "payload": payload}
        if self.sections is not None:
            body["signature"] = sign_payload(payload, self.sections(type_, version), self.identity.private_jwk).as_request()
        response = await self.request("POST", f"{API}/messages", headers={"Idempotency-Key": idempotency_key}, json_body=body)
        return response.json()

    async def read(self, message_id: str, purpose: str) -> dict:
        return (await self.request("GET", f"{API}/messages/{message_id}", params={"purpose": purpose})).json()

    async def acknowledge(self, message_id: str, status: str, reason: str | None = None) -> dict:
        body = {"status": status} | ({"reason": reason} if reason else {})
        return (await self.request("POST", f"{API}/messages/{message_id}/acknowledgements", json_body=body)).json()

    async def inbox(self, cursor: str | None = None, page_size: int = 100, **filters: str) -> InboxPage:
        """One page of the inbox after ``cursor`` (None: from the start)."""
        params = {"pageSize": page_size, **filters, **({"cursor": cursor} if cursor else {})}
        page = (await self.request("GET", f"{API}/inbox", params=params)).json()
        return InboxPage(page["items"], page["nextCursor"], page["hasMore"])

    async def poll_inbox(self, store: CursorFile, page_size: int = 100) -> AsyncIterator[dict]:
        """Every message delivered since the cursor in ``store``; the cursor is saved after each page has
        been handled (handle a message idempotently: after a crash mid-page that page comes again)."""
        cursor = store.load()
        while True:
            page = await self.inbox(cursor, page_size)
            for item in page.items:
                yield item
            store.save(page.cursor)
            cursor = page.cursor
            if not page.has_more:
                return

    async def keys(self) -> list[dict]:
        """Your organisation's keys (public parts, with ``revokedAt``)."""
        return (await self.request("GET", f"{API}/organisations/me/keys")).json()["items"]

    async def rotate_key(self, new_private_jwk: dict) -> dict:
        """Register a new key (its proof signed by itself, the request by the current key), then sign with
        it from now on. Revoke the old one with ``revoke_key`` once nothing uses it any more."""
        new = self.identity.with_key(new_private_jwk)
        view = (await self.request("POST", f"{API}/organisations/me/keys",
                                   json_body={"jwk": public_part(new_private_jwk), "proof": new.proof_of_possession()})).json()
        self.identity = new
        return view

    async def revoke_key(self, kid: str) -> dict:
        return (await self.request("POST", f"{API}/organisations/me/keys/{kid}/revocation")).json()

    async def pages(self, path: str, params: dict | None = None) -> AsyncIterator[dict]:
        """Every item of a cursor-paged list (inbox, sent, audit records), page after page."""
        params = dict(params or {})
        while True:
            page = (await self.request("GET", path, params=params)).json()
            for item in page["items"]:
                yield item
            if not page.get("hasMore"):
                return
            params["cursor"] = page["nextCursor"]


def _body(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:500]}
    return body if isinstance(body, dict) else {"detail": str(body)[:500]}
