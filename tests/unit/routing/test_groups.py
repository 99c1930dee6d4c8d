"""routing.groups: current members, hunt steps, day/night."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from routing.groups import HuntStep, MemberFacts, current_members, group_mode, hunt_steps
from routing.linesettings import DayNight, DayNightOverride, GroupSettings, LineSettings

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LINES = [
    MemberFacts("401", frozenset({"999"})),
    MemberFacts("402", frozenset({"999", "500"})),
    MemberFacts("403", frozenset({"999", "500"}), LineSettings(left_groups=frozenset({"999"}))),
    MemberFacts("601", frozenset({"500"})),
]


def test_members_are_declared_and_not_left_in_directory_order() -> None:
    assert current_members("500", LINES) == ("402", "403", "601")
    assert current_members("999", LINES) == ("401", "402")  # 403 left 999 (*30*999)


def test_the_caller_never_rings_for_its_own_call() -> None:
    assert current_members("999", LINES, exclude={"401"}) == ("402",)


def test_unknown_group_has_no_member() -> None:
    assert current_members("510", LINES) == ()


def test_simultaneous_is_one_step_sequential_one_per_member() -> None:
    members = ("402", "403", "601")
    assert hunt_steps("simultaneous", members, 20) == (HuntStep(members, 20),)
    assert hunt_steps("sequential", members, 7) == (
        HuntStep(("402",), 7),
        HuntStep(("403",), 7),
        HuntStep(("601",), 7),
    )
    assert hunt_steps("sequential", (), 7) == ()
    assert hunt_steps("simultaneous", (), 7) == ()


def test_calendar_decides_without_override() -> None:
    assert group_mode(GroupSettings(), None, NOW)[0] is DayNight.DAY
    assert group_mode(GroupSettings(), True, NOW)[0] is DayNight.DAY
    mode, why = group_mode(GroupSettings(), False, NOW)
    assert mode is DayNight.NIGHT
    assert why == "mode nuit selon l'horaire"


def test_override_wins_while_it_lasts() -> None:
    forced = GroupSettings(DayNightOverride(DayNight.NIGHT))
    assert group_mode(forced, True, NOW) == (DayNight.NIGHT, "mode nuit forcé")
    until = GroupSettings(DayNightOverride(DayNight.DAY, NOW + timedelta(hours=1)))
    assert group_mode(until, False, NOW)[0] is DayNight.DAY
    assert group_mode(until, False, NOW + timedelta(hours=2))[0] is DayNight.NIGHT
