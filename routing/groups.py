"""Groupements (hunt groups) at call time: who rings, in which order, day or night.

Spec: ``PRODUCT.md`` (hosted PBX: groupements, the "Standard" ``999``), ``STAR-CODES.md``
(``*31`` / ``*30``). Pure: the switch gives the facts (declared membership from the
directory, each line's stored settings, the group's stored override, whether its
calendar is open now) and executes the steps.

- **Members now**: the lines that declare the group (``directory.yaml``; every line is
  in ``999`` unless its ``groups`` list leaves it out) and have not left it with
  ``*30`` (``LineSettings.left_groups``), in directory order, never the caller's own
  line (``exclude``).
- **Steps**: ``simultaneous``: one step ringing every member for the group's ring
  time; ``sequential``: one step per member, each ringing for the ring time, in order.
  After the last step the group overflows (its ``overflow`` destination, else a
  failure).
- **Day / night**: the manual override (``GroupSettings.day_night``, admin API) while it
  lasts, else the group's calendar (open: day, closed: night; no calendar: always day).
  At night the call goes to the group's night destination instead of its members.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from routing.linesettings import DayNight, GroupSettings, LineSettings, day_night_mode

Strategy = Literal["simultaneous", "sequential"]


@dataclass(frozen=True, slots=True)
class MemberFacts:
    """One line as the group sees it: its extension, declared groups, stored settings."""

    extension: str
    declared: frozenset[str]
    settings: LineSettings = field(default_factory=LineSettings)


@dataclass(frozen=True, slots=True)
class HuntStep:
    """Ring ``extensions`` together for ``ring_s`` seconds."""

    extensions: tuple[str, ...]
    ring_s: int


def current_members(
    group: str, lines: Iterable[MemberFacts], *, exclude: Iterable[str] = ()
) -> tuple[str, ...]:
    """The extensions that ring for ``group`` now, in directory order (module docstring)."""
    skip = frozenset(exclude)
    return tuple(
        line.extension
        for line in lines
        if line.extension not in skip and line.settings.in_group(group, line.declared)
    )


def hunt_steps(strategy: Strategy, members: Iterable[str], ring_s: int) -> tuple[HuntStep, ...]:
    """The dials of one hunt: all members at once, or one after another."""
    ordered = tuple(members)
    if not ordered:
        return ()
    if strategy == "simultaneous":
        return (HuntStep(ordered, ring_s),)
    return tuple(HuntStep((extension,), ring_s) for extension in ordered)


def group_mode(
    settings: GroupSettings, calendar_open: bool | None, at: datetime
) -> tuple[DayNight, str]:
    """Day or night at ``at`` and why: the override while it lasts, else the calendar
    (``calendar_open`` None: the group has none, always day)."""
    scheduled = DayNight.NIGHT if calendar_open is False else DayNight.DAY
    return day_night_mode(settings, scheduled, at)


__all__ = ["HuntStep", "MemberFacts", "Strategy", "current_members", "group_mode", "hunt_steps"]
