"""Check that a callback came from the gateway: the Standard Webhooks signature over ``webhook-id``,
``webhook-timestamp`` (at most five minutes old) and the raw body, with the subscription's secret."""
from __future__ import annotations

from collections.abc import Mapping

from standardwebhooks import Webhook, WebhookVerificationError

__all__ = ["WebhookVerificationError", "verify_webhook"]


def verify_webhook(secret: str, headers: Mapping[str, str], body: bytes | str) -> dict:
    """The event (a CloudEvent as JSON) if the signature holds; else ``WebhookVerificationError``.
    Pass the body exactly as received, before any JSON parsing."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return Webhook(secret).verify(body if isinstance(body, str) else body.decode(), lowered)
