"""The connector's local state, one SQLite file (stdlib ``sqlite3``): the messages it holds, the events it
has handled (dedup by CloudEvent id) and the reports it has sent.

Message states: ``stored`` (read and committed locally) -> ``receiving`` (about to acknowledge
``received``) -> ``received`` (acknowledged ``received``) ->
``forwarded`` (the case system answered) -> ``accepted`` | ``rejected`` (the final acknowledgement is with
the gateway); ``purged`` (the payload is deleted: retention purge, or the gateway refused it);
``unreadable`` (the gateway refused the read: 403/404, reason kept)."""
from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    message_id   TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    version      INTEGER,
    subject_id   TEXT NOT NULL,
    sender_oin   TEXT,
    purpose      TEXT NOT NULL,
    payload      TEXT,              -- the read view's payload (JSON); NULL once deleted
    released     TEXT,              -- releasedSections (JSON)
    read_at      TEXT,
    state        TEXT NOT NULL,
    ack          TEXT,              -- the last acknowledgement the gateway took
    ack_reason   TEXT,
    verdict      TEXT,              -- the case system's answer (or accepted without one)
    forwarded_at TEXT,
    acked_at     TEXT,
    deleted_at   TEXT,
    deleted_why  TEXT,
    event_id     TEXT,
    updated_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_subject ON messages(subject_id);
CREATE INDEX IF NOT EXISTS messages_state ON messages(state);
CREATE TABLE IF NOT EXISTS events (
    event_id     TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    handled_at   TEXT NOT NULL,
    outcome      TEXT
);
CREATE TABLE IF NOT EXISTS reports (
    idempotency_key TEXT PRIMARY KEY,
    file         TEXT NOT NULL,
    message_id   TEXT,
    status       TEXT NOT NULL,     -- sent | failed
    detail       TEXT,
    sent_at      TEXT NOT NULL
);
"""

FINAL = ("accepted", "rejected")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Store:
    """One connection, used from the event loop's thread (calls are short; a lock guards cross-thread use)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._con.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")  # a commit survives a kill -9 and a power cut
        self._con.executescript(SCHEMA)

    def close(self) -> None:
        self._con.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    # --- events ---------------------------------------------------------------------------------------
    def seen(self, event_id: str) -> bool:
        with self._lock:
            return self._con.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone() is not None

    def mark_handled(self, event_id: str, type_: str, outcome: str) -> None:
        with self.tx() as c:
            c.execute("INSERT OR IGNORE INTO events (event_id, type, handled_at, outcome) VALUES (?, ?, ?, ?)",
                      (event_id, type_, now_iso(), outcome))

    # --- messages -------------------------------------------------------------------------------------
    def message(self, message_id: str) -> dict | None:
        with self._lock:
            row = self._con.execute("SELECT * FROM messages WHERE message_id = ?", (message_id,)).fetchone()
        return _row(row)

    def store_read(self, view: dict, event_id: str | None, read_at: str) -> None:
        """The read view, committed: the message is ``stored`` (state kept if it was already further)."""
        with self.tx() as c:
            c.execute(
                "INSERT INTO messages (message_id, type, version, subject_id, sender_oin, purpose, payload, released,"
                " read_at, state, event_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'stored', ?, ?)"
                " ON CONFLICT(message_id) DO NOTHING",
                (view["id"], view["type"], view.get("version"), view["subjectId"], view.get("senderOin"),
                 view.get("readPurpose") or view.get("purpose"), json.dumps(view["payload"], sort_keys=True),
                 json.dumps(view.get("releasedSections", [])), read_at, event_id, now_iso()))

    def record_placeholder(self, message_id: str, data: dict, purpose: str, state: str, why: str, event_id: str) -> None:
        """A delivery the connector could not read (gone, refused): kept as a row without payload."""
        with self.tx() as c:
            c.execute(
                "INSERT INTO messages (message_id, type, subject_id, sender_oin, purpose, state, deleted_at, deleted_why,"
                " event_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(message_id) DO NOTHING",
                (message_id, data.get("messageType", "?"), data.get("subjectId", "?"), data.get("senderOin"), purpose,
                 state, now_iso(), why, event_id, now_iso()))

    def set_state(self, message_id: str, state: str, **fields: Any) -> None:
        cols = {"state": state, "updated_at": now_iso(), **fields}
        with self.tx() as c:
            c.execute(f"UPDATE messages SET {', '.join(f'{k} = ?' for k in cols)} WHERE message_id = ?",
                      (*cols.values(), message_id))

    def replace_payload(self, message_id: str, payload: dict | None, released: list | None, why: str) -> None:
        with self.tx() as c:
            if payload is None:
                c.execute("UPDATE messages SET payload = NULL, released = NULL, deleted_at = ?, deleted_why = ?,"
                          " state = 'purged', updated_at = ? WHERE message_id = ?", (now_iso(), why, now_iso(), message_id))
            else:
                c.execute("UPDATE messages SET payload = ?, released = ?, deleted_why = ?, updated_at = ? WHERE message_id = ?",
                          (json.dumps(payload, sort_keys=True), json.dumps(released or []), why, now_iso(), message_id))

    def of_subject(self, subject_id: str) -> list[dict]:
        with self._lock:
            rows = self._con.execute("SELECT * FROM messages WHERE subject_id = ? AND payload IS NOT NULL",
                                     (subject_id,)).fetchall()
        return [_row(r) for r in rows]

    def unsettled(self) -> list[dict]:
        """Stored but not finally acknowledged yet (a crash, or the case system was away)."""
        with self._lock:
            rows = self._con.execute("SELECT * FROM messages WHERE state IN ('stored', 'receiving', 'received', 'forwarded')"
                                     " ORDER BY updated_at").fetchall()
        return [_row(r) for r in rows]

    # --- reports --------------------------------------------------------------------------------------
    def report(self, key: str) -> dict | None:
        with self._lock:
            return _row(self._con.execute("SELECT * FROM reports WHERE idempotency_key = ?", (key,)).fetchone())

    def record_report(self, key: str, file: str, message_id: str | None, status: str, detail: str | None) -> None:
        with self.tx() as c:
            c.execute("INSERT INTO reports (idempotency_key, file, message_id, status, detail, sent_at) VALUES (?, ?, ?, ?, ?, ?)"
                      " ON CONFLICT(idempotency_key) DO UPDATE SET file = excluded.file, message_id = excluded.message_id,"
                      " status = excluded.status, detail = excluded.detail, sent_at = excluded.sent_at",
                      (key, file, message_id, status, detail, now_iso()))

    # --- status ---------------------------------------------------------------------------------------
    def status(self, last: int = 5) -> dict:
        with self._lock:
            counts = {r["state"]: r["n"] for r in self._con.execute("SELECT state, count(*) AS n FROM messages GROUP BY state")}
            recent = [_row(r) for r in self._con.execute(
                "SELECT message_id, type, subject_id, state, ack, verdict, ack_reason, read_at, forwarded_at, acked_at, deleted_at, deleted_why"
                " FROM messages ORDER BY updated_at DESC LIMIT ?", (last,))]
            reports = {r["status"]: r["n"] for r in self._con.execute("SELECT status, count(*) AS n FROM reports GROUP BY status")}
            recent_reports = [_row(r) for r in self._con.execute(
                "SELECT file, message_id, status, detail, sent_at FROM reports ORDER BY sent_at DESC LIMIT ?", (last,))]
            events = self._con.execute("SELECT count(*) FROM events").fetchone()[0]
        return {"messages": counts, "recent": recent, "reports": reports, "recentReports": recent_reports,
                "eventsHandled": events}


def _row(row: sqlite3.Row | None) -> dict | None:
    if row is None:
        return None
    out = dict(row)
    for key in ("payload", "released"):
        if out.get(key):
            out[key] = json.loads(out[key])
    return out
