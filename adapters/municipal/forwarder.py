"""The municipal case system, as the connector sees it: one HTTP endpoint that takes JSON.

``POST <case-system URL>`` with ``Idempotency-Key: <message id>`` (or ``<message id>:<action>``) and a body
``{"action": "deliver" | "replace" | "delete", "messageId", "messageType", "subjectId", "senderOin",
"purpose", "payload", "releasedSections", "reason"}``. For ``deliver`` the answer decides the acknowledgement:

- 2xx with ``{"status": "accepted"}`` (or an empty body) -> ``accepted``;
- 2xx with ``{"status": "rejected", "reason": "..."}`` -> ``rejected`` with that reason;
- 4xx (not 408/429) -> ``rejected``, the reason taken from the body (``reason``, ``detail`` or its text);
- 5xx, 408, 429 or no connection -> retried; still failing: the message stays ``received`` and is offered
  again on the next sweep (``Connector.settle_pending``).

``replace`` (consent withdrawn: the payload as the gateway returns it now) and ``delete`` (retention purge,
or the gateway no longer releases the message) need only a 2xx."""
from __future__ import annotations

from dataclasses import dataclass

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter


class CaseSystemUnavailable(Exception):
    pass


@dataclass(frozen=True)
class Verdict:
    status: str  # accepted | rejected
    reason: str | None = None


class CaseSystem:
    def __init__(self, url: str, *, attempts: int = 3, timeout: float = 15.0, headers: dict | None = None):
        self.url = url
        self.attempts = attempts
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers or {})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, body: dict, key: str) -> httpx.Response:
        def retryable(exc: BaseException) -> bool:
            return isinstance(exc, (httpx.TransportError, CaseSystemUnavailable))

        retrying = AsyncRetrying(stop=stop_after_attempt(self.attempts), wait=wait_exponential_jitter(multiplier=0.2, max=5),
                                 retry=retry_if_exception(retryable), reraise=True)
        async for attempt in retrying:
            with attempt:
                try:
                    response = await self._http.post(self.url, json=body, headers={"Idempotency-Key": key})
                except httpx.TransportError as exc:
                    raise CaseSystemUnavailable(f"case system unreachable: {exc.__class__.__name__}") from exc
                if response.status_code >= 500 or response.status_code in (408, 429):
                    raise CaseSystemUnavailable(f"case system answered {response.status_code}")
                return response
        raise AssertionError("unreachable")

    async def deliver(self, message: dict) -> Verdict:
        body = {"action": "deliver", **_describe(message)}
        response = await self._post(body, message["message_id"])
        answer = _json(response)
        if response.status_code >= 400:
            reason = answer.get("reason") or answer.get("detail") or response.text[:500] or f"HTTP {response.status_code}"
            return Verdict("rejected", str(reason)[:2000])
        if str(answer.get("status", "accepted")).lower() == "rejected":
            return Verdict("rejected", str(answer.get("reason") or "rejected by the case system")[:2000])
        return Verdict("accepted")

    async def tell(self, action: str, message: dict, reason: str) -> None:
        """``replace`` or ``delete``: the case system's copy follows the local one."""
        body = {"action": action, **_describe(message), "reason": reason}
        if action == "delete":
            body["payload"] = None
        response = await self._post(body, f"{message['message_id']}:{action}:{reason}")
        if response.status_code >= 400:
            raise CaseSystemUnavailable(f"case system refused {action}: {response.status_code}")


def _describe(message: dict) -> dict:
    return {"messageId": message["message_id"], "messageType": message["type"], "version": message.get("version"),
            "subjectId": message["subject_id"], "senderOin": message.get("sender_oin"), "purpose": message["purpose"],
            "payload": message.get("payload"), "releasedSections": message.get("released") or []}


def _json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
