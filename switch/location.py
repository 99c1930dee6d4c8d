"""The location service: where the registrar's bindings are kept.

``switch.registrar`` decides, this module remembers. Every store implements
``LocationStore``::

    lookup(aor) -> list[Binding]              # every stored binding of an AOR
    apply(upserts, removals)                  # atomic; returns after commit
    all() -> list[Binding]
    purge_expired(at) -> list[Binding]        # removes and returns them
    next_expiry() -> float | None             # epoch seconds, for the shell's timer
    mark_unreachable(conn_id | Endpoint) -> list[Binding]
    close()

A binding is identified by ``(aor, binding.key)``. ``apply`` deletes the
removals, then writes the upserts (an upsert replaces the binding with the same
key): all of it or nothing. When it raises ``LocationStoreError`` nothing
changed and the REGISTER is answered 500 (RFC 3261 §10.3: "If any one of them
fails (for example, because the back-end database commit failed), the request
MUST fail with a 500 (Server Error) response and all tentative binding updates
MUST be removed.").

Lookups may return expired bindings that no timer has purged yet: callers
filter with ``registrar.live_bindings(bindings, at)``; ``Registrar.process``
ignores and purges them itself.

Stores:

- ``MemoryLocationStore``: a dict per AOR, a heap of expiry times, an index by
  connection. Tests, and a switch without a data directory.
- ``SqliteLocationStore(path)``: the same memory index in front of one SQLite
  table (WAL). Reads never touch the disk; ``apply`` commits first and updates
  the index only once the commit succeeded, so the index never holds what the
  file does not.

Sync now, async later. The interface is synchronous: SQLite commits in WAL
mode with ``synchronous=NORMAL`` take tens of microseconds, less than handing
the work to a thread would, and lookups are dictionary reads. The shell does
not call these methods directly but through ``AsyncLocationStore``, whose
methods are coroutines; ``AsyncStore(store)`` adapts a synchronous store to it
by running each call inline. The Redis store of the cluster issue will
implement ``AsyncLocationStore`` natively (``redis.asyncio``) and the shell's
``await store.apply(...)`` before the 200 will not change.

Durability. With ``synchronous=NORMAL`` a commit survives a crash or restart of
the process (the WAL is written before ``apply`` returns) but may be lost if
the machine loses power before the next checkpoint; pass
``synchronous="FULL"`` to fsync every commit (about a millisecond on disks).
Phones re-register anyway.

Connections do not outlive the process. ``Endpoint.conn_id`` numbers the
transport's connections from 1 in every process, so an id read back from the
file could name some other phone's connection. When a writable
``SqliteLocationStore`` opens, every binding that came over a connection loses
its ``conn_id`` and is marked unreachable until the phone registers again
(phones on TCP/TLS reconnect and re-register when the connection drops).
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from switch.registrar import Binding
from switch.sip.endpoint import Endpoint
from switch.sqlite_store import (
    BUSY_TIMEOUT_MS,
    SqliteFile,
    Synchronous,
    check_version,
    schema_version,
)

# The file in the data directory.
DB_FILE = "registrations.sqlite3"
SCHEMA_VERSION = 1


class LocationStoreError(Exception):
    """A change could not be stored; nothing was applied (answer 500)."""


class LocationStore(Protocol):
    """What the registrar's shell needs from storage (synchronous stores)."""

    def lookup(self, aor: str) -> list[Binding]: ...

    def apply(self, upserts: Iterable[Binding] = (), removals: Iterable[Binding] = ()) -> None: ...

    def all(self) -> list[Binding]: ...

    def purge_expired(self, at: float) -> list[Binding]: ...

    def next_expiry(self) -> float | None: ...

    def mark_unreachable(self, where: int | Endpoint) -> list[Binding]: ...

    def close(self) -> None: ...


class AsyncLocationStore(Protocol):
    """The same interface as coroutines: what the asyncio shell calls."""

    async def lookup(self, aor: str) -> list[Binding]: ...

    async def apply(
        self, upserts: Iterable[Binding] = (), removals: Iterable[Binding] = ()
    ) -> None: ...

    async def all(self) -> list[Binding]: ...

    async def purge_expired(self, at: float) -> list[Binding]: ...

    async def next_expiry(self) -> float | None: ...

    async def mark_unreachable(self, where: int | Endpoint) -> list[Binding]: ...

    async def close(self) -> None: ...


class AsyncStore:
    """``AsyncLocationStore`` over a synchronous store: each call runs inline."""

    __slots__ = ("store",)

    def __init__(self, store: LocationStore) -> None:
        self.store = store

    async def lookup(self, aor: str) -> list[Binding]:
        return self.store.lookup(aor)

    async def apply(
        self, upserts: Iterable[Binding] = (), removals: Iterable[Binding] = ()
    ) -> None:
        self.store.apply(upserts, removals)

    async def all(self) -> list[Binding]:
        return self.store.all()

    async def purge_expired(self, at: float) -> list[Binding]:
        return self.store.purge_expired(at)

    async def next_expiry(self) -> float | None:
        return self.store.next_expiry()

    async def mark_unreachable(self, where: int | Endpoint) -> list[Binding]:
        return self.store.mark_unreachable(where)

    async def close(self) -> None:
        self.store.close()


# -- the memory index ---------------------------------------------------------------


def _ident(binding: Binding) -> tuple[str, str]:
    return (binding.aor, binding.key)


def _matches(binding: Binding, where: int | Endpoint) -> bool:
    source = binding.source
    if isinstance(where, int):
        return source.conn_id == where
    return (source.transport, source.host, source.port) == (
        where.transport,
        where.host,
        where.port,
    )


class _Index:
    """Bindings by AOR and key, a lazy heap of expiry times, ids by connection."""

    __slots__ = ("by_aor", "by_conn", "heap")

    def __init__(self) -> None:
        self.by_aor: dict[str, dict[str, Binding]] = {}
        self.by_conn: dict[int, set[tuple[str, str]]] = {}
        # (expires_at, aor, key); an entry is stale when the binding it names
        # is gone or now expires at another time.
        self.heap: list[tuple[float, str, str]] = []

    def get(self, aor: str, key: str) -> Binding | None:
        bucket = self.by_aor.get(aor)
        return bucket.get(key) if bucket is not None else None

    def put(self, binding: Binding) -> None:
        aor, key = _ident(binding)
        old = self.get(aor, key)
        if old is not None:
            self._unlink_conn(old, key)
        self.by_aor.setdefault(aor, {})[key] = binding
        if binding.source.conn_id is not None:
            self.by_conn.setdefault(binding.source.conn_id, set()).add((aor, key))
        if old is None or old.expires_at != binding.expires_at:
            heapq.heappush(self.heap, (binding.expires_at, aor, key))

    def drop(self, aor: str, key: str) -> Binding | None:
        bucket = self.by_aor.get(aor)
        if bucket is None:
            return None
        old = bucket.pop(key, None)
        if old is not None:
            self._unlink_conn(old, key)
        if not bucket:
            del self.by_aor[aor]
        return old

    def _unlink_conn(self, binding: Binding, key: str) -> None:
        conn_id = binding.source.conn_id
        if conn_id is None:
            return
        ids = self.by_conn.get(conn_id)
        if ids is not None:
            ids.discard((binding.aor, key))
            if not ids:
                del self.by_conn[conn_id]

    def lookup(self, aor: str) -> list[Binding]:
        bucket = self.by_aor.get(aor)
        return list(bucket.values()) if bucket else []

    def all(self) -> list[Binding]:
        return [b for bucket in self.by_aor.values() for b in bucket.values()]

    def due(self, at: float) -> list[Binding]:
        """The bindings expired at ``at``, popped from the heap (not dropped yet)."""
        out: dict[tuple[str, str], Binding] = {}
        heap = self.heap
        while heap and heap[0][0] <= at:
            expires_at, aor, key = heapq.heappop(heap)
            binding = self.get(aor, key)
            if binding is not None and binding.expires_at == expires_at:
                out[aor, key] = binding  # an entry may be in the heap twice
        return list(out.values())

    def next_expiry(self) -> float | None:
        heap = self.heap
        while heap:
            expires_at, aor, key = heap[0]
            binding = self.get(aor, key)
            if binding is not None and binding.expires_at == expires_at:
                return expires_at
            heapq.heappop(heap)
        return None

    def matching(self, where: int | Endpoint) -> list[Binding]:
        if isinstance(where, int):
            found = (self.get(aor, key) for aor, key in self.by_conn.get(where, ()))
            return [b for b in found if b is not None]
        return [b for b in self.all() if _matches(b, where)]


def _plan(
    upserts: Iterable[Binding], removals: Iterable[Binding]
) -> tuple[list[tuple[str, str]], list[Binding]]:
    """Removals then upserts, as (ids to delete, bindings to write)."""
    writes = list(upserts)
    written = {_ident(b) for b in writes}
    deletes = [i for i in dict.fromkeys(_ident(b) for b in removals) if i not in written]
    return deletes, writes


# -- memory -------------------------------------------------------------------------


class MemoryLocationStore:
    """Bindings in this process only; lost on restart."""

    __slots__ = ("_index",)

    def __init__(self, bindings: Iterable[Binding] = ()) -> None:
        self._index = _Index()
        for binding in bindings:
            self._index.put(binding)

    def lookup(self, aor: str) -> list[Binding]:
        return self._index.lookup(aor)

    def apply(self, upserts: Iterable[Binding] = (), removals: Iterable[Binding] = ()) -> None:
        deletes, writes = _plan(upserts, removals)
        for aor, key in deletes:
            self._index.drop(aor, key)
        for binding in writes:
            self._index.put(binding)

    def all(self) -> list[Binding]:
        return self._index.all()

    def purge_expired(self, at: float) -> list[Binding]:
        gone = self._index.due(at)
        for binding in gone:
            self._index.drop(*_ident(binding))
        return gone

    def next_expiry(self) -> float | None:
        return self._index.next_expiry()

    def mark_unreachable(self, where: int | Endpoint) -> list[Binding]:
        changed = [replace(b, reachable=False) for b in self._index.matching(where) if b.reachable]
        for binding in changed:
            self._index.put(binding)
        return changed

    def close(self) -> None:
        pass


# -- SQLite -------------------------------------------------------------------------

_SCHEMA = (
    """CREATE TABLE bindings (
        aor          TEXT    NOT NULL,
        key          TEXT    NOT NULL,   -- Binding.key: instance + reg-id, or the contact
        contact      TEXT    NOT NULL,
        expires_at   REAL    NOT NULL,   -- epoch seconds
        q            REAL,
        call_id      TEXT    NOT NULL,
        cseq         INTEGER NOT NULL,
        instance_id  TEXT,
        reg_id       INTEGER,
        path         TEXT    NOT NULL,   -- JSON array of Path values, first hop first
        transport    TEXT    NOT NULL,
        host         TEXT    NOT NULL,
        port         INTEGER NOT NULL,
        conn_id      INTEGER,
        user_agent   TEXT,
        received_at  REAL    NOT NULL,   -- epoch seconds
        reachable    INTEGER NOT NULL,
        PRIMARY KEY (aor, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX bindings_expires_at ON bindings (expires_at)",
)

_COLUMNS = (
    "aor, key, contact, expires_at, q, call_id, cseq, instance_id, reg_id, path, "
    "transport, host, port, conn_id, user_agent, received_at, reachable"
)
_UPSERT = f"INSERT OR REPLACE INTO bindings ({_COLUMNS}) VALUES ({', '.join('?' * 17)})"
_DELETE = "DELETE FROM bindings WHERE aor = ? AND key = ?"
_FORGET_CONNECTIONS = "UPDATE bindings SET conn_id = NULL, reachable = 0 WHERE conn_id IS NOT NULL"
_SELECT = f"SELECT {_COLUMNS} FROM bindings ORDER BY aor, received_at, key"

_Row = tuple[
    str,
    str,
    str,
    float,
    float | None,
    str,
    int,
    str | None,
    int | None,
    str,
    str,
    str,
    int,
    int | None,
    str | None,
    float,
    int,
]


def _to_row(b: Binding) -> _Row:
    s = b.source
    return (
        b.aor,
        b.key,
        b.contact,
        b.expires_at,
        b.q,
        b.call_id,
        b.cseq,
        b.instance_id,
        b.reg_id,
        json.dumps(list(b.path)),
        s.transport,
        s.host,
        s.port,
        s.conn_id,
        b.user_agent,
        b.received_at,
        int(b.reachable),
    )


def _from_row(row: _Row) -> Binding:
    (aor, _key, contact, expires_at, q, call_id, cseq, instance_id, reg_id, path) = row[:10]
    (transport, host, port, conn_id, user_agent, received_at, reachable) = row[10:]
    return Binding(
        aor=aor,
        contact=contact,
        expires_at=expires_at,
        q=q,
        call_id=call_id,
        cseq=cseq,
        instance_id=instance_id,
        reg_id=reg_id,
        path=tuple(json.loads(path)),
        source=Endpoint(transport, host, port, conn_id),
        user_agent=user_agent,
        received_at=received_at,
        reachable=bool(reachable),
    )


class SqliteLocationStore:
    """Bindings in ``path`` (created if absent), with the memory index in front.

    One writer: the switch. ``aiguilleur registrations`` reads the file with
    ``read_bindings`` while the switch runs.
    """

    __slots__ = ("_file", "_index", "path")

    def __init__(self, path: Path | str, *, synchronous: Synchronous = "NORMAL") -> None:
        self.path = Path(path)
        self._file = SqliteFile(
            self.path,
            schema=_SCHEMA,
            version=SCHEMA_VERSION,
            synchronous=synchronous,
            error=LocationStoreError,
        )
        try:
            bindings = self._reload()
        except BaseException:
            self._file.close()
            raise
        self._index = _Index()
        for binding in bindings:
            self._index.put(binding)

    def _reload(self) -> list[Binding]:
        """The stored bindings, their connections forgotten and their keys recomputed."""
        with self._file.transaction() as db:
            # Connections do not outlive the process (see the module docstring).
            db.execute(_FORGET_CONNECTIONS)
            bindings = []
            for row in db.execute(_SELECT).fetchall():
                binding = _from_row(row)
                if row[1] != binding.key:
                    # Keys are recomputed on open, so their normal form may evolve.
                    db.execute(_DELETE, (binding.aor, row[1]))
                    db.execute(_UPSERT, _to_row(binding))
                bindings.append(binding)
        return bindings

    def lookup(self, aor: str) -> list[Binding]:
        return self._index.lookup(aor)

    def all(self) -> list[Binding]:
        return self._index.all()

    def next_expiry(self) -> float | None:
        return self._index.next_expiry()

    def apply(self, upserts: Iterable[Binding] = (), removals: Iterable[Binding] = ()) -> None:
        deletes, writes = _plan(upserts, removals)
        if not deletes and not writes:
            return
        self._write(deletes, writes)
        for aor, key in deletes:
            self._index.drop(aor, key)
        for binding in writes:
            self._index.put(binding)

    def purge_expired(self, at: float) -> list[Binding]:
        gone = self._index.due(at)
        if gone:
            try:
                self._write([_ident(b) for b in gone], [])
            except LocationStoreError:
                # Still stored: back in the heap for the next attempt.
                for binding in gone:
                    heapq.heappush(self._index.heap, (binding.expires_at, *_ident(binding)))
                raise
            for binding in gone:
                self._index.drop(*_ident(binding))
        return gone

    def mark_unreachable(self, where: int | Endpoint) -> list[Binding]:
        changed = [replace(b, reachable=False) for b in self._index.matching(where) if b.reachable]
        if changed:
            self._write([], changed)
            for binding in changed:
                self._index.put(binding)
        return changed

    def close(self) -> None:
        self._file.close()

    def _write(self, deletes: list[tuple[str, str]], writes: list[Binding]) -> None:
        """One transaction; committed when this returns, rolled back when it raises."""
        with self._file.transaction() as db:
            if deletes:
                db.executemany(_DELETE, deletes)
            if writes:
                db.executemany(_UPSERT, [_to_row(b) for b in writes])


def read_bindings(path: Path | str) -> list[Binding]:
    """Every binding in a store file, read-only (for ``aiguilleur registrations``).

    An absent file holds no bindings. Nothing is changed, not even the
    ``conn_id`` clean-up a writable open does.
    """
    path = Path(path)
    if not path.exists():
        return []
    try:
        # The switch may be running: read through WAL without taking locks that
        # would delay its commits, and never create the file.
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise LocationStoreError(f"{path}: {exc}") from exc
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        check_version(path, schema_version(db), SCHEMA_VERSION, LocationStoreError)
        return [_from_row(row) for row in db.execute(_SELECT)]
    except sqlite3.Error as exc:
        raise LocationStoreError(f"{path}: {exc}") from exc
    finally:
        db.close()


def location_db_path(data_dir: Path) -> Path:
    """Where the switch keeps its bindings in a data directory."""
    return data_dir / DB_FILE


__all__ = [
    "DB_FILE",
    "SCHEMA_VERSION",
    "AsyncLocationStore",
    "AsyncStore",
    "LocationStore",
    "LocationStoreError",
    "MemoryLocationStore",
    "SqliteLocationStore",
    "location_db_path",
    "read_bindings",
]
