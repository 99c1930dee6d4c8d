"""Limiteur: the keys the engine asks the switch to count, and a pure counter table.

The engine only *asks* (``AcquireLimit(key, max)``); counting across the cluster,
with node leases so a dead node's calls are released, is the switch's job. The
keys are stable strings so every node counts the same thing:

- ``number:+33800100100``: the limiteur of one service number;
- ``pool:<name>``: a pool shared by several numbers or programs.

:class:`LimiterTable` is the reference behaviour in memory (immutable: each call
returns a new table), used by ``explain``, tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


def number_key(number: str) -> str:
    """The limiter key of a service number (its normalized form)."""
    return f"number:{number}"


def pool_key(pool: str) -> str:
    """The limiter key of a named pool."""
    return f"pool:{pool}"


@dataclass(frozen=True, slots=True)
class LimiterTable:
    """Calls in progress per key; ``acquire`` and ``release`` return a new table."""

    counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def count(self, key: str) -> int:
        return self.counts.get(key, 0)

    def acquire(self, key: str, maximum: int) -> tuple[bool, LimiterTable]:
        """Take one slot if fewer than ``maximum`` are taken."""
        current = self.count(key)
        if current >= maximum:
            return False, self
        return True, self._with(key, current + 1)

    def release(self, key: str) -> LimiterTable:
        """Give one slot back (never below zero)."""
        return self._with(key, max(0, self.count(key) - 1))

    def _with(self, key: str, value: int) -> LimiterTable:
        counts = dict(self.counts)
        if value:
            counts[key] = value
        else:
            counts.pop(key, None)
        return LimiterTable(MappingProxyType(counts))
