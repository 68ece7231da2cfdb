"""Prometheus metrics, every family declared here (one place: the dashboard in deploy/monitoring and the
alert rules name these). Labels never carry a BSN, a subject pseudonym or a message id; organisation OINs
only where noted (public identifiers of organisations, bounded in number)."""
from prometheus_client import Counter, Gauge, Histogram

# --- HTTP ---------------------------------------------------------------------------------------------
REQUESTS = Counter("brb_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("brb_http_request_seconds", "HTTP request latency", ["method", "route"])

# --- authentication and policy ------------------------------------------------------------------------
TOKEN_FAILURES = Counter("brb_token_failures_total", "tokens refused, by reason (a short stable code)", ["reason"])
POLICY_DECISIONS = Counter("brb_policy_decisions_total", "policy decisions per recipient at send and read time",
                           ["stage", "outcome", "rule"])

# --- the outbox and its relay -------------------------------------------------------------------------
EVENTS_PUBLISHED = Counter("brb_outbox_events_published_total", "outbox events confirmed by Kafka")
RELAY_ERRORS = Counter("brb_outbox_relay_errors_total", "relay rounds that failed to reach Kafka")
OUTBOX_BACKLOG = Gauge("brb_outbox_backlog", "outbox events not yet published (as the relay last saw)")
OUTBOX_OLDEST_AGE = Gauge("brb_outbox_oldest_pending_age_seconds", "age of the oldest unpublished outbox event (0: none)")

# --- webhooks -----------------------------------------------------------------------------------------
WEBHOOK_ATTEMPTS = Counter("brb_webhook_attempts_total", "webhook delivery attempts", ["outcome"])
WEBHOOK_BACKLOG = Gauge("brb_webhook_backlog", "webhook deliveries pending (as the dispatcher last saw)")
WEBHOOK_OLDEST_AGE = Gauge("brb_webhook_oldest_pending_age_seconds", "age of the oldest pending webhook delivery (0: none)")
WEBHOOK_DEAD_LETTERS = Gauge("brb_webhook_dead_letters", "webhook deliveries that failed every attempt, not replayed")
UNREADABLE_RECORDS = Counter("brb_webhook_unreadable_records_total",
                             "records on the events topic that are no CloudEvent of the gateway, passed over by the dispatcher")
DISPATCHER_LAG = Gauge("brb_dispatcher_consumer_lag", "records of the events topic the dispatcher has not consumed yet")

# --- workers ------------------------------------------------------------------------------------------
WORKER_LAST_SUCCESS = Gauge("brb_worker_last_success_timestamp_seconds", "when a worker last finished a round", ["worker"])
WORKER_FAILURES = Counter("brb_worker_item_failures_total", "items a worker set aside (dead-lettered) and went on", ["worker", "reason"])

# --- audit chain and keys -----------------------------------------------------------------------------
AUDIT_HEAD_SEQ = Gauge("brb_audit_chain_head_seq", "sequence number of the newest audit record this process wrote or saw")
AUDIT_VERIFY_INTACT = Gauge("brb_audit_chain_intact", "1 when the last chain verification found the chain intact, 0 when broken")
KEYRING_KEYS = Gauge("brb_keyring_keys", "payload key ring: keys this process holds (current=1 for the sealing key)",
                     ["key_id", "current"])
