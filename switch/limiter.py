"""Limiteurs: simultaneous calls per service number or shared pool, on one node.

A slot is taken when routing asks for it (``routing.engine.AcquireLimit``) and
held by the call (its id, the *owner*) until the call ends, by whatever path:
the B2BUA releases every slot of a call in one place, ``B2bua._ended``, which
every ending goes through (BYE, CANCEL, failure, RTP timeout, shutdown).

Counts are derived from the holders, never kept apart from them, so they cannot
go negative; a release of something not held is a no-op. ``reconcile`` compares
the holders with the calls the B2BUA still has and frees what a lost call left
behind (a bug elsewhere would otherwise block a number for good); the drift it
corrects is logged and counted, and should stay zero.

Cluster mode (several nodes sharing counts in Redis, slots leased per node)
implements the same interface.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Drift:
    """Slots ``reconcile`` freed: ``owner`` held them but is not a live call."""

    key: str
    owner: str


class Limiter:
    """In-memory limiter of one node; see the module docstring."""

    def __init__(self) -> None:
        self._holders: dict[str, set[str]] = {}  # key -> owners
        self._held: dict[str, set[str]] = {}  # owner -> keys
        self.drift_total = 0

    def acquire(self, key: str, limit: int, owner: str) -> bool:
        """Take a slot of ``key`` for ``owner`` if fewer than ``limit`` are taken.

        An owner holds at most one slot per key: asking again (a program with a
        limiter step after the number's own) succeeds without taking another.
        """
        holders = self._holders.setdefault(key, set())
        if owner in holders:
            return True
        if len(holders) >= limit:
            return False
        holders.add(owner)
        self._held.setdefault(owner, set()).add(key)
        return True

    def release(self, owner: str) -> list[str]:
        """Free every slot ``owner`` holds; the keys freed."""
        keys = self._held.pop(owner, set())
        for key in keys:
            holders = self._holders.get(key)
            if holders is not None:
                holders.discard(owner)
                if not holders:
                    del self._holders[key]
        return sorted(keys)

    def count(self, key: str) -> int:
        holders = self._holders.get(key)
        return 0 if holders is None else len(holders)

    def counts(self) -> dict[str, int]:
        return {key: len(holders) for key, holders in self._holders.items()}

    def reconcile(self, live: Iterable[str]) -> list[Drift]:
        """Free the slots of owners that are not in ``live`` (the calls in progress)."""
        alive = set(live)
        drift = [
            Drift(key, owner)
            for owner, keys in self._held.items()
            if owner not in alive
            for key in sorted(keys)
        ]
        for owner in {d.owner for d in drift}:
            self.release(owner)
        self.drift_total += len(drift)
        return drift


__all__ = ["Drift", "Limiter"]
