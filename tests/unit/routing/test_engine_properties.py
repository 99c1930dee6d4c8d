"""Properties of the engine over wide inputs (Hypothesis, bounded).

- every session ends, within a bound, whatever the program and the outcomes
  (even programs the loader would refuse, such as goto cycles);
- a GNR never rings more than 10 targets at once, nor more than ``rounds`` rounds,
  nor any target twice in one round;
- ``closed`` comes exactly when the calendar says closed: at any instant of
  2026-2030, around the DST changes, on each French public holiday of 2026-2030
  (Easter-based ones included) and on the Alsace-Moselle extras.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.calendar import Calendar
from routing.engine import (
    MAX_ACTIONS,
    MAX_JUMPS,
    AcquireLimit,
    Action,
    Answered,
    Closed,
    Dial,
    Failed,
    LimitAcquired,
    LimitFull,
    Outcome,
    Play,
    PlayDone,
    Reject,
    RoutingContext,
    RoutingSession,
    is_terminal,
)
from routing.loader import Library, NumberEntry
from routing.program import MAX_GNR_TARGETS, FailCause, Program, ServiceNumber, Strategy

PARIS = ZoneInfo("Europe/Paris")
KEY = "+33891000000"
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

CALENDAR = Calendar.model_validate(
    {
        "timezone": "Europe/Paris",
        "holidays": "FR",
        "periods": {
            "ouvert": [{"days": ["mon", "tue", "wed", "thu", "fri"], "ranges": ["08:00-19:00"]}],
            # A range across the spring-forward gap and one across the fall-back hour.
            "nuit": [{"days": ["sun"], "ranges": ["01:30-03:30"]}],
        },
    }
)


def library_of(
    programs: dict[str, Program],
    *,
    calendar: Calendar = CALENDAR,
    limit: int | None = None,
) -> Library:
    """A library built from models directly (no loader checks: cycles allowed)."""
    service = ServiceNumber(program="p", domain="pbx.test", limit=limit)
    return Library(
        directory=Path("."),
        numbers=MappingProxyType({KEY: NumberEntry(KEY, "0891000000", service)}),
        programs=MappingProxyType(programs),
        messages=MappingProxyType({}),
        calendars=MappingProxyType({"horaires": calendar}),
        caller_lists=MappingProxyType({}),
        contracts=MappingProxyType({}),
        main_contract=MappingProxyType({}),
        digest="test",
    )


FAILS = st.sampled_from(list(FailCause)).map(Failed)


def outcome_for(action: Action, data: st.DataObject) -> Outcome:
    if data.draw(st.integers(0, 40)) == 0:
        return Closed()
    if isinstance(action, AcquireLimit):
        full: Outcome = LimitFull() if data.draw(st.booleans()) else LimitAcquired()
        return full
    if isinstance(action, Play):
        return PlayDone(skipped=data.draw(st.booleans()))
    assert isinstance(action, Dial)
    if data.draw(st.integers(0, 4)) == 0:
        return Answered(data.draw(st.sampled_from(action.targets)).number)
    return data.draw(FAILS)


def run(
    library: Library,
    data: st.DataObject,
    *,
    at: datetime | None = None,
    busy: frozenset[str] = frozenset(),
) -> list[Action]:
    ctx = RoutingContext(
        "0891000000",
        at or datetime(2026, 5, 12, 10, 0, tzinfo=PARIS),
        caller=data.draw(st.sampled_from([None, "0612345678", "+447700900123", "anonymous"])),
        known_busy=busy,
    )
    session = RoutingSession(library, ctx, rng=random.Random(data.draw(st.integers(0, 2**32))))
    actions = [session.start()]
    while not is_terminal(actions[-1]):
        assert len(actions) <= MAX_ACTIONS
        actions.append(session.resume(outcome_for(actions[-1], data)))
    assert session.finished
    return actions


# --- GNR ---------------------------------------------------------------------------

TARGETS = st.lists(
    st.integers(400, 499).map(str), min_size=1, max_size=MAX_GNR_TARGETS, unique=True
)


@SETTINGS
@given(
    targets=TARGETS,
    strategy=st.sampled_from(list(Strategy)),
    rounds=st.integers(1, 10),
    data=st.data(),
)
def test_gnr_never_exceeds_its_bounds(
    targets: list[str], strategy: Strategy, rounds: int, data: st.DataObject
) -> None:
    gnr = {"type": "gnr", "targets": targets, "strategy": strategy.value, "rounds": rounds}
    program = Program.model_validate({"steps": [gnr]})
    busy = frozenset(data.draw(st.lists(st.sampled_from(targets), unique=True)))
    actions = run(library_of({"p": program}), data, busy=busy)
    dials = [a for a in actions if isinstance(a, Dial)]
    per_round: dict[int, list[str]] = {}
    for dial in dials:
        assert 1 <= len(dial.targets) <= MAX_GNR_TARGETS
        assert 1 <= dial.round <= dial.rounds == rounds
        assert dial.strategy is strategy
        numbers = [t.number for t in dial.targets]
        assert not busy & set(numbers), "a target known busy was rung"
        per_round.setdefault(dial.round, []).extend(numbers)
    assert len(per_round) <= rounds
    for rnd, rung in per_round.items():
        assert len(rung) == len(set(rung)) <= len(targets)
        if strategy is Strategy.SIMULTANEOUS:
            assert len([d for d in dials if d.round == rnd]) == 1
    end = actions[-1]
    if isinstance(end, Reject):
        assert end.cause.value in {c.value for c in FailCause} | {"all_failed", "normal"}


# --- any program terminates --------------------------------------------------------

LEAF = st.one_of(
    st.builds(lambda n: {"type": "dial", "number": n}, st.integers(400, 410).map(str)),
    st.builds(
        lambda ts, r, s: {"type": "gnr", "targets": ts, "rounds": r, "strategy": s},
        TARGETS,
        st.integers(1, 3),
        st.sampled_from([s.value for s in Strategy]),
    ),
    st.just({"type": "hangup"}),
    st.just({"type": "limit", "max": 2}),
    st.just({"type": "play", "message": "m"}),
    st.just({"type": "voicemail", "box": "401"}),
    st.sampled_from([{"type": "goto", "program": p} for p in ("p", "q")]),
)


def _nest(children: st.SearchStrategy[list[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(
            lambda a, b: {
                "type": "calendar",
                "calendar": "horaires",
                "branches": {"ouvert": a, "nuit": b},
            },
            children,
            children,
        ),
        st.builds(
            lambda a, b: {
                "type": "callers",
                "branches": [{"nature": ["mobile"], "steps": a}],
                "others": b,
            },
            children,
            children,
        ),
        st.builds(
            lambda a, b: {
                "type": "split",
                "branches": [{"percent": 50, "steps": a}, {"percent": 50, "steps": b}],
            },
            children,
            children,
        ),
    )


STEPS = st.recursive(
    st.lists(LEAF, min_size=1, max_size=4),
    lambda children: st.lists(st.one_of(LEAF, _nest(children)), min_size=1, max_size=4),
    max_leaves=12,
)
OVERFLOW = st.dictionaries(
    st.sampled_from(
        ["busy", "no_answer", "unreachable", "rejected", "limit", "closed", "all_failed"]
    ),
    st.one_of(
        st.builds(lambda n: {"number": n}, st.integers(600, 605).map(str)),
        st.just({"message": "m"}),
        st.sampled_from([{"program": "p"}, {"program": "q"}]),
    ),
    max_size=4,
)


@SETTINGS
@given(p=STEPS, q=STEPS, p_overflow=OVERFLOW, q_overflow=OVERFLOW, data=st.data())
def test_every_session_terminates(
    p: list[Any],
    q: list[Any],
    p_overflow: dict[str, Any],
    q_overflow: dict[str, Any],
    data: st.DataObject,
) -> None:
    programs = {
        "p": Program.model_validate({"steps": p, "overflow": p_overflow}),
        "q": Program.model_validate({"steps": q, "overflow": q_overflow}),
    }
    at = datetime(2026, 5, 12, 10, 0, tzinfo=PARIS) + timedelta(
        hours=data.draw(st.integers(0, 24 * 7))
    )
    actions = run(library_of(programs, limit=data.draw(st.sampled_from([None, 3]))), data, at=at)
    assert is_terminal(actions[-1])
    assert all(a.because for a in actions)
    assert len(actions) <= MAX_ACTIONS


# --- closed exactly when the calendar says so --------------------------------------

CLOSED_PROGRAM = Program.model_validate(
    {
        "steps": [
            {
                "type": "calendar",
                "calendar": "horaires",
                "branches": {
                    "ouvert": [{"type": "dial", "number": "401"}],
                    "nuit": [{"type": "dial", "number": "402"}],
                },
            }
        ]
    }
)


def first_action(library: Library, at: datetime) -> Action:
    ctx = RoutingContext("0891000000", at, caller="0612345678")
    return RoutingSession(library, ctx, rng=random.Random(0)).start()


def assert_closed_iff_calendar(library: Library, calendar: Calendar, at: datetime) -> None:
    action = first_action(library, at)
    decision = calendar.evaluate(at)
    if decision.period is None:
        assert isinstance(action, Reject)
        assert action.cause.value == "closed"
        assert decision.reason in action.because[1]
    else:
        assert isinstance(action, Dial)
        expected = {"ouvert": "401", "nuit": "402"}[decision.period]
        assert action.targets[0].number == expected


INSTANTS = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31, 23, 59)
).map(lambda d: d.replace(tzinfo=UTC))

DST_CHANGES = [
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 02:00 CET -> 03:00 CEST
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),  # 03:00 CEST -> 02:00 CET
    datetime(2027, 3, 28, 1, 0, tzinfo=UTC),
    datetime(2027, 10, 31, 1, 0, tzinfo=UTC),
]
AROUND_DST = st.builds(
    lambda base, minutes: base + timedelta(minutes=minutes),
    st.sampled_from(DST_CHANGES),
    st.integers(-180, 180),
)


@SETTINGS
@given(at=st.one_of(INSTANTS, AROUND_DST))
def test_closed_exactly_when_the_calendar_says(at: datetime) -> None:
    assert_closed_iff_calendar(library_of({"p": CLOSED_PROGRAM}), CALENDAR, at)


def _holidays(subdiv: str | None) -> dict[date, str]:
    table = holidays.country_holidays("FR", subdiv=subdiv, years=range(2026, 2031), language="fr")
    return dict(table.items())


@pytest.mark.parametrize("zone", ["FR", "FR-57", "FR-6AE"])
def test_closed_on_every_holiday_2026_2030(zone: str) -> None:
    subdiv = None if zone == "FR" else zone[3:]
    days = _holidays(subdiv)
    if zone != "FR":
        # Alsace-Moselle: Good Friday and 26 December on top of the national days.
        extras = {d for d, name in days.items() if d not in _holidays(None)}
        assert {(d.month, d.day) for d in extras if d.month == 12} == {(12, 26)}
        assert len(extras) == 10  # 2 per year over 5 years
    calendar = CALENDAR.for_site(holidays=zone)
    library = library_of({"p": CLOSED_PROGRAM}, calendar=calendar)
    for day, name in days.items():
        at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=PARIS)
        action = first_action(library, at)
        assert isinstance(action, Reject), (day, name)
        assert action.cause.value == "closed"
        assert name in action.because[1]
        assert_closed_iff_calendar(library, calendar, at)
    # Easter Monday, Ascension and Whit Monday are among them, every year.
    assert sum(1 for name in days.values() if "Pâques" in name) >= 5
    assert sum(1 for name in days.values() if name == "Ascension") == 5


def test_number_holiday_zone_applies_to_shared_calendar() -> None:
    """Good Friday 2026 (3 April): open in Paris, closed for a number in Moselle."""
    good_friday = datetime(2026, 4, 3, 10, 0, tzinfo=PARIS)
    paris = library_of({"p": CLOSED_PROGRAM})
    assert isinstance(first_action(paris, good_friday), Dial)
    service = ServiceNumber(program="p", holidays="FR-57")
    metz = Library(
        **{
            **{f: getattr(paris, f) for f in ("directory", "programs", "messages", "calendars")},
            **{f: getattr(paris, f) for f in ("caller_lists", "contracts", "main_contract")},
            "numbers": MappingProxyType({KEY: NumberEntry(KEY, "0891000000", service)}),
            "digest": "metz",
        }
    )
    action = first_action(metz, good_friday)
    assert isinstance(action, Reject)
    assert "Vendredi saint" in action.because[1]


def test_goto_cycle_is_cut_by_the_jump_bound() -> None:
    """The loader refuses cycles; the engine still ends if one slips through."""
    programs = {
        "p": Program.model_validate({"steps": [{"type": "goto", "program": "q"}]}),
        "q": Program.model_validate({"steps": [{"type": "goto", "program": "p"}]}),
    }
    action = first_action(library_of(programs), datetime(2026, 5, 12, 10, 0, tzinfo=PARIS))
    assert isinstance(action, Reject)
    assert action.because[-1] == f"plus de {MAX_JUMPS} changements de programme → appel libéré"
    # The number, the 16 allowed changes, the 17th refused, the verdict.
    assert len(action.because) == 1 + MAX_JUMPS + 1 + 1
