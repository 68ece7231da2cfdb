"""What the adapter sent, in a local SQLite file (stdlib sqlite3): one row per Idempotency-Key.

A row with outcome ``sent`` is never sent again (a re-run sends nothing new); ``refused`` and ``failed``
rows are tried again on the next run (competence may have been established since, the gateway may be
back). Holds the SKN and IRIS ids, never a BSN, a name or a payload."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from adapters.local_file import LocalFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS sends (
    idempotency_key TEXT PRIMARY KEY,
    skn TEXT NOT NULL,
    message_type TEXT NOT NULL,
    source_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('sent', 'refused', 'failed')),
    message_id TEXT,
    problem_type TEXT,
    detail TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    first_attempt_at TEXT NOT NULL,
    last_attempt_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sends_by_skn ON sends (skn, message_type, source_id);
"""


@dataclass(frozen=True)
class Row:
    idempotency_key: str
    skn: str
    message_type: str
    source_id: str
    recipient: str
    purpose: str
    outcome: str
    message_id: str | None
    problem_type: str | None
    detail: str | None
    attempts: int
    first_attempt_at: str
    last_attempt_at: str


class State(LocalFile):
    def __init__(self, path: str | Path):
        super().__init__(path, SCHEMA)

    def was_sent(self, key: str) -> bool:
        return self.db.execute("SELECT 1 FROM sends WHERE idempotency_key = ? AND outcome = 'sent'", (key,)).fetchone() is not None

    def record(self, *, key: str, skn: str, message_type: str, source_id: str, recipient: str, purpose: str,
               outcome: str, message_id: str | None = None, problem_type: str | None = None, detail: str | None = None) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self.db:
            self.db.execute(
                """INSERT INTO sends (idempotency_key, skn, message_type, source_id, recipient, purpose, outcome,
                                      message_id, problem_type, detail, attempts, first_attempt_at, last_attempt_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)
                   ON CONFLICT (idempotency_key) DO UPDATE SET outcome = excluded.outcome,
                       message_id = excluded.message_id, problem_type = excluded.problem_type, detail = excluded.detail,
                       attempts = sends.attempts + 1, last_attempt_at = excluded.last_attempt_at""",
                (key, skn, message_type, source_id, recipient, purpose, outcome, message_id, problem_type,
                 (detail or "")[:500] or None, now, now))

    def rows(self) -> list[Row]:
        cursor = self.db.execute(f"SELECT {', '.join(Row.__dataclass_fields__)} FROM sends ORDER BY first_attempt_at, idempotency_key")
        return [Row(*r) for r in cursor.fetchall()]

    def counts(self) -> Counter:
        """(message type, outcome) -> number of keys."""
        return Counter({(t, o): n for t, o, n in self.db.execute(
            "SELECT message_type, outcome, COUNT(*) FROM sends GROUP BY message_type, outcome")})
