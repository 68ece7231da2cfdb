"""Prometheus metrics. Labels never carry a BSN or a subject pseudonym."""
from prometheus_client import Counter, Histogram

REQUESTS = Counter("brb_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("brb_http_request_seconds", "HTTP request latency", ["method", "route"])
EVENTS_PUBLISHED = Counter("brb_outbox_events_published_total", "outbox events confirmed by Kafka")
RELAY_ERRORS = Counter("brb_outbox_relay_errors_total", "relay rounds that failed to reach Kafka")
WEBHOOK_ATTEMPTS = Counter("brb_webhook_attempts_total", "webhook delivery attempts", ["outcome"])
