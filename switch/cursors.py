"""GNR cursors (round-robin positions, least-recent ticks) kept across calls and restarts.

``routing.gnr.Cursors`` is an immutable value a routing session starts from and
hands back updated. Calls run concurrently, so a session's result is *merged*
into the current value: only the GNR keys the session changed are taken from it
(two calls through two different GNRs never undo each other's progress). Every
change is written to ``DATA_DIR/cursors.sqlite3`` at once, so a restart resumes
the round-robin where it stopped.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import MappingProxyType
from typing import Any

from routing.gnr import Cursors

DB_FILE = "cursors.sqlite3"


def cursors_db_path(data_dir: Path) -> Path:
    return data_dir / DB_FILE


def merge(current: Cursors, base: Cursors, new: Cursors) -> Cursors:
    """``current`` with what changed between ``base`` (a session's start) and ``new``."""
    if new is base or new == base:
        return current
    positions = dict(current.positions)
    positions.update(
        {key: value for key, value in new.positions.items() if base.positions.get(key) != value}
    )
    answered = dict(current.last_answered)
    for key, ticks in new.last_answered.items():
        if base.last_answered.get(key) != ticks:
            merged = dict(answered.get(key, {}))
            merged.update(ticks)
            answered[key] = MappingProxyType(merged)
    return Cursors(
        MappingProxyType(positions),
        MappingProxyType(answered),
        max(current.tick, new.tick),
    )


def to_json(cursors: Cursors) -> str:
    return json.dumps(
        {
            "positions": dict(cursors.positions),
            "last_answered": {k: dict(v) for k, v in cursors.last_answered.items()},
            "tick": cursors.tick,
        },
        sort_keys=True,
    )


def from_json(text: str) -> Cursors:
    data: dict[str, Any] = json.loads(text)
    return Cursors(
        MappingProxyType({str(k): int(v) for k, v in data.get("positions", {}).items()}),
        MappingProxyType(
            {
                str(k): MappingProxyType({str(t): int(n) for t, n in v.items()})
                for k, v in data.get("last_answered", {}).items()
            }
        ),
        int(data.get("tick", 0)),
    )


class CursorStore:
    """The current cursors, in memory and in SQLite; see the module docstring."""

    def __init__(self, path: Path | None) -> None:
        self._db: sqlite3.Connection | None = None
        self.current = Cursors()
        if path is None:
            return
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS cursors (name TEXT PRIMARY KEY, value TEXT)")
        row = self._db.execute("SELECT value FROM cursors WHERE name = 'gnr'").fetchone()
        if row is not None:
            try:
                self.current = from_json(row[0])
            except (ValueError, TypeError, AttributeError):
                self.current = Cursors()  # unreadable: start over rather than fail calls

    def update(self, base: Cursors, new: Cursors) -> Cursors:
        """Merge a session's cursors (started from ``base``) and persist; the result."""
        merged = merge(self.current, base, new)
        if merged is self.current:
            return merged
        self.current = merged
        if self._db is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO cursors (name, value) VALUES ('gnr', ?)",
                (to_json(merged),),
            )
        return merged

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


__all__ = ["CursorStore", "cursors_db_path", "from_json", "merge", "to_json"]
