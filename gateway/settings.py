"""Every setting of the gateway, documented once, here. Read from the environment (prefix ``BRB_``)."""
from __future__ import annotations

import os
from functools import cached_property

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


MAX_PAGE_SIZE = 200


class Settings(BaseSettings):
    # Secrets may also be files named after the variable (brb_pseudonym_key, ...) in BRB_SECRETS_DIR,
    # e.g. /run/secrets for Docker/Kubernetes secrets.
    model_config = SettingsConfigDict(env_prefix="BRB_", env_file=None, extra="ignore",
                                      secrets_dir=os.environ.get("BRB_SECRETS_DIR"))

    # --- storage -----------------------------------------------------------------------------
    database_url: str = Field("sqlite+aiosqlite:///./.var/brb.sqlite3", description="SQLAlchemy async URL: sqlite+aiosqlite:///… or postgresql+asyncpg://…")
    database_schema: str | None = Field(None, description="PostgreSQL schema (search_path) to use; tests use one per test")

    # --- Kafka ---------------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "BRB_KAFKA_BOOTSTRAP_SERVERS")
    )
    kafka_topic_prefix: str = Field("brb", description="topics are <prefix>.events and <prefix>.audit")

    # --- identity and secrets (no usable default: the service refuses to start without them) ---
    audience: str = Field("urn:nl:brb:gateway", description="the `aud` every caller's JWT must carry")
    pseudonym_key: SecretStr | None = Field(None, description="HMAC key that turns a BSN/SKN into the subject pseudonym")
    encryption_keys: SecretStr | None = Field(
        None, description="key ring for payloads at rest: 'kid:base64-32-bytes,kid2:…'; the LAST one encrypts new data"
    )
    audit_chain_key: SecretStr | None = Field(None, description="HMAC key of the audit hash chain")
    audit_checkpoint_file: str | None = Field(
        None, description="where signed checkpoints of the audit chain (head seq and hash) are kept OUTSIDE the "
        "database, one JSON line each; they are also published on the audit topic. The verifier checks the "
        "chain against the newest one, so a rewritten or truncated tail is detected")
    audit_checkpoint_interval_seconds: float = Field(60.0, description="how often a checkpoint is written (by the retention/worker loop)")

    # --- limits ----------------------------------------------------------------------------------
    max_body_bytes: int = 1_000_000
    default_page_size: int = 50
    max_page_size: int = Field(MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="largest pageSize (the API declares this bound)")
    rate_limit_per_minute: int = Field(600, description="requests per organisation per minute, per gateway process")
    token_max_lifetime_seconds: int = 3600
    clock_skew_seconds: int = 60

    # --- retention (days) ----------------------------------------------------------------------
    retention_after_release_days: dict[str, int] = Field(
        default_factory=lambda: {"municipality": 183, "mayor": 183},
        description="per recipient kind: purge a delivered payload this many days after the release date",
    )
    retention_without_release_days: dict[str, int] = Field(
        default_factory=lambda: {"municipality": 365, "mayor": 365},
        description="per recipient kind: purge after this many days from delivery when no release date is known",
    )
    sender_retention_days: dict[str, int] = Field(
        default_factory=lambda: {"dji": 3650, "probation": 3650, "municipality": 365, "mayor": 365},
        description="per sender kind: how long the sender's own copy is kept (penitentiary dossier: ten years)",
    )

    # --- workers ---------------------------------------------------------------------------------
    run_workers: bool = Field(False, description="run relay, dispatcher and retention inside the gateway process")
    relay_batch_size: int = 200
    relay_idle_seconds: float = 0.2
    relay_lease_seconds: float = 30.0
    broker_backoff_max_seconds: float = Field(30.0, description="longest wait between tries to reach Kafka (relay, dispatcher)")
    webhook_max_attempts: int = 8
    webhook_backoff_base_seconds: float = 1.0
    webhook_backoff_max_seconds: float = 300.0
    webhook_timeout_seconds: float = 10.0
    allow_insecure_loopback_webhooks: bool = Field(False, description="accept http:// loopback callbacks and callbacks to private, loopback or link-local addresses (demo, tests; never in production)")
    retention_interval_seconds: float = 3600.0

    # --- logs ------------------------------------------------------------------------------------
    log_level: str = Field("INFO", pattern="^(?i:debug|info|warning|error|critical)$",
                           description="level of the gateway's own loggers (brb.*); JSON lines on stderr, see README 'Logs'")

    @cached_property
    def events_topic(self) -> str:
        return f"{self.kafka_topic_prefix}.events"

    @cached_property
    def audit_topic(self) -> str:
        return f"{self.kafka_topic_prefix}.audit"

    def require_secrets(self) -> None:
        missing = [n for n in ("pseudonym_key", "encryption_keys", "audit_chain_key") if getattr(self, n) is None]
        if missing:
            raise RuntimeError(
                "missing secrets: " + ", ".join("BRB_" + n.upper() for n in missing)
                + " (run `brb demo` for a local setup with generated demo secrets)"
            )
