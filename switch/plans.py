"""Plans de secours switched on at run time: who, when, and kept across restarts.

A number's backup plans are declared in its routing file (``backup_plans:``);
``aiguilleur plan activate NUMBER PLAN`` (through the admin API) switches one on
at once. The switch must not forget it: a restart or a routing reload would
otherwise silently route calls through the normal program again while the site
is still down. So each activation is a row in ``DATA_DIR/plans.sqlite3`` and is
applied again to every library the switch installs (start, SIGHUP, reload).

- The table holds active plans only; deactivating deletes the row. The
  routing file's own ``active_backup:`` stays the default underneath: after a
  deactivation, a reload gives the number what its file says.
- Numbers are stored in the library's key form (E.164, ``+33800100100``), so
  ``0800100100`` and ``+33800100100`` name the same row.
- Every change is logged (``plan.activated``/``plan.deactivated`` with number,
  plan, by, at) at level warning, so that the audit trail survives
  ``log_level: warning``: a plan de secours means a site is in trouble.
- A stored plan that a newer library no longer knows (the number or plan was
  removed from the files) is dropped with ``plan.dropped``: the files won.

Active calls are never touched: a call keeps the library it started with.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from routing.loader import Library, LibraryHolder

log = logging.getLogger("switch.plans")

DB_FILE = "plans.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS active_plan (
    number TEXT PRIMARY KEY,
    plan TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


def plans_db_path(data_dir: Path) -> Path:
    return data_dir / DB_FILE


class PlanError(Exception):
    """A plan request the library cannot satisfy; ``status_code`` is the HTTP answer."""

    status_code = 404


@dataclass(frozen=True, slots=True)
class ActivePlan:
    """One activation: ``number`` in key form (E.164 or short), ``at`` tz-aware UTC."""

    number: str
    plan: str
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PlanChange:
    """What an activation or deactivation did: the admin API's answer."""

    number: str
    """National form (``0800100100``), as operators write it."""
    plan: str | None
    """The plan now on (None: the number's normal program, or its file's plan)."""
    by: str
    at: datetime

    def as_json(self) -> dict[str, str | None]:
        return {"number": self.number, "plan": self.plan, "by": self.by, "at": self.at.isoformat()}


class PlanStore:
    """The ``active_plan`` table (SQLite, WAL): a handful of rows, written by hand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def active(self) -> list[ActivePlan]:
        rows = self._db.execute("SELECT number, plan, by, at FROM active_plan ORDER BY number")
        return [ActivePlan(n, p, b, datetime.fromisoformat(a)) for n, p, b, a in rows]

    def put(self, plan: ActivePlan) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO active_plan (number, plan, by, at) VALUES (?, ?, ?, ?)",
            (plan.number, plan.plan, plan.by, plan.at.isoformat()),
        )

    def delete(self, number: str) -> None:
        self._db.execute("DELETE FROM active_plan WHERE number = ?", (number,))

    def close(self) -> None:
        self._db.close()


class BackupPlans:
    """Active plans applied to the running library, persisted in a :class:`PlanStore`.

    ``wall`` gives the ``at`` of each change (real time: it is an audit record,
    not a routing input).
    """

    def __init__(
        self,
        store: PlanStore,
        holder: LibraryHolder | None,
        *,
        wall: Callable[[], float],
    ) -> None:
        self.store = store
        self.holder = holder
        self.wall = wall

    def apply(self, library: Library) -> Library:
        """``library`` with every stored plan on; stored plans it does not know are dropped."""
        for active in self.store.active():
            try:
                library = library.with_active_backup(active.number, active.plan)
            except KeyError as exc:
                self.store.delete(active.number)
                log.warning(
                    "plan.dropped",
                    extra={
                        "number": active.number,
                        "plan": active.plan,
                        "by": active.by,
                        "at": active.at.isoformat(),
                        "detail": f"the routing files no longer define {exc.args[0]!r}",
                    },
                )
        return library

    def activate(self, number: str, plan: str, by: str) -> PlanChange:
        """Switch ``plan`` on for ``number`` now; raise :class:`PlanError` if unknown."""
        holder = self._holder()
        library = holder.current
        entry = library.find_number(number)
        if entry is None:
            raise PlanError(f"unknown number {number!r}")
        if plan not in entry.service.backup_plans:
            known = ", ".join(sorted(entry.service.backup_plans)) or "none"
            raise PlanError(f"{entry.national} has no backup plan {plan!r} (backup_plans: {known})")
        installed = library.with_active_backup(entry.key, plan)
        active = ActivePlan(entry.key, plan, by, self._now())
        self.store.put(active)  # first: a failed write changes nothing
        holder.swap(installed)
        log.warning(
            "plan.activated",
            extra={"number": entry.national, "plan": plan, "by": by, "at": active.at.isoformat()},
        )
        return PlanChange(entry.national, plan, by, active.at)

    def deactivate(self, number: str, by: str) -> PlanChange:
        """Switch ``number``'s plan de secours off; raise :class:`PlanError` if unknown."""
        holder = self._holder()
        library = holder.current
        entry = library.find_number(number)
        if entry is None:
            raise PlanError(f"unknown number {number!r}")
        at = self._now()
        self.store.delete(entry.key)
        holder.swap(library.with_active_backup(entry.key, None))
        log.warning(
            "plan.deactivated",
            extra={
                "number": entry.national,
                "plan": entry.service.active_backup,  # the one switched off (None: none was on)
                "by": by,
                "at": at.isoformat(),
            },
        )
        return PlanChange(entry.national, None, by, at)

    def listing(self) -> list[dict[str, str | None]]:
        """Every number whose plan de secours is on, and who switched it on, when.

        A plan set by the routing file (``active_backup:``) has no ``by``/``at``.
        """
        holder = self._holder()
        stored = {active.number: active for active in self.store.active()}
        out: list[dict[str, str | None]] = []
        for key, entry in sorted(holder.current.numbers.items()):
            plan = entry.service.active_backup
            if plan is None:
                continue
            active = stored.get(key)
            out.append(
                {
                    "number": entry.national,
                    "plan": plan,
                    "by": active.by if active is not None else None,
                    "at": active.at.isoformat() if active is not None else None,
                    "source": "admin" if active is not None else "routing file",
                }
            )
        return out

    def _holder(self) -> LibraryHolder:
        if self.holder is None:
            raise PlanError("no routing programs are loaded (no routing/ directory)")
        return self.holder

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)
