"""Débordement: where a call goes when a step cannot go on, by cause.

Causes: ``busy``, ``no_answer``, ``unreachable``, ``rejected`` (a dialled target
failed), ``limit`` (limiteur full), ``closed`` (the calendar has no open period),
and ``all_failed``, a fallback for the four dial causes.

Lookup rule (the same for every cause):

1. the cause itself, on the step, then on the current program, then on the number;
2. for the dial causes only (busy, no_answer, unreachable, rejected), then
   ``all_failed`` in the same order;
3. nothing found: the call is released with the cause and no message.

The current program is the one running when the cause arises: after a ``goto``
or an overflow to another program, that program's table applies, not the
caller's. The number's table sends a call to a program at most once: after
that, the number level is skipped, so a number-level overflow can never loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from routing.program import Cause, FailCause, OverflowTarget

DIAL_CAUSES = frozenset({Cause.BUSY, Cause.NO_ANSWER, Cause.UNREACHABLE, Cause.REJECTED})

CAUSE_LABELS: Mapping[str, str] = {
    "busy": "occupé",
    "no_answer": "sans réponse",
    "unreachable": "injoignable",
    "rejected": "refusé",
    "limit": "limiteur atteint",
    "closed": "fermé",
    "all_failed": "tous en échec",
    "normal": "normal",
    "refused": "refusé",
}


@dataclass(frozen=True, slots=True)
class OverflowLevel:
    """One overflow table and where it was declared (for the ``because`` text)."""

    where: str
    table: Mapping[Cause, OverflowTarget]
    is_number: bool = False


@dataclass(frozen=True, slots=True)
class Resolution:
    """The target found for a cause (``None``: release the call), and why."""

    cause: Cause
    target: OverflowTarget | None
    matched: Cause | None
    level: OverflowLevel | None

    @property
    def where(self) -> str | None:
        return self.level.where if self.level is not None else None

    def explain(self) -> str:
        if self.target is None:
            return f"débordement {self.cause.value} : aucun → appel libéré"
        via = "" if self.matched == self.cause else f" (via {self.matched})"
        return f"débordement {self.cause.value}{via} ({self.where}) → {self.target.describe()}"


def resolve(cause: Cause, levels: Sequence[OverflowLevel]) -> Resolution:
    """Apply the lookup rule of this module to ``levels`` (innermost first)."""
    keys = [cause]
    if cause in DIAL_CAUSES:
        keys.append(Cause.ALL_FAILED)
    for key in keys:
        for level in levels:
            target = level.table.get(key)
            if target is not None:
                return Resolution(cause, target, key, level)
    return Resolution(cause, None, None, None)


def fail_to_cause(cause: FailCause) -> Cause:
    return Cause(cause.value)
