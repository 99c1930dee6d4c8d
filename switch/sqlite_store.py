"""The SQLite plumbing the stores share (``switch.location``, ``switch.line_settings``).

A store file holds a ``schema_version`` table beside the store's own tables. The
connection is in autocommit mode (``isolation_level=None``) and every change is an
explicit ``BEGIN IMMEDIATE`` … ``COMMIT`` (:meth:`SqliteFile.transaction`): the write
lock is taken before the first read, and a change is committed when the store's
method returns, or rolled back when it raises. ``sqlite3.Error`` never leaves a
store: it becomes the store's own error class, prefixed with the file's path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, get_args

Synchronous = Literal["OFF", "NORMAL", "FULL"]
BUSY_TIMEOUT_MS = 5000

_SCHEMA_VERSION_TABLE = "CREATE TABLE schema_version (version INTEGER NOT NULL)"


def schema_version(db: sqlite3.Connection) -> int | None:
    """The file's schema version; None when it has none (a new file)."""
    row = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return None
    version = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(version[0]) if version and version[0] is not None else None


def check_version(path: Path, found: int | None, reads: int, error: type[Exception]) -> None:
    """Raise ``error`` unless this build reads a file of schema version ``found``."""
    if found is None or found > reads:
        what = "no schema version" if found is None else f"schema version {found}"
        raise error(f"{path}: {what}; this build reads schema version {reads}")


class SqliteFile:
    """One store file open for writing: WAL, ``synchronous`` as asked, a 5 s busy
    timeout. A new file gets the ``schema_version`` table and the statements of
    ``schema``; a file of a newer schema version is refused.

    Any failure while opening closes the connection and raises ``error``.
    """

    __slots__ = ("db", "error", "path")

    def __init__(
        self,
        path: Path,
        *,
        schema: Sequence[str],
        version: int,
        synchronous: Synchronous,
        error: type[Exception],
        check_same_thread: bool = True,
    ) -> None:
        self.path = path
        self.error = error
        if synchronous not in get_args(Synchronous):
            raise error(f"synchronous must be OFF, NORMAL or FULL: {synchronous!r}")
        with self.errors():
            self.db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=check_same_thread
            )
        try:
            with self.errors():
                self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                self.db.execute("PRAGMA journal_mode = WAL")
                self.db.execute(f"PRAGMA synchronous = {synchronous}")
            with self.transaction() as db:
                found = schema_version(db)
                if found is None:
                    for statement in (_SCHEMA_VERSION_TABLE, *schema):
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                else:
                    check_version(path, found, version, error)
        except BaseException:
            self.db.close()
            raise

    @contextmanager
    def errors(self) -> Iterator[None]:
        """An ``sqlite3.Error`` raised inside becomes ``error``."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self.error(f"{self.path}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``; committed when the block ends, rolled back when it raises."""
        db = self.db
        with self.errors():
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.db.close()


__all__ = ["BUSY_TIMEOUT_MS", "SqliteFile", "Synchronous", "check_version", "schema_version"]
