"""The Berichtenbox Re-integratie gateway: HTTP API, persistence, audit log, outbox relay, webhooks."""
API_VERSION = "1.0.0"
