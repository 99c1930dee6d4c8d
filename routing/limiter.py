"""Limiteur: the keys the engine asks the switch to count.

The engine only *asks* (``AcquireLimit(key, max)``); counting across the cluster,
with node leases so a dead node's calls are released, is the switch's job. The
keys are stable strings so every node counts the same thing:

- ``number:+33800100100``: the limiteur of one service number;
- ``pool:<name>``: a pool shared by several numbers or programs.
"""

from __future__ import annotations


def number_key(number: str) -> str:
    """The limiter key of a service number (its normalized form)."""
    return f"number:{number}"


def pool_key(pool: str) -> str:
    """The limiter key of a named pool."""
    return f"pool:{pool}"
