"""Bans kept across restarts: ``DATA_DIR/bans.sqlite3``.

``switch.admission`` keeps its ban list in memory, in monotonic time (a restart
used to lift every ban). The registrar writes each new ban here as it makes it,
in wall-clock time (Unix seconds), and at start hands ``Admission.restore`` the
ones still in force, translated back to its monotonic clock. Expired rows are
deleted at start and whenever a ban is written, so the file holds the bans in
force and a few expired ones at most.

One row per banned address (an IPv4 address or an IPv6 prefix, as
``Admission.source_key`` writes it): a new ban of the same address replaces the
row. One writer, the switch; writes are rare (one per ban) and run on the event
loop, ``synchronous=NORMAL`` (WAL: a commit does not wait for the disk).
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from switch.admission import Ban, BanKind
from switch.sqlite_store import SqliteFile, Synchronous

DB_FILE = "bans.sqlite3"
SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE bans ("
    " address TEXT PRIMARY KEY,"
    " reason TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " since REAL NOT NULL,"  # Unix seconds
    " until REAL NOT NULL"  # Unix seconds
    ")",
    "CREATE INDEX bans_until ON bans (until)",
)
_KINDS: frozenset[str] = frozenset(get_args(BanKind))


class BanStoreError(Exception):
    """Bans could not be read or kept; on a write, nothing was changed."""


def bans_db_path(data_dir: Path) -> Path:
    """Where a data directory keeps its bans."""
    return data_dir / DB_FILE


class BanStore:
    """The bans in force, in ``path`` (created if absent); times are wall-clock."""

    __slots__ = ("_file", "path")

    def __init__(self, path: Path | str, *, synchronous: Synchronous = "NORMAL") -> None:
        self.path = Path(path)
        self._file = SqliteFile(
            self.path,
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            synchronous=synchronous,
            error=BanStoreError,
        )

    def load(self, at: float) -> list[Ban]:
        """The bans in force at ``at`` (Unix seconds), oldest first; the expired
        ones are deleted. A row of an unknown kind is skipped (a newer build's)."""
        with self._file.transaction() as db:
            db.execute("DELETE FROM bans WHERE until <= ?", (at,))
            rows = db.execute(
                "SELECT address, reason, kind, since, until FROM bans ORDER BY since, address"
            ).fetchall()
        return [
            Ban(str(address), str(reason), kind, float(since), float(until))
            for address, reason, kind, since, until in rows
            if kind in _KINDS
        ]

    def add(self, ban: Ban, at: float) -> None:
        """Keep ``ban`` (its times in Unix seconds), replacing an older ban of the
        same address; the bans expired at ``at`` go."""
        with self._file.transaction() as db:
            db.execute("DELETE FROM bans WHERE until <= ?", (at,))
            db.execute(
                "INSERT OR REPLACE INTO bans (address, reason, kind, since, until)"
                " VALUES (?, ?, ?, ?, ?)",
                (ban.address, ban.reason, ban.kind, ban.since, ban.until),
            )

    def close(self) -> None:
        self._file.close()


__all__ = ["DB_FILE", "BanStore", "BanStoreError", "bans_db_path"]
