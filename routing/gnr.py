"""GNR (Groupe de Numéros de Réception): target order, cursors, and the overflow cause.

A GNR holds 1 to 10 reception numbers. Its strategy decides the order in which
they are tried during one visit; every round (``rounds``, the "tentatives au sein
du GNR") tries them again in that same order:

=================  ==============================================================
``sequential``     the declared order, one after another
``simultaneous``   all together (one ``Dial`` per round)
``round_robin``    the declared order rotated: each call starts one further than
                   the previous call (cursor: the next starting index)
``least_recent``   the target that answered least recently first (cursor: a tick
                   per target, taken when it answers; never answered = first)
``weighted``       an order drawn by weight without replacement (injected random)
=================  ==============================================================

Cursors are state shared between calls, so they are *passed in and returned*:
the session starts from a :class:`Cursors` value and hands back a new one
(``RoutingSession.cursors``) that the caller persists (memory, Redis). Nothing
here keeps global state.

The overflow cause of a GNR visit comes from its failed attempts (every round;
a target skipped because known busy counts as ``busy``):

- all attempts failed for the same cause: that cause;
- different causes: the first cause of the step's ``precedence`` list that
  occurred (default ``busy, no_answer, unreachable, rejected``);
- none of the occurring causes is listed in ``precedence``: ``all_failed``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from routing.program import Cause, FailCause, GnrStep, GnrTarget, Strategy

_EMPTY: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Cursors:
    """Round-robin positions and least-recent ticks, keyed by GNR cursor name.

    Immutable: every change returns a new value.
    """

    positions: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    last_answered: Mapping[str, Mapping[str, int]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    tick: int = 0

    def position(self, key: str) -> int:
        return self.positions.get(key, 0)

    def with_position(self, key: str, value: int) -> Cursors:
        positions = dict(self.positions)
        positions[key] = value
        return Cursors(MappingProxyType(positions), self.last_answered, self.tick)

    def answered(self, key: str, target: str) -> Cursors:
        """``target`` of GNR ``key`` just answered: it becomes the most recent."""
        tick = self.tick + 1
        ticks = dict(self.last_answered.get(key, _EMPTY))
        ticks[target] = tick
        table = dict(self.last_answered)
        table[key] = MappingProxyType(ticks)
        return Cursors(self.positions, MappingProxyType(table), tick)


@dataclass(frozen=True, slots=True)
class Order:
    targets: tuple[GnrTarget, ...]
    cursors: Cursors
    why: str


STRATEGY_LABELS: Mapping[Strategy, str] = {
    Strategy.SEQUENTIAL: "séquentiel",
    Strategy.SIMULTANEOUS: "simultané",
    Strategy.ROUND_ROBIN: "tourniquet",
    Strategy.LEAST_RECENT: "le moins récemment sollicité",
    Strategy.WEIGHTED: "pondéré",
}


def _names(targets: Sequence[GnrTarget]) -> str:
    return ", ".join(t.number for t in targets)


def order_targets(step: GnrStep, key: str, cursors: Cursors, rng: random.Random) -> Order:
    """The order of ``step.targets`` for this visit, the updated cursors, and why."""
    targets = tuple(step.targets)
    n = len(targets)
    if step.strategy is Strategy.ROUND_ROBIN:
        start = cursors.position(key) % n
        ordered = targets[start:] + targets[:start]
        return Order(
            ordered,
            cursors.with_position(key, (start + 1) % n),
            f"tourniquet : départ à {ordered[0].number} ({_names(ordered)})",
        )
    if step.strategy is Strategy.LEAST_RECENT:
        ticks = cursors.last_answered.get(key, _EMPTY)
        ranked = sorted(range(n), key=lambda i: (ticks.get(targets[i].number, -1), i))
        ordered = tuple(targets[i] for i in ranked)
        return Order(ordered, cursors, f"le moins récemment sollicité d'abord ({_names(ordered)})")
    if step.strategy is Strategy.WEIGHTED:
        pool = list(targets)
        drawn: list[GnrTarget] = []
        while pool:
            total = sum(t.weight for t in pool)
            point = rng.random() * total
            for i, t in enumerate(pool):
                point -= t.weight
                if point < 0 or i == len(pool) - 1:
                    drawn.append(pool.pop(i))
                    break
        ordered = tuple(drawn)
        return Order(ordered, cursors, f"tirage pondéré ({_names(ordered)})")
    label = STRATEGY_LABELS[step.strategy]
    return Order(targets, cursors, f"{label} ({_names(targets)})")


def decide_cause(attempts: Sequence[FailCause], precedence: Sequence[FailCause]) -> Cause:
    """The overflow cause of a GNR visit from its failed attempts (rule above)."""
    seen = set(attempts)
    if len(seen) == 1:
        return Cause(next(iter(seen)).value)
    for cause in precedence:
        if cause in seen:
            return Cause(cause.value)
    return Cause.ALL_FAILED
