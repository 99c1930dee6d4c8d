"""Calendriers: weekly periods, jours fériés, exceptional dates, time zones and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from routing.calendar import Calendar, evaluate

PARIS = ZoneInfo("Europe/Paris")
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def calendar(**fields: Any) -> Calendar:
    fields.setdefault("periods", {"ouvert": [{"days": EVERY_DAY, "ranges": ["00:00-24:00"]}]})
    return Calendar.model_validate(fields)


def paris(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=PARIS)


OFFICE = calendar(
    periods={
        "ouvert": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "ranges": ["08:00-12:00", "13:30-19:00"]}
        ],
        "samedi": [{"days": ["sat"], "ranges": ["09:00-12:00"]}],
    },
    closed=[
        {"date": "2026-08-14", "label": "pont de l'Assomption"},
        {"from": "2026-12-24", "to": "2026-12-31", "label": "fermeture annuelle"},
    ],
    open=[
        {"date": "2026-05-25", "label": "lundi de Pentecôte travaillé", "period": "ouvert"},
        {"date": "2026-12-28", "label": "inventaire", "ranges": ["10:00-12:00"]},
    ],
)

# -- weekly periods ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "period", "reason"),
    [
        (paris(2026, 6, 1, 8, 0), "ouvert", 'période "ouvert" (lundi 08:00-12:00)'),
        (paris(2026, 6, 1, 11, 59, 59), "ouvert", 'période "ouvert" (lundi 08:00-12:00)'),
        (paris(2026, 6, 1, 12, 0), None, "fermé: hors horaires"),
        (paris(2026, 6, 1, 13, 29), None, "fermé: hors horaires"),
        (paris(2026, 6, 1, 13, 30), "ouvert", 'période "ouvert" (lundi 13:30-19:00)'),
        (paris(2026, 6, 5, 18, 59), "ouvert", 'période "ouvert" (vendredi 13:30-19:00)'),
        (paris(2026, 6, 5, 19, 0), None, "fermé: hors horaires"),
        (paris(2026, 6, 1, 7, 59), None, "fermé: hors horaires"),
        (paris(2026, 6, 6, 9, 0), "samedi", 'période "samedi" (samedi 09:00-12:00)'),
        (paris(2026, 6, 7, 10, 0), None, "fermé: hors horaires"),
    ],
)
def test_weekly_periods(at: datetime, period: str | None, reason: str) -> None:
    decision = OFFICE.evaluate(at)
    assert (decision.period, decision.reason, decision.holiday) == (period, reason, None)
    assert decision.is_open is (period is not None)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OFFICE.evaluate(datetime(2026, 6, 1, 10, 0))


def test_module_function() -> None:
    assert evaluate(OFFICE, paris(2026, 6, 1, 10)).period == "ouvert"


def test_24_00_end() -> None:
    late = calendar(periods={"nuit": [{"days": ["mon"], "ranges": ["20:00-24:00"]}]})
    assert late.evaluate(paris(2026, 6, 1, 23, 59, 59)).period == "nuit"
    assert late.evaluate(paris(2026, 6, 2, 0, 0)).period is None


# -- public holidays 2026-2030 -------------------------------------------------------------------

EASTER = {2026: date(2026, 4, 5), 2027: date(2027, 3, 28), 2028: date(2028, 4, 16),
          2029: date(2029, 4, 1), 2030: date(2030, 4, 21)}  # fmt: skip
FIXED = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]


def french_holidays(year: int) -> set[date]:
    easter = EASTER[year]
    moving = {easter + timedelta(days=d) for d in (1, 39, 50)}  # Pâques, Ascension, Pentecôte
    return {date(year, m, d) for m, d in FIXED} | moving


ALL_HOLIDAYS = sorted(d for y in EASTER for d in french_holidays(y))


@pytest.mark.parametrize("day", ALL_HOLIDAYS, ids=str)
def test_each_french_public_holiday_is_closed(day: date) -> None:
    cal = calendar()
    decision = cal.evaluate(datetime(day.year, day.month, day.day, 12, tzinfo=PARIS))
    assert decision.period is None
    assert decision.holiday is not None
    assert decision.reason == f"fermé: jour férié ({decision.holiday})"
    assert cal.evaluate(datetime(day.year, day.month, day.day, 0, tzinfo=PARIS)).period is None


def test_holidays_are_exactly_those_days() -> None:
    cal = calendar()
    day = date(2026, 1, 1)
    while day.year <= 2030:
        closed = cal.evaluate(datetime(day.year, day.month, day.day, 12, tzinfo=PARIS)).period
        assert (closed is None) == (day in ALL_HOLIDAYS), day
        day += timedelta(days=1)


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2026, 4, 6), "Lundi de Pâques"),
        (date(2026, 5, 14), "Ascension"),
        (date(2026, 5, 25), "Lundi de Pentecôte"),
        (date(2027, 5, 17), "Lundi de Pentecôte"),
        (date(2030, 5, 30), "Ascension"),
    ],
)
def test_easter_based_holiday_names(day: date, name: str) -> None:
    assert calendar().holiday(day) == name


def test_ascension_2026_closed_for_a_weekday_calendar() -> None:
    weekdays = calendar(periods={"ouvert": [{"days": EVERY_DAY[:5], "ranges": ["08:00-19:00"]}]})
    assert weekdays.evaluate(paris(2026, 5, 13, 10)).period == "ouvert"
    decision = weekdays.evaluate(paris(2026, 5, 14, 10))
    assert (decision.period, decision.reason) == (None, "fermé: jour férié (Ascension)")
    assert weekdays.evaluate(paris(2026, 5, 15, 10)).period == "ouvert"


def test_holidays_open_when_not_closed() -> None:
    cal = calendar(holidays_closed=False)
    decision = cal.evaluate(paris(2026, 5, 14, 10))
    assert (decision.period, decision.holiday) == ("ouvert", "Ascension")


def test_no_holidays() -> None:
    assert calendar(holidays=None).evaluate(paris(2026, 12, 25, 10)).period == "ouvert"


# -- Alsace-Moselle and overseas -----------------------------------------------------------------


@pytest.mark.parametrize("year", sorted(EASTER))
@pytest.mark.parametrize(("zone", "extra"), [("FR", False), ("FR-57", True), ("FR-6AE", True)])
def test_alsace_moselle_extras(year: int, zone: str, extra: bool) -> None:
    cal = calendar(holidays=zone)
    good_friday = EASTER[year] - timedelta(days=2)
    st_stephen = date(year, 12, 26)
    for day in (good_friday, st_stephen):
        decision = cal.evaluate(datetime(day.year, day.month, day.day, 10, tzinfo=PARIS))
        assert (decision.period is None) is extra, (zone, day)


@pytest.mark.parametrize(
    ("zone", "tz", "day", "other_zone_day"),
    [
        ("FR-971", "America/Guadeloupe", date(2026, 5, 27), date(2026, 5, 22)),
        ("FR-972", "America/Martinique", date(2026, 5, 22), date(2026, 5, 27)),
        ("FR-973", "America/Cayenne", date(2026, 6, 10), date(2026, 5, 22)),
        ("FR-974", "Indian/Reunion", date(2026, 12, 20), date(2026, 5, 22)),
        ("FR-976", "Indian/Mayotte", date(2026, 4, 27), date(2026, 12, 20)),
        ("FR-PM", "America/Miquelon", date(2026, 12, 25), date(2026, 5, 22)),
        ("FR-RE", "Indian/Reunion", date(2027, 12, 20), date(2026, 5, 27)),
    ],
)
def test_overseas_holidays_in_their_zone(
    zone: str, tz: str, day: date, other_zone_day: date
) -> None:
    cal = calendar(timezone=tz, holidays=zone)
    local = ZoneInfo(tz)
    at = datetime(day.year, day.month, day.day, 10, tzinfo=local)
    assert cal.evaluate(at).period is None
    other = other_zone_day
    assert cal.evaluate(datetime(other.year, other.month, other.day, 10, tzinfo=local)).period


def test_abolition_in_reunion_2026_is_a_sunday_20_december() -> None:
    cal = calendar(holidays="FR-974", timezone="Indian/Reunion")
    assert cal.holiday(date(2026, 12, 20)) == "Abolition de l'esclavage"


@pytest.mark.parametrize(
    ("tz", "utc_hour", "open_"),
    [
        ("Indian/Reunion", 4, True),  # 08:00 Réunion (UTC+4), 06:00 Paris
        ("Europe/Paris", 4, False),
        ("America/Guadeloupe", 12, True),  # 08:00 (UTC-4), 14:00 Paris
        ("America/Guadeloupe", 11, False),
        ("America/Cayenne", 11, True),  # UTC-3
        ("America/Miquelon", 9, False),  # 07:00 in summer (UTC-2)
        ("America/Miquelon", 10, True),
    ],
)
def test_ranges_in_the_calendars_time_zone(tz: str, utc_hour: int, open_: bool) -> None:
    cal = calendar(timezone=tz, periods={"ouvert": [{"days": ["mon"], "ranges": ["08:00-12:00"]}]})
    at = datetime(2026, 6, 1, utc_hour, tzinfo=UTC)
    assert (cal.evaluate(at).period is not None) is open_
    assert cal.evaluate(at).local.tzinfo == ZoneInfo(tz)


def test_for_site_changes_zone_and_holidays() -> None:
    site = OFFICE.for_site(timezone="Indian/Reunion", holidays="FR-974")
    assert (site.timezone, site.holidays) == ("Indian/Reunion", "FR-974")
    assert site.evaluate(datetime(2026, 12, 21, 5, tzinfo=UTC)).period == "ouvert"
    assert site.evaluate(datetime(2026, 12, 18, 5, tzinfo=UTC)).period == "ouvert"
    assert OFFICE.for_site(holidays=None).evaluate(paris(2026, 5, 14, 10)).period == "ouvert"
    assert OFFICE.for_site().closed == OFFICE.closed


# -- exceptional dates and precedence -------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "period", "reason"),
    [
        # exceptional closure beats weekly hours
        (paris(2026, 8, 14, 10), None, "fermé: pont de l'Assomption"),
        (paris(2026, 12, 24, 10), None, "fermé: fermeture annuelle"),
        # exceptional closure beats a holiday (the reason is the closure)
        (paris(2026, 12, 25, 10), None, "fermé: fermeture annuelle"),
        # exceptional opening beats a holiday
        (
            paris(2026, 5, 25, 10),
            "ouvert",
            'période "ouvert" (ouverture exceptionnelle: lundi de Pentecôte travaillé, '
            "lundi 08:00-12:00)",
        ),
        (
            paris(2026, 5, 25, 12, 30),
            None,
            "fermé: hors horaires (ouverture exceptionnelle: lundi de Pentecôte travaillé)",
        ),
        # exceptional opening beats an exceptional closure, with its own ranges
        (
            paris(2026, 12, 28, 10),
            "ouvert",
            'période "ouvert" (ouverture exceptionnelle: inventaire, lundi 10:00-12:00)',
        ),
        (
            paris(2026, 12, 28, 14),
            None,
            "fermé: hors horaires (ouverture exceptionnelle: inventaire)",
        ),
        (paris(2026, 12, 29, 10), None, "fermé: fermeture annuelle"),
        # holiday beats weekly
        (paris(2026, 4, 6, 10), None, "fermé: jour férié (Lundi de Pâques)"),
    ],
)
def test_precedence(at: datetime, period: str | None, reason: str) -> None:
    decision = OFFICE.evaluate(at)
    assert (decision.period, decision.reason) == (period, reason)


def test_exceptional_opening_on_sunday_with_period_and_ranges() -> None:
    cal = calendar(
        periods={
            "ouvert": [{"days": EVERY_DAY[:5], "ranges": ["08:00-18:00"]}],
            "soldes": [{"days": ["sat"], "ranges": ["10:00-18:00"]}],
        },
        open=[{"date": "2026-06-28", "period": "soldes", "ranges": ["14:00-17:00"]}],
    )
    decision = cal.evaluate(paris(2026, 6, 28, 15))
    assert decision.period == "soldes"
    assert "ouverture exceptionnelle, dimanche 14:00-17:00" in decision.reason
    assert cal.evaluate(paris(2026, 6, 28, 11)).period is None


def test_exceptional_opening_without_period_uses_every_period() -> None:
    cal = calendar(
        periods={
            "matin": [{"days": ["mon"], "ranges": ["08:00-12:00"]}],
            "aprem": [{"days": ["mon"], "ranges": ["14:00-18:00"]}],
        },
        open=[{"date": "2026-04-06"}],
    )
    assert cal.evaluate(paris(2026, 4, 6, 9)).period == "matin"
    assert cal.evaluate(paris(2026, 4, 6, 15)).period == "aprem"
    assert cal.evaluate(paris(2026, 4, 6, 13)).period is None


def test_remove_and_add_holidays() -> None:
    cal = calendar(
        remove_holidays=["Lundi de Pentecôte", "2026-11-11"],
        add_holidays=["2026-06-19", {"date": "2026-06-22", "label": "fête de l'entreprise"}],
    )
    assert cal.evaluate(paris(2026, 5, 25, 10)).period == "ouvert"
    assert cal.evaluate(paris(2027, 5, 17, 10)).period == "ouvert"  # every year
    assert cal.evaluate(paris(2026, 11, 11, 10)).period == "ouvert"
    assert cal.evaluate(paris(2027, 11, 11, 10)).period is None  # a date: that year only
    assert cal.evaluate(paris(2026, 6, 19, 10)).reason == "fermé: jour férié (jour férié ajouté)"
    assert cal.evaluate(paris(2026, 6, 22, 10)).reason == "fermé: jour férié (fête de l'entreprise)"


# -- DST ------------------------------------------------------------------------------------------

NIGHT = calendar(
    periods={
        "nuit": [{"days": ["sun"], "ranges": ["01:30-02:30"]}],
        "matin": [{"days": ["sun"], "ranges": ["02:30-04:00"]}],
    },
    holidays=None,
)


@pytest.mark.parametrize(
    ("utc", "period", "local"),
    [
        # spring forward 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00 UTC
        (datetime(2026, 3, 29, 0, 29, tzinfo=UTC), None, "01:29"),
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), "nuit", "01:30"),
        (datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC), "nuit", "01:59"),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "matin", "03:00"),  # 02:00-03:00 never exists
        (datetime(2026, 3, 29, 1, 59, tzinfo=UTC), "matin", "03:59"),
        (datetime(2026, 3, 29, 2, 0, tzinfo=UTC), None, "04:00"),
        # fall back 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00 UTC; 02:xx happens twice
        (datetime(2026, 10, 24, 23, 29, tzinfo=UTC), None, "01:29"),
        (datetime(2026, 10, 24, 23, 30, tzinfo=UTC), "nuit", "01:30"),
        (datetime(2026, 10, 25, 0, 15, tzinfo=UTC), "nuit", "02:15"),  # first 02:15 (CEST)
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), "matin", "02:30"),
        (datetime(2026, 10, 25, 1, 15, tzinfo=UTC), "nuit", "02:15"),  # second 02:15 (CET)
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), "matin", "02:30"),
        (datetime(2026, 10, 25, 2, 59, tzinfo=UTC), "matin", "03:59"),
        (datetime(2026, 10, 25, 3, 0, tzinfo=UTC), None, "04:00"),
    ],
)
def test_dst_transitions(utc: datetime, period: str | None, local: str) -> None:
    decision = NIGHT.evaluate(utc)
    assert decision.period == period
    assert decision.local.strftime("%H:%M") == local


def test_nonexistent_local_time_resolves_by_fold() -> None:
    gap = datetime(2026, 3, 29, 2, 45, tzinfo=PARIS)  # fold=0: offset before, 03:45 CEST
    assert NIGHT.evaluate(gap).local.strftime("%H:%M") == "03:45"
    assert NIGHT.evaluate(gap).period == "matin"
    later = gap.replace(fold=1)  # offset after: 01:45 CET
    assert NIGHT.evaluate(later).period == "nuit"


def test_ambiguous_local_time_same_answer_for_both_folds() -> None:
    first = datetime(2026, 10, 25, 2, 15, tzinfo=PARIS)
    second = first.replace(fold=1)
    assert first.astimezone(UTC) != second.astimezone(UTC)
    assert NIGHT.evaluate(first).period == NIGHT.evaluate(second).period == "nuit"


def test_same_instant_in_any_offset_same_answer() -> None:
    at = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    in_tokyo = at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert OFFICE.evaluate(at) == OFFICE.evaluate(in_tokyo)


# -- validation ------------------------------------------------------------------------------------


def errors(**fields: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        calendar(**fields)
    return [
        (".".join(str(p) for p in e["loc"]), e["msg"]) for e in info.value.errors(include_url=False)
    ]


@pytest.mark.parametrize(
    ("fields", "loc", "message"),
    [
        ({"timezone": "Europe/Pariss"}, "timezone", "unknown time zone 'Europe/Pariss'"),
        ({"timezone": ""}, "timezone", "unknown time zone ''"),
        ({"holidays": "FR-99"}, "holidays", "unknown holiday zone 'FR-99'"),
        ({"holidays": "DE"}, "holidays", "unknown holiday zone 'DE'"),
        (
            {"periods": {"p": [{"days": ["mon"], "ranges": ["12:00-08:00"]}]}},
            "periods.p.0.ranges.0",
            "range '12:00-08:00' ends before it starts",
        ),
        (
            {"periods": {"p": [{"days": ["mon"], "ranges": ["08:00-08:00"]}]}},
            "periods.p.0.ranges.0",
            "ends before it starts",
        ),
        (
            {"periods": {"p": [{"days": ["mon"], "ranges": ["8h-12h"]}]}},
            "periods.p.0.ranges.0",
            "expected HH:MM-HH:MM, got '8h-12h'",
        ),
        (
            {"periods": {"p": [{"days": ["mon"], "ranges": ["08:00-24:30"]}]}},
            "periods.p.0.ranges.0",
            "bad end time",
        ),
        (
            {"periods": {"p": [{"days": ["mon"], "ranges": ["24:00-24:00"]}]}},
            "periods.p.0.ranges.0",
            "bad start time",
        ),
        (
            {"periods": {"p": [{"days": ["mon", "lundi"], "ranges": ["08:00-12:00"]}]}},
            "periods.p.0.days.1",
            "Input should be 'mon'",
        ),
        (
            {"periods": {"p": [{"days": ["mon", "mon"], "ranges": ["08:00-12:00"]}]}},
            "periods.p.0.days",
            "mon listed twice",
        ),
        (
            {
                "periods": {
                    "ouvert": [{"days": ["mon", "tue"], "ranges": ["08:00-12:00"]}],
                    "midi": [{"days": ["tue"], "ranges": ["11:30-14:00"]}],
                }
            },
            "periods",
            'ranges overlap on tue: "08:00-12:00" (ouvert) and "11:30-14:00" (midi)',
        ),
        (
            {"periods": {"p": [{"days": ["fri"], "ranges": ["08:00-12:00", "09:00-10:00"]}]}},
            "periods",
            'ranges overlap on fri: "08:00-12:00" (p) and "09:00-10:00" (p)',
        ),
        ({"periods": {}}, "periods", "at least 1 item"),
        (
            {"closed": [{"from": "2026-12-26", "to": "2026-12-24"}]},
            "closed.0",
            "inverted date range: from 2026-12-26 is after to 2026-12-24",
        ),
        ({"closed": [{"from": "2026-12-26"}]}, "closed.0", "give date, or both from and to"),
        (
            {"closed": [{"date": "2026-12-26", "to": "2026-12-27"}]},
            "closed.0",
            "give either date or from/to, not both",
        ),
        ({"closed": [{"date": "2026-02-30"}]}, "closed.0.date", "valid date"),
        ({"closed": [{"date": "2026-12-26", "reason": "x"}]}, "closed.0.reason", "Extra inputs"),
        (
            {"open": [{"date": "2026-05-25", "period": "nope"}]},
            "open",
            "open[0]: unknown period 'nope' (one of ouvert)",
        ),
        (
            {
                "periods": {"ouvert": [{"days": ["mon"], "ranges": ["08:00-12:00"]}]},
                "open": [{"date": "2026-05-24"}],
            },
            "open",
            "open[0]: no period has hours on sun 2026-05-24; give ranges",
        ),
        (
            {"open": [{"date": "2026-05-24", "ranges": ["10:00-12:00", "11:00-13:00"]}]},
            "open",
            'ranges overlap on open[0]: "10:00-12:00" (ouvert) and "11:00-13:00" (ouvert)',
        ),
        (
            {"open": [{"from": "2026-05-20", "to": "2026-05-25"}, {"date": "2026-05-25"}]},
            "open",
            "open[1] (2026-05-25) overlaps open[0] (2026-05-20..2026-05-25)",
        ),
        (
            {"remove_holidays": ["Lundi de Pentecote"]},
            "remove_holidays",
            "unknown holiday 'Lundi de Pentecote' for FR",
        ),
        (
            {"holidays": None, "remove_holidays": ["Noël"]},
            "remove_holidays",
            "remove_holidays needs a holidays zone",
        ),
        ({"colour": "blue"}, "colour", "Extra inputs"),
    ],
)
def test_validation_errors(fields: dict[str, Any], loc: str, message: str) -> None:
    found = errors(**fields)
    assert any(where == loc and message in m for where, m in found), found


def test_valid_shapes() -> None:
    cal = calendar(
        holidays="fr-6ae",
        periods={"p": [{"days": ["MON"], "ranges": ["08:00-12:00", "12:00-13:00"]}]},
        remove_holidays=["Vendredi saint"],
    )
    assert cal.holidays == "FR-6AE"
    assert cal.evaluate(paris(2026, 4, 3, 10)).period is None  # a Friday: no hours anyway
    assert cal.holiday(date(2026, 4, 3)) is None
    assert Calendar.model_json_schema()["properties"]["periods"]


def test_calendar_is_frozen() -> None:
    with pytest.raises(ValidationError):
        OFFICE.timezone = "UTC"  # type: ignore[misc]


# -- the oracle ----------------------------------------------------------------------------------

ORACLE_CLOSED = {date(2026, 8, 14), *(date(2027, 12, d) for d in range(24, 32))}
ORACLE_HOLIDAYS = set(ALL_HOLIDAYS)
ORACLE_HOURS = {  # weekday -> [(start, end, period)] in minutes
    0: [(480, 720, "ouvert"), (810, 1140, "ouvert")],
    1: [(480, 720, "ouvert"), (810, 1140, "ouvert")],
    2: [(480, 720, "ouvert"), (810, 1140, "ouvert")],
    3: [(480, 720, "ouvert"), (810, 1140, "ouvert")],
    4: [(480, 720, "ouvert"), (810, 1140, "ouvert")],
    5: [(540, 720, "samedi")],
    6: [(0, 150, "nuit")],
}
ORACLE_CALENDAR = calendar(
    periods={
        "ouvert": [{"days": EVERY_DAY[:5], "ranges": ["08:00-12:00", "13:30-19:00"]}],
        "samedi": [{"days": ["sat"], "ranges": ["09:00-12:00"]}],
        "nuit": [{"days": ["sun"], "ranges": ["00:00-02:30"]}],
    },
    closed=[{"date": "2026-08-14"}, {"from": "2027-12-24", "to": "2027-12-31"}],
)


def oracle(at: datetime) -> str | None:
    local = at.astimezone(PARIS)
    if local.date() in ORACLE_HOLIDAYS or local.date() in ORACLE_CLOSED:
        return None
    minute = local.hour * 60 + local.minute
    for start, end, period in ORACLE_HOURS[local.weekday()]:
        if start <= minute < end:
            return period
    return None


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2026, 1, 1),
        max_value=datetime(2030, 12, 31, 23, 59, 59),
        timezones=st.just(UTC),
    )
)
def test_open_iff_in_hours_and_not_holiday_nor_closed(at: datetime) -> None:
    assert ORACLE_CALENDAR.evaluate(at).period == oracle(at)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ALL_HOLIDAYS + sorted(ORACLE_CLOSED)),
    st.integers(0, 86_399),
)
def test_oracle_on_holidays_and_closures(day: date, second: int) -> None:
    at = datetime(day.year, day.month, day.day, tzinfo=PARIS) + timedelta(seconds=second)
    at = at.astimezone(UTC)
    assert ORACLE_CALENDAR.evaluate(at).period == oracle(at)
