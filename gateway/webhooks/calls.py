"""One webhook call, the one way every callback is made (the dispatcher's deliveries and a subscriber's
ping): the SSRF check first, then a POST of the CloudEvent signed the Standard Webhooks way, with the
gateway's ``User-Agent`` and the W3C ``traceparent`` of the calling span (the event's own trace is in the
CloudEvent's ``traceparent`` attribute; the calling span links to it). The outcome is the HTTP status
received or why none was."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks import Webhook

from gateway import API_VERSION, telemetry
from gateway.services import Services
from gateway.webhooks.subscriptions import non_public_address

USER_AGENT = f"Berichtenbox-Reintegratie-Webhooks/{API_VERSION}"
CONTENT_TYPE = "application/cloudevents+json"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None  # the HTTP status received; None when no answer came (or nothing was sent)
    error: str | None  # None: delivered (a 2xx)

    @property
    def delivered(self) -> bool:
        return self.error is None


def signed_headers(secrets: list[str], event_id: str, body: str, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers (``webhook-id`` = the event id; one signature per secret, space
    separated, as during a secret rotation's overlap) and the gateway's User-Agent."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(Webhook(secret).sign(event_id, now, body) for secret in secrets),
        "content-type": CONTENT_TYPE,
        "user-agent": USER_AGENT,
    }


async def refused_target(services: Services, url: str) -> str | None:
    """Resolve again before each call: a name that was public at subscription time may point into our
    own network now (DNS rebinding). Then nothing is sent."""
    settings = services.settings
    if settings.allow_insecure_loopback_webhooks:
        return None
    found = await non_public_address(url, settings.webhook_timeout_seconds)
    return None if found is None else f"target resolves to a private address ({found})"


async def call(services: Services, client: httpx.AsyncClient, url: str, secrets: list[str], event_id: str, body: str) -> Outcome:
    """POST one signed event to ``url``; a non-2xx answer or a connection error is the outcome's error."""
    refused = await refused_target(services, url)
    if refused is not None:
        return Outcome(None, refused)
    telemetry.link_to(telemetry.traceparent_of_event(body))
    headers = telemetry.inject(signed_headers(secrets, event_id, body, services.clock.now()))
    try:
        response = await client.post(url, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:  # the text may quote the URL: keep a subscriber's query string out of logs
        text = f"{exc.__class__.__name__}: {exc}"
        query = urlsplit(url).query
        return Outcome(None, (text.replace(query, "…") if query else text)[:500])
    if 200 <= response.status_code < 300:
        return Outcome(response.status_code, None)
    return Outcome(response.status_code, f"HTTP {response.status_code}")
