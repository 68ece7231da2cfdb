"""Webhook subscriptions and the dispatcher (a Kafka consumer group) with signed, retried callbacks."""
