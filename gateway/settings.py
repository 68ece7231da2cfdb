"""Every setting of the gateway, documented once, here. Read from the environment (prefix ``BRB_``)."""
from __future__ import annotations

import os
from functools import cached_property

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
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
    database_password: SecretStr | None = Field(
        None, description="password for the database URL, kept out of it: set when the URL has none (e.g. the file "
        "brb_database_password in BRB_SECRETS_DIR)")

    # --- Kafka ---------------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "BRB_KAFKA_BOOTSTRAP_SERVERS")
    )
    kafka_topic_prefix: str = Field("brb", description="topics are <prefix>.events and <prefix>.audit")
    kafka_security_protocol: str = Field("PLAINTEXT", pattern="^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$",
                                         description="PLAINTEXT for a local broker; SASL_SSL in production")
    kafka_sasl_mechanism: str = Field("SCRAM-SHA-512", description="SASL mechanism: one principal per component")
    kafka_sasl_username: str | None = Field(None, description="this process's Kafka principal (e.g. brb-relay)")
    kafka_sasl_password: SecretStr | None = Field(None, description="its password (file brb_kafka_sasl_password)")
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle that signed the brokers' certificates")

    # --- identity and secrets (no usable default: the service refuses to start without them) ---
    audience: str = Field("urn:nl:brb:gateway", description="the `aud` every caller's JWT must carry")
    pseudonym_key: SecretStr | None = Field(None, description="HMAC key that turns a BSN/SKN into the subject pseudonym")
    encryption_keys: SecretStr | None = Field(
        None, description="key ring for payloads at rest: 'kid:base64-32-bytes,kid2:…' (static; prefer "
        "BRB_ENCRYPTION_KEYS_FILE). The LAST one seals only until the database records a sealing key: from then on "
        "`brb key promote` decides (deploy/runbook-key-rotation.md)"
    )
    encryption_keys_file: str | None = Field(
        None, description="key ring file, JSON {\"keys\": {kid: base64-32-bytes}, \"current\": kid}; every process "
        "re-reads it when it changes (checked every BRB_KEY_RELOAD_SECONDS) and on SIGHUP, no restart. Wins over "
        "BRB_ENCRYPTION_KEYS")
    key_reload_seconds: float = Field(2.0, gt=0, description="how often the key file's mtime is checked")
    key_heartbeat_seconds: float = Field(5.0, gt=0, description="how often a process records the ring keys it holds (table key_holders)")
    key_holder_window_seconds: float = Field(
        30.0, gt=0, description="a process that recorded its keys within this many seconds counts as live: "
        "`brb key promote/rewrap/retire` refuse unless every live process holds the key in question")
    audit_chain_key: SecretStr | None = Field(None, description="HMAC key of the audit hash chain")
    audit_checkpoint_file: str | None = Field(
        None, description="where signed checkpoints of the audit chain (head seq and hash) are kept OUTSIDE the "
        "database, one JSON line each; they are also published on the audit topic. The verifier checks the "
        "chain against the newest one, so a rewritten or truncated tail is detected")
    audit_checkpoint_interval_seconds: float = Field(60.0, description="how often a checkpoint is written (by the retention/worker loop)")
    receipt_signing_key: SecretStr | None = Field(
        None, description="the gateway's own signing key for its receipts (the 201 of a send, each acknowledgement; "
        "docs/signatures.md): a PRIVATE JWK as JSON, EC P-256 (ES256) with a kid. Its public part is served at "
        "/.well-known/jwks.json. Prefer the file brb_receipt_signing_key in BRB_SECRETS_DIR or BRB_RECEIPT_SIGNING_KEY_FILE")
    receipt_signing_key_file: str | None = Field(
        None, description="a file holding that private JWK, read at start-up (no rotation: one key). Wins over "
        "BRB_RECEIPT_SIGNING_KEY")

    # --- limits ----------------------------------------------------------------------------------
    max_body_bytes: int = 1_000_000
    default_page_size: int = 50
    max_page_size: int = Field(MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="largest pageSize (the API declares this bound)")
    rate_limit_per_minute: int = Field(600, description="requests per organisation per minute, per gateway process")
    rate_limit_overrides: dict[str, int] = Field(
        default_factory=dict, description="per organisation, a limit other than BRB_RATE_LIMIT_PER_MINUTE: a JSON object "
        "OIN -> requests per minute per gateway process, e.g. {\"00000001001234567000\": 6000} for DJI's bulk sync")
    key_cache_poll_seconds: float = Field(
        1.0, gt=0, description="how often every gateway process checks the registry version (table registry_version) "
        "and forgets its cached keys when it moved: a key revoked elsewhere is refused within about this long")
    key_cache_ttl_seconds: float = Field(
        30.0, ge=0, description="a cached organisation key is read again after this long at the latest (a row edited "
        "by hand, without the registry version); 0: no cache, every token check reads the registry")
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

    # --- trajectory deadlines (gateway/trajectory/norms.yaml) ------------------------------------
    deadline_days: dict[str, int] = Field(
        default_factory=dict, description="per norm, a number of days other than norms.yaml's, a JSON object norm -> "
        "days, e.g. {\"release-notified\": 21} (the release lead time: chain practice, no statute sets it)")
    deadline_interval_seconds: float = Field(
        300.0, gt=0, description="how often the deadline job marks what passed its day unmet as overdue (a round of "
        "the retention worker: in the gateway with BRB_RUN_WORKERS, or `brb retention`; once: `brb deadlines`)")

    # --- the audit officers' pages (/audit/, gateway/pages) --------------------------------------
    demo: bool = Field(False, description="demo mode (`brb demo` sets it): the pages' built-in development OpenID issuer "
                       "with the demo organisations' officers is served at /audit/dev-issuer; never in production")
    oidc_issuer: str | None = Field(None, description="the OpenID Connect issuer officers log in with (its "
                                    "/.well-known/openid-configuration is read); unset: the pages refuse to log anyone "
                                    "in, except in demo mode, where the built-in development issuer is used")
    public_url: str | None = Field(None, pattern=r"^https?://[^/?#]+$", description="the gateway's address as browsers "
                                   "reach it (https://brb.example.nl, no path): the pages' OpenID callback is "
                                   "<public URL>/audit/callback. Unset: taken from the request (the demo)")
    oidc_client_id: str = Field("brb-audit-pages", description="the pages' client id at the issuer")
    oidc_client_secret: SecretStr | None = Field(None, description="the pages' client secret at the issuer (unset: a public client; PKCE either way)")
    oidc_organisation_claim: str = Field("brb_organisation", description="ID-token claim holding the officer's organisation (its OIN)")
    oidc_role_claim: str = Field("brb_role", description="ID-token claim holding the officer's role: privacy-officer (an FG, "
                                 "organisation kind auditor) or inspector (kind inspectorate)")
    session_secret: SecretStr | None = Field(None, description="key that signs the pages' session cookie (at least 32 characters); "
                                             "unset: the pages are not served, except in demo mode (a key per start)")
    session_max_age_seconds: int = Field(8 * 3600, ge=60, le=7 * 86400, description="an officer's session ends this long after login")
    session_idle_seconds: int = Field(1800, ge=60, description="an officer's session ends when not used for this long "
                                      "(measured to the minute: its last use is recorded at most once a minute)")
    session_cookie_secure: bool = Field(True, description="send the session cookie over HTTPS only (the demo on http://127.0.0.1 turns it off)")

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
    require_signed_messages: bool = Field(False, description="refuse a message without the sender's signature "
                                          "(signature-required); off for one release, then on (docs/signatures.md)")
    allow_insecure_loopback_webhooks: bool = Field(False, description="accept http:// loopback callbacks and callbacks to private, loopback or link-local addresses (demo, tests; never in production)")
    retention_interval_seconds: float = 3600.0
    worker_stuck_factor: float = Field(5.0, gt=0, description="a worker with no finished round for this many of its intervals is 'stuck' (readiness 503)")
    worker_stuck_min_seconds: float = Field(60.0, ge=0, description="the shortest stuck window, for workers with short intervals (relay, dispatcher)")
    health_port: int = Field(8081, ge=0, le=65535, description="port of /health/live, /health/ready and /metrics of a worker process (brb relay, dispatcher, retention); 0: none")

    # --- logs ------------------------------------------------------------------------------------
    log_level: str = Field("INFO", pattern="^(?i:debug|info|warning|error|critical)$",
                           description="level of the gateway's own loggers (brb.*); JSON lines on stderr, see README 'Logs'")

    # --- traces (OpenTelemetry) ------------------------------------------------------------------
    otel_exporter_otlp_endpoint: str | None = Field(None, description="OTLP/HTTP collector (http://collector:4318); unset: spans are not exported (trace ids still are in logs, responses and events)")
    otel_service_name: str = Field("brb-gateway", description="service.name of this process's spans (e.g. brb-relay for the relay)")

    @field_validator("rate_limit_overrides")
    @classmethod
    def _overrides_by_oin(cls, value: dict[str, int]) -> dict[str, int]:
        bad = [k for k, v in value.items() if not (len(k) == 20 and k.isdigit()) or v < 1]
        if bad:
            raise ValueError(f"BRB_RATE_LIMIT_OVERRIDES maps 20-digit OINs to a positive number per minute; not: {', '.join(bad)}")
        return value

    @model_validator(mode="after")
    def _password_into_url(self) -> "Settings":
        """Put ``database_password`` into a PostgreSQL URL that has none, so the secret never sits in the URL's source."""
        if self.database_password is not None and self.database_url.startswith("postgresql"):
            from sqlalchemy.engine import make_url

            url = make_url(self.database_url)
            if url.password is None:
                self.database_url = url.set(password=self.database_password.get_secret_value()).render_as_string(hide_password=False)
        return self

    def kafka_options(self) -> dict:
        """Security keyword arguments for every aiokafka client of the service (empty for PLAINTEXT)."""
        options: dict = {}
        if self.kafka_security_protocol != "PLAINTEXT":
            options["security_protocol"] = self.kafka_security_protocol
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(cafile=self.kafka_ssl_cafile)
        if self.kafka_security_protocol.startswith("SASL"):
            options.update(sasl_mechanism=self.kafka_sasl_mechanism, sasl_plain_username=self.kafka_sasl_username,
                           sasl_plain_password=self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None)
        return options

    @cached_property
    def events_topic(self) -> str:
        return f"{self.kafka_topic_prefix}.events"

    @cached_property
    def audit_topic(self) -> str:
        return f"{self.kafka_topic_prefix}.audit"

    def require_secrets(self) -> None:
        files = {"encryption_keys": self.encryption_keys_file, "receipt_signing_key": self.receipt_signing_key_file}
        missing = [n for n in ("pseudonym_key", "encryption_keys", "audit_chain_key", "receipt_signing_key")
                   if getattr(self, n) is None and not files.get(n)]
        if missing:
            raise RuntimeError(
                "missing secrets: " + ", ".join("BRB_" + n.upper() for n in missing)
                + " (run `brb demo` for a local setup with generated demo secrets)"
            )
