"""The audit log: every processing of personal data, append-only and hash-chained."""
