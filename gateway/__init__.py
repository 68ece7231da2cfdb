"""The Berichtenbox Re-integratie gateway: HTTP API, persistence, audit log, outbox relay, webhooks."""
API_VERSION = "1.5.0"  # semantic version of the published API; CHANGELOG.md says what changed
