"""Call detail records: one row per call in ``DATA_DIR/cdr.sqlite3``.

Written once, when the call ends (``switch.call.CallEnded``). Times are ISO 8601
UTC strings (sortable as text); ``legs`` and ``codecs`` are JSON arrays; the
``because`` column holds the routing trace of calls to service numbers (JSON
array, empty for other calls) and ``messages`` the messages the caller heard
(JSON array of message ids, in order).
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

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
    because TEXT NOT NULL DEFAULT '[]',
    messages TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS cdr_started ON cdr (started_at);
"""
_COLUMNS = (
    "id, call_id, started_at, answered_at, ended_at, caller, called, outcome, cause, "
    "duration, legs, codecs, because, messages"
)
_JSON_COLUMNS = ("legs", "codecs", "because", "messages")
_INSERT = f"INSERT OR REPLACE INTO cdr ({_COLUMNS}) VALUES ({', '.join('?' * 14)})"
# Columns added after the first release: (name, definition) for ALTER TABLE.
_ADDED = (("messages", "TEXT NOT NULL DEFAULT '[]'"),)


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
        present = {row[1] for row in self._db.execute("PRAGMA table_info(cdr)")}
        for name, definition in _ADDED:
            if name not in present:
                self._db.execute(f"ALTER TABLE cdr ADD COLUMN {name} {definition}")

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
                json.dumps(list(record.because), ensure_ascii=False),
                json.dumps(list(record.messages)),
            ),
        )

    def rows(self) -> list[dict[str, Any]]:
        """Every row, oldest first (tests, exports)."""
        return _select(self._db, None)

    def close(self) -> None:
        self._db.close()


# -- export: ``aiguilleur cdr DIR --since ISO --format csv|jsonl`` ---------------------

EXPORT_COLUMNS = tuple(c.strip() for c in _COLUMNS.split(","))


def read_rows(path: Path, since: datetime | None = None) -> list[dict[str, Any]]:
    """The rows of the CDR database ``path`` started at or after ``since``, oldest first.

    Opened read-only: the export runs next to a live switch (WAL readers do not block).
    """
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _select(db, since)
    finally:
        db.close()


def _select(db: sqlite3.Connection, since: datetime | None) -> list[dict[str, Any]]:
    """Rows started at or after ``since`` (all when None), oldest first, JSON decoded."""
    query = f"SELECT {_COLUMNS} FROM cdr"
    params: tuple[str, ...] = ()
    if since is not None:
        query += " WHERE started_at >= ?"
        params = (since.astimezone(UTC).isoformat(),)
    cursor = db.execute(query + " ORDER BY started_at, id", params)
    names = [d[0] for d in cursor.description]
    out = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        for key in _JSON_COLUMNS:
            row[key] = json.loads(row[key])
        out.append(row)
    return out


def write_export(rows: list[dict[str, Any]], fmt: str, out: IO[str]) -> None:
    """``jsonl``: one JSON object per line; ``csv``: a header, the JSON columns as JSON."""
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(
            json.dumps(row[c], ensure_ascii=False) if c in _JSON_COLUMNS else row[c]
            for c in EXPORT_COLUMNS
        )


def parse_since(value: str) -> datetime:
    """An ISO 8601 date or time; naive values are UTC."""
    at = datetime.fromisoformat(value)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def cdr_command(args: argparse.Namespace) -> int:
    """``aiguilleur cdr DIR [--since ISO] [--format csv|jsonl]``: DIR is the data directory."""
    path = cdr_db_path(Path(args.data_dir))
    if not path.is_file():
        print(f"{path}: no CDR database", file=sys.stderr)
        return 1
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError:
        print(f"--since: not an ISO 8601 date or time: {args.since!r}", file=sys.stderr)
        return 2
    write_export(read_rows(path, since), args.format, sys.stdout)
    return 0


__all__ = [
    "DB_FILE",
    "EXPORT_COLUMNS",
    "CdrStore",
    "cdr_command",
    "cdr_db_path",
    "read_rows",
    "write_export",
]
