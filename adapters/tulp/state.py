"""The adapter's own memory, in a local SQLite file: per export source, detainee and message slot what was
sent (Idempotency-Key, content hash, the gateway's message id and receipt), and the last refusal.

A message is skipped when the latest message sent for its slot has the same key: the same export sends
nothing new. The row is committed right after the gateway's 201, so an interrupted run resumes where it
stopped (and a message sent but not recorded is answered by the gateway's idempotency with its first
receipt, so it is never stored twice)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from adapters.local_file import LocalFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL, skn TEXT NOT NULL, kind TEXT NOT NULL, slot TEXT NOT NULL,
    idempotency_key TEXT NOT NULL, content_hash TEXT NOT NULL,
    message_id TEXT NOT NULL, receipt TEXT NOT NULL, sent_at TEXT NOT NULL,
    UNIQUE (source, idempotency_key)
);
CREATE INDEX IF NOT EXISTS sent_slot ON sent (source, skn, slot, id);
CREATE TABLE IF NOT EXISTS refused (
    source TEXT NOT NULL, skn TEXT NOT NULL, kind TEXT NOT NULL, idempotency_key TEXT NOT NULL,
    problem_type TEXT NOT NULL, status INTEGER NOT NULL, detail TEXT NOT NULL, at TEXT NOT NULL,
    PRIMARY KEY (source, idempotency_key)
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class State(LocalFile):
    def __init__(self, path: str | Path):
        super().__init__(path, SCHEMA)

    def latest_key(self, source: str, skn: str, slot: str) -> str | None:
        row = self.db.execute("SELECT idempotency_key FROM sent WHERE source=? AND skn=? AND slot=? ORDER BY id DESC LIMIT 1",
                              (source, skn, slot)).fetchone()
        return row[0] if row else None

    def record_sent(self, source: str, skn: str, kind: str, slot: str, key: str, content_hash: str, receipt: dict) -> None:
        with self.db:
            # a re-sent earlier content (A -> B -> A) becomes the slot's latest again
            self.db.execute("DELETE FROM sent WHERE source=? AND idempotency_key=?", (source, key))
            self.db.execute(
                "INSERT INTO sent (source, skn, kind, slot, idempotency_key, content_hash, message_id, receipt, sent_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (source, skn, kind, slot, key, content_hash, receipt["id"], json.dumps(receipt), _now()))
            self.db.execute("DELETE FROM refused WHERE source=? AND idempotency_key=?", (source, key))

    def record_refused(self, source: str, skn: str, kind: str, key: str, problem_type: str, status: int, detail: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO refused VALUES (?,?,?,?,?,?,?,?)",
                            (source, skn, kind, key, problem_type, status, detail[:500], _now()))

    def sent_count(self, source: str | None = None) -> int:
        q, args = "SELECT count(*) FROM sent", ()
        if source:
            q, args = q + " WHERE source=?", (source,)
        return self.db.execute(q, args).fetchone()[0]

    def status(self) -> dict:
        """Per source: messages sent per kind, detainees, refusals per problem type."""
        out: dict[str, dict] = {}
        for source, kind, n in self.db.execute("SELECT source, kind, count(*) FROM sent GROUP BY source, kind"):
            out.setdefault(source, {"sent": {}, "detainees": 0, "refused": {}})["sent"][kind] = n
        for source, n in self.db.execute("SELECT source, count(DISTINCT skn) FROM sent GROUP BY source"):
            out[source]["detainees"] = n
        for source, ptype, n in self.db.execute("SELECT source, problem_type, count(*) FROM refused GROUP BY source, problem_type"):
            out.setdefault(source, {"sent": {}, "detainees": 0, "refused": {}})["refused"][ptype] = n
        return out
