"""Where star-code settings live: ``DATA_DIR/line_settings.sqlite3``.

``routing.starcodes`` decides, this module remembers (like ``switch.location`` for
the registrar). Every store implements ``LineSettingsStore``::

    load(line_key) -> LineSettings                 # LineSettings() when never saved
    load_versioned(line_key) -> Stored | None      # with version and updated_at
    save(line_key, settings) -> int                # committed when it returns; the version
    update(line_key, change) -> (settings, result) # read-modify-write in one transaction
    delete(line_key)
    all() -> dict[str, LineSettings]
    load_group(group_key) / save_group(group_key, settings) / delete_group(group_key)
    close()

Keys are ``extension@domain`` (``switch.directory.Line.key``) for lines and
``number@domain`` for hunt groups (:func:`group_key`).

"Persist before the confirmation" (STAR-CODES.md: the change is stored at once).
The executor runs a star code as::

    settings, confirmation = store.update(line.key, lambda s: starcodes.apply(s, cmd, ctx))
    # committed (or nothing to commit): now play confirmation.reply

``update`` runs ``change`` inside ``BEGIN IMMEDIATE`` (the write lock is taken before
the read), writes only when the settings changed, commits, and only then returns:
concurrent updates of one line, from this process or another one on the same file,
are serialised and none is lost. When ``change`` raises nothing is written. ``save``
overwrites (the last save wins) and bumps ``version``; each row keeps the
``updated_at`` of its last write (ISO 8601 UTC, from the injected ``clock``).

Durability: ``synchronous=FULL`` by default (an fsync per commit, about a
millisecond): star codes are dialled by people, a few per minute, and a setting
the user heard confirmed must survive a power cut too. Pass ``"NORMAL"`` to trade
that for speed (a commit then survives a crash of the process, not of the machine).

Sync now, async later, as ``switch.location``: the shell calls
``AsyncLineSettingsStore``; ``AsyncSettingsStore(store)`` runs a synchronous store
inline, and the Redis store of cluster mode will implement the async interface
natively (``WATCH``/``MULTI`` for ``update``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from routing.linesettings import GroupSettings, LineSettings, SettingsError
from switch.sqlite_store import SqliteFile, Synchronous

DB_FILE = "line_settings.sqlite3"
SCHEMA_VERSION = 1

T = TypeVar("T")
Change = Callable[[LineSettings], tuple[LineSettings, T]]


# What a line never saved reads as (immutable: one instance serves every load).
UNSET = LineSettings()


class LineSettingsStoreError(Exception):
    """Settings could not be read or stored; on a write, nothing was changed."""


@dataclass(frozen=True, slots=True)
class Stored:
    """A line's settings as stored: ``version`` counts its writes (1 for the first)."""

    settings: LineSettings
    version: int
    updated_at: datetime


def group_key(number: str, domain: str) -> str:
    """The key of a hunt group's settings (``500@pbx.test``)."""
    return f"{number}@{domain}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LineSettingsStore(Protocol):
    """What the star-code executor and the router need from storage."""

    def load(self, line_key: str) -> LineSettings: ...

    def load_versioned(self, line_key: str) -> Stored | None: ...

    def save(self, line_key: str, settings: LineSettings) -> int: ...

    def update(self, line_key: str, change: Change[T]) -> tuple[LineSettings, T]: ...

    def delete(self, line_key: str) -> None: ...

    def all(self) -> dict[str, LineSettings]: ...

    def load_group(self, key: str) -> GroupSettings: ...

    def save_group(self, key: str, settings: GroupSettings) -> int: ...

    def delete_group(self, key: str) -> None: ...

    def close(self) -> None: ...


class AsyncLineSettingsStore(Protocol):
    """The same interface as coroutines: what the asyncio shell calls."""

    async def load(self, line_key: str) -> LineSettings: ...

    async def load_versioned(self, line_key: str) -> Stored | None: ...

    async def save(self, line_key: str, settings: LineSettings) -> int: ...

    async def update(self, line_key: str, change: Change[T]) -> tuple[LineSettings, T]: ...

    async def delete(self, line_key: str) -> None: ...

    async def all(self) -> dict[str, LineSettings]: ...

    async def load_group(self, key: str) -> GroupSettings: ...

    async def save_group(self, key: str, settings: GroupSettings) -> int: ...

    async def delete_group(self, key: str) -> None: ...

    async def close(self) -> None: ...


class AsyncSettingsStore:
    """``AsyncLineSettingsStore`` over a synchronous store: each call runs inline."""

    __slots__ = ("store",)

    def __init__(self, store: LineSettingsStore) -> None:
        self.store = store

    async def load(self, line_key: str) -> LineSettings:
        return self.store.load(line_key)

    async def load_versioned(self, line_key: str) -> Stored | None:
        return self.store.load_versioned(line_key)

    async def save(self, line_key: str, settings: LineSettings) -> int:
        return self.store.save(line_key, settings)

    async def update(self, line_key: str, change: Change[T]) -> tuple[LineSettings, T]:
        return self.store.update(line_key, change)

    async def delete(self, line_key: str) -> None:
        self.store.delete(line_key)

    async def all(self) -> dict[str, LineSettings]:
        return self.store.all()

    async def load_group(self, key: str) -> GroupSettings:
        return self.store.load_group(key)

    async def save_group(self, key: str, settings: GroupSettings) -> int:
        return self.store.save_group(key, settings)

    async def delete_group(self, key: str) -> None:
        self.store.delete_group(key)

    async def close(self) -> None:
        self.store.close()


# -- memory ---------------------------------------------------------------------------


class MemoryLineSettingsStore:
    """Settings in this process only; lost on restart (tests, no data directory)."""

    __slots__ = ("_clock", "_groups", "_lines")

    def __init__(self, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._clock = clock
        self._lines: dict[str, Stored] = {}
        self._groups: dict[str, tuple[GroupSettings, int]] = {}

    def load(self, line_key: str) -> LineSettings:
        stored = self._lines.get(line_key)
        return UNSET if stored is None else stored.settings

    def load_versioned(self, line_key: str) -> Stored | None:
        return self._lines.get(line_key)

    def save(self, line_key: str, settings: LineSettings) -> int:
        old = self._lines.get(line_key)
        version = 1 if old is None else old.version + 1
        self._lines[line_key] = Stored(settings, version, self._clock())
        return version

    def update(self, line_key: str, change: Change[T]) -> tuple[LineSettings, T]:
        current = self.load(line_key)
        new, result = change(current)
        if new != current:
            self.save(line_key, new)
        return new, result

    def delete(self, line_key: str) -> None:
        self._lines.pop(line_key, None)

    def all(self) -> dict[str, LineSettings]:
        return {key: stored.settings for key, stored in sorted(self._lines.items())}

    def load_group(self, key: str) -> GroupSettings:
        found = self._groups.get(key)
        return GroupSettings() if found is None else found[0]

    def save_group(self, key: str, settings: GroupSettings) -> int:
        version = self._groups.get(key, (None, 0))[1] + 1
        self._groups[key] = (settings, version)
        return version

    def delete_group(self, key: str) -> None:
        self._groups.pop(key, None)

    def close(self) -> None:
        pass


# -- SQLite ---------------------------------------------------------------------------

_SCHEMA = (
    """CREATE TABLE line_settings (
        key         TEXT    PRIMARY KEY,  -- extension@domain (switch.directory.Line.key)
        settings    TEXT    NOT NULL,     -- JSON: routing.linesettings.LineSettings.to_dict()
        version     INTEGER NOT NULL,     -- 1 at the first write, +1 at each
        updated_at  TEXT    NOT NULL      -- ISO 8601 UTC of the last write
    ) WITHOUT ROWID""",
    """CREATE TABLE group_settings (
        key         TEXT    PRIMARY KEY,  -- number@domain
        settings    TEXT    NOT NULL,     -- JSON: GroupSettings.to_dict()
        version     INTEGER NOT NULL,
        updated_at  TEXT    NOT NULL
    ) WITHOUT ROWID""",
)

_Table = Literal["line_settings", "group_settings"]


def _upsert(table: _Table) -> str:
    return (
        f"INSERT INTO {table} (key, settings, version, updated_at) VALUES (?, ?, 1, ?) "
        f"ON CONFLICT (key) DO UPDATE SET settings = excluded.settings, "
        f"version = {table}.version + 1, updated_at = excluded.updated_at "
        f"RETURNING version"
    )


def _select(table: _Table) -> str:
    return f"SELECT settings, version, updated_at FROM {table} WHERE key = ?"


class SqliteLineSettingsStore:
    """Settings in ``path`` (created if absent). Every method commits before it returns.

    Several stores (processes, threads, nodes sharing a disk) may open one file: writes
    are serialised by SQLite's write lock (``busy_timeout`` 5 s). One store may also be
    shared between threads (its connection is guarded by a lock).

    Lines read are cached (a call reads its callee's settings: a SELECT and a JSON
    decode per call cost about 2 % of its CPU). The cache is dropped when another
    connection committed (SQLite's ``PRAGMA data_version`` changed: another store,
    process or node wrote) and a line's entry when this store writes it.
    """

    __slots__ = ("_cache", "_clock", "_data_version", "_file", "_lock", "path")

    def __init__(
        self,
        path: Path | str,
        *,
        synchronous: Synchronous = "FULL",
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._file = SqliteFile(
            self.path,
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            synchronous=synchronous,
            error=LineSettingsStoreError,
            check_same_thread=False,
        )
        self._cache: dict[str, Stored | None] = {}
        self._data_version = -1

    # -- lines --------------------------------------------------------------------------

    def load(self, line_key: str) -> LineSettings:
        stored = self.load_versioned(line_key)
        return UNSET if stored is None else stored.settings

    def load_versioned(self, line_key: str) -> Stored | None:
        with self._lock, self._file.errors():
            data_version = self._file.db.execute("PRAGMA data_version").fetchone()[0]
            if data_version != self._data_version:  # another connection committed
                self._cache.clear()
                self._data_version = data_version
            elif line_key in self._cache:
                return self._cache[line_key]
            row = self._read("line_settings", line_key)
            stored = None
            if row is not None:
                data, version, updated_at = row
                stored = Stored(
                    self._line(line_key, data), version, datetime.fromisoformat(updated_at)
                )
            self._cache[line_key] = stored
            return stored

    def save(self, line_key: str, settings: LineSettings) -> int:
        with self._lock, self._file.transaction():
            self._cache.pop(line_key, None)
            return self._write("line_settings", line_key, settings)

    def update(self, line_key: str, change: Change[T]) -> tuple[LineSettings, T]:
        with self._lock, self._file.transaction():
            self._cache.pop(line_key, None)
            row = self._read("line_settings", line_key)
            current = LineSettings() if row is None else self._line(line_key, row[0])
            new, result = change(current)
            if new != current:
                self._write("line_settings", line_key, new)
            return new, result

    def delete(self, line_key: str) -> None:
        with self._lock, self._file.transaction() as db:
            self._cache.pop(line_key, None)
            db.execute("DELETE FROM line_settings WHERE key = ?", (line_key,))

    def all(self) -> dict[str, LineSettings]:
        with self._lock, self._file.errors():
            rows = self._file.db.execute("SELECT key, settings FROM line_settings ORDER BY key")
            found = [(str(key), str(data)) for key, data in rows.fetchall()]
        return {key: self._line(key, data) for key, data in found}

    # -- groups -------------------------------------------------------------------------

    def load_group(self, key: str) -> GroupSettings:
        with self._lock, self._file.errors():
            row = self._read("group_settings", key)
        if row is None:
            return GroupSettings()
        try:
            return GroupSettings.from_dict(_json(row[0]))
        except SettingsError as exc:
            raise LineSettingsStoreError(f"{self.path}: group {key}: {exc}") from None

    def save_group(self, key: str, settings: GroupSettings) -> int:
        with self._lock, self._file.transaction():
            return self._write("group_settings", key, settings)

    def delete_group(self, key: str) -> None:
        with self._lock, self._file.transaction() as db:
            db.execute("DELETE FROM group_settings WHERE key = ?", (key,))

    def close(self) -> None:
        with self._lock:
            self._file.close()

    # -- SQL ----------------------------------------------------------------------------

    def _line(self, key: str, data: str) -> LineSettings:
        try:
            return LineSettings.from_dict(_json(data))
        except SettingsError as exc:
            raise LineSettingsStoreError(f"{self.path}: line {key}: {exc}") from None

    def _read(self, table: _Table, key: str) -> tuple[str, int, str] | None:
        row = self._file.db.execute(_select(table), (key,)).fetchone()
        return None if row is None else (str(row[0]), int(row[1]), str(row[2]))

    def _write(self, table: _Table, key: str, settings: LineSettings | GroupSettings) -> int:
        text = json.dumps(settings.to_dict(), separators=(",", ":"), sort_keys=True)
        at = self._clock().astimezone(UTC).isoformat()
        row = self._file.db.execute(_upsert(table), (key, text, at)).fetchone()
        return int(row[0])


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"not JSON: {exc}") from None


def line_settings_db_path(data_dir: Path) -> Path:
    """Where the switch keeps star-code settings in a data directory."""
    return data_dir / DB_FILE


__all__ = [
    "DB_FILE",
    "SCHEMA_VERSION",
    "AsyncLineSettingsStore",
    "AsyncSettingsStore",
    "LineSettingsStore",
    "LineSettingsStoreError",
    "MemoryLineSettingsStore",
    "SqliteLineSettingsStore",
    "Stored",
    "group_key",
    "line_settings_db_path",
]
