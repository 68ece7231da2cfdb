"""brb-client: talk to the Berichtenbox Re-integratie gateway from Python.

``Identity`` + ``TokenAuth`` sign a fresh token for every request (plug ``TokenAuth`` into any httpx
client, also one generated from ``openapi.yaml``); ``GatewayClient`` adds idempotent sends, retries and
the resumable inbox; ``verify_webhook`` checks a callback's Standard Webhooks signature; ``verify_receipt``
the gateway's signed receipt of a send or an acknowledgement (against its /.well-known/jwks.json). It imports
nothing of the gateway: install it on its own (``pip install ./adapters/brb-client``)."""
from brb_client.auth import DEFAULT_AUDIENCE, Identity, TokenAuth, public_part
from brb_client.client import GatewayClient, GatewayProblem, InboxPage
from brb_client.cursor import CursorFile
from brb_client.receipts import ReceiptInvalid, verify_receipt
from brb_client.webhooks import WebhookVerificationError, verify_webhook

__all__ = ["DEFAULT_AUDIENCE", "CursorFile", "GatewayClient", "GatewayProblem", "Identity", "InboxPage", "TokenAuth", "public_part",
           "ReceiptInvalid", "WebhookVerificationError", "verify_receipt", "verify_webhook"]
