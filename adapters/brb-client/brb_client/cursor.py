"""Where a connector stopped: the inbox cursor, kept in a file that is replaced atomically, so a crash
between two polls resumes from the last cursor written (at worst one page again, never one missed)."""
from __future__ import annotations

import os
from pathlib import Path


class CursorFile:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> str | None:
        try:
            return self.path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def save(self, cursor: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w") as f:
            f.write(cursor)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
