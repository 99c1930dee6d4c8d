"""Call detail records: one row per call in ``DATA_DIR/cdr.sqlite3``.

Written once, when the call ends (``switch.call.CallEnded``). Times are ISO 8601
UTC strings (sortable as text); ``legs`` and ``codecs`` are JSON arrays; the
``because`` column holds the routing trace once routing runs calls (JSON array,
empty until then).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from switch.call import CdrRecord

DB_FILE = "cdr.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cdr (
    id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    answered_at TEXT,
    ended_at TEXT NOT NULL,
    caller TEXT NOT NULL,
    called TEXT NOT NULL,
    outcome TEXT NOT NULL,
    cause TEXT NOT NULL,
    duration REAL NOT NULL,
    legs TEXT NOT NULL,
    codecs TEXT NOT NULL,
    because TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS cdr_started ON cdr (started_at);
"""
_COLUMNS = (
    "id, call_id, started_at, answered_at, ended_at, caller, called, outcome, cause, "
    "duration, legs, codecs"
)
_INSERT = f"INSERT OR REPLACE INTO cdr ({_COLUMNS}) VALUES ({', '.join('?' * 12)})"


def cdr_db_path(data_dir: Path) -> Path:
    return data_dir / DB_FILE


class CdrStore:
    """The CDR table (SQLite, WAL). One insert per call: cheap enough inline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def write(self, record: CdrRecord) -> None:
        legs = [
            {
                "role": leg.role,
                "call_id": leg.call_id,
                "target": leg.target,
                "status": leg.final_status,
            }
            for leg in record.legs
        ]
        self._db.execute(
            _INSERT,
            (
                record.id,
                record.call_id,
                record.started_at.isoformat(),
                None if record.answered_at is None else record.answered_at.isoformat(),
                record.ended_at.isoformat(),
                record.caller,
                record.called,
                str(record.outcome),
                record.cause,
                round(record.duration, 3),
                json.dumps(legs),
                json.dumps(list(record.codecs)),
            ),
        )

    def rows(self) -> list[dict[str, Any]]:
        """Every row, oldest first (tests, exports)."""
        cursor = self._db.execute(f"SELECT {_COLUMNS}, because FROM cdr ORDER BY started_at")
        names = [d[0] for d in cursor.description]
        out = []
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            for key in ("legs", "codecs", "because"):
                row[key] = json.loads(row[key])
            out.append(row)
        return out

    def close(self) -> None:
        self._db.close()


__all__ = ["DB_FILE", "CdrStore", "cdr_db_path"]
