"""An adapter's own SQLite file (what it sent, what it holds): created with its schema on first use."""
from __future__ import annotations

import sqlite3
from pathlib import Path


class LocalFile:
    def __init__(self, path: str | Path, schema: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.executescript(schema)
        self.db.commit()

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
