"""Calendriers: opening hours, public holidays and exceptional dates, in the site's zone.

A calendar is part of a routing file (``calendars: {name: Calendar}``)::

    calendars:
      horaires:
        timezone: Europe/Paris        # IANA zone of the site (default Europe/Paris)
        holidays: FR                  # FR, FR-57, FR-6AE, FR-971..FR-974, FR-976, FR-BL,
                                      # FR-MF, FR-PM (also FR-NC, FR-PF, FR-WF and the
                                      # aliases FR-GP, FR-MQ, FR-GF, FR-RE, FR-YT,
                                      # FR-975); null: no public holidays. Default FR.
        holidays_closed: true         # jours fériés are closed (default true)
        periods:                      # period name -> weekly hours (at least one period)
          ouvert:
            - days: [mon, tue, wed, thu, fri]
              ranges: ["08:00-12:00", "13:30-19:00"]
          samedi:
            - days: [sat]
              ranges: ["09:00-12:00"]
        closed:                       # fermetures exceptionnelles (a day or from/to)
          - date: 2026-08-14
            label: pont de l'Assomption
          - from: 2026-12-24
            to: 2026-12-26
            label: fermeture annuelle
        open:                         # ouvertures exceptionnelles
          - date: 2026-05-25
            label: lundi de Pentecôte travaillé
            period: ouvert            # optional
            ranges: ["09:00-12:00"]   # optional
        remove_holidays: ["Lundi de Pentecôte", 2026-11-11]   # names or dates
        add_holidays:                 # dates, or {date, label}
          - date: 2026-06-19
            label: fête de l'entreprise

Semantics (``Calendar.evaluate(at)``):

- ``at`` must be timezone-aware (``ValueError`` otherwise); it is converted to the
  calendar's zone through UTC, so the answer depends only on the instant.
- Ranges are ``[start, end)`` in local **wall-clock** time, ``24:00`` allowed as an end.
- Precedence, first that applies wins: exceptional opening > exceptional closure >
  public holiday (when ``holidays_closed``) > weekly periods. Outside every range:
  closed (``fermé: hors horaires``).
- An exceptional opening makes its days follow, in order of choice: its own ``ranges``
  (under ``period``, default the first period); else the weekly hours of ``period`` on
  that weekday; else the weekly hours of every period on that weekday (the day is worked
  as a normal day). A day it opens must get some hours (checked at validation). Outside
  those hours the day is closed, whatever its holiday or closure status.
- Daylight saving time: wall-clock ranges are matched against the local time of the
  instant. In the spring-forward gap (Europe/Paris 2026-03-29 02:00-03:00) no instant
  has that local time, so a range inside the gap never matches and a range across it is
  one hour shorter in real time. In the fall-back hour (2026-10-25 02:00-03:00) both
  instants have the same wall time and get the same answer (a range across it lasts one
  hour longer). An aware ``at`` carrying a non-existent local time is resolved by PEP 495
  (``fold=0``: the offset before the change, so 02:30 reads as 03:30 CEST).

Holidays come from the ``holidays`` package (France, ``language="fr"``, subdivision of the
zone), built once per (zone, year) and cached; per calendar, the adjusted set of a year is
cached too: the hot path is a dict lookup.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from itertools import pairwise
from types import MappingProxyType
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FRENCH_DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")

# Holiday zones -> ``holidays`` subdivision (None: metropolitan France).
HOLIDAY_ZONES: Mapping[str, str | None] = MappingProxyType(
    {
        "FR": None,
        "FR-57": "57",
        "FR-6AE": "6AE",
        "FR-971": "971",
        "FR-972": "972",
        "FR-973": "973",
        "FR-974": "974",
        "FR-976": "976",
        "FR-BL": "BL",
        "FR-MF": "MF",
        "FR-PM": "PM",
        "FR-NC": "NC",
        "FR-PF": "PF",
        "FR-WF": "WF",
    }
)
_ZONE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "FR-GP": "FR-971",
        "FR-MQ": "FR-972",
        "FR-GF": "FR-973",
        "FR-RE": "FR-974",
        "FR-YT": "FR-976",
        "FR-975": "FR-PM",
    }
)

_RANGE = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")
_RANGE_PATTERN = r"^\d\d:\d\d-\d\d:\d\d$"
_DAY_SECONDS = 86_400
_KNOWN_NAME_YEARS = range(2020, 2046)


def _error(kind: str, message: str) -> PydanticCustomError:
    # No context: braces are never placeholders.
    return PydanticCustomError(kind, message.replace("{", "{{").replace("}", "}}"))


def parse_range(text: str) -> tuple[int, int]:
    """``"08:00-12:00"`` -> seconds of the day ``(28800, 43200)``; ``ValueError`` if bad."""
    m = _RANGE.match(text)
    if m is None:
        raise ValueError(f"expected HH:MM-HH:MM, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59:
        raise ValueError(f"bad start time in {text!r}")
    if not (h2 <= 23 and m2 <= 59) and (h2, m2) != (24, 0):
        raise ValueError(f"bad end time in {text!r} (24:00 is the latest)")
    start, end = (h1 * 60 + m1) * 60, (h2 * 60 + m2) * 60
    if start >= end:
        raise ValueError(f"range {text!r} ends before it starts")
    return start, end


def _check_range(text: str) -> str:
    try:
        parse_range(text)
    except ValueError as exc:
        raise _error("time_range", str(exc)) from None
    return text


def _lower(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [v.lower() if isinstance(v, str) else v for v in value]
    return value


TimeRange = Annotated[
    str,
    AfterValidator(_check_range),
    Field(json_schema_extra={"pattern": _RANGE_PATTERN}, examples=["08:00-12:00"]),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class WeeklyHours(_Model):
    """Some weekdays and their opening ranges."""

    days: Annotated[tuple[Weekday, ...], BeforeValidator(_lower)] = Field(min_length=1)
    ranges: tuple[TimeRange, ...] = Field(min_length=1)

    @field_validator("days")
    @classmethod
    def _unique_days(cls, days: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        for i, day in enumerate(days):
            if day in days[:i]:
                raise _error("weekday", f"{day} listed twice")
        return days


class DateSpan(_Model):
    """One day (``date``) or an inclusive span (``from``, ``to``)."""

    day: date | None = Field(None, alias="date")
    start: date | None = Field(None, alias="from")
    end: date | None = Field(None, alias="to")
    label: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> DateSpan:
        if self.day is not None:
            if self.start is not None or self.end is not None:
                raise _error("date_span", "give either date or from/to, not both")
        elif self.start is None or self.end is None:
            raise _error("date_span", "give date, or both from and to")
        elif self.start > self.end:
            raise _error(
                "date_span",
                f"inverted date range: from {self.start.isoformat()} is after to "
                f"{self.end.isoformat()}",
            )
        return self

    @property
    def first(self) -> date:
        if self.day is not None:
            return self.day
        assert self.start is not None  # checked by _one_form
        return self.start

    @property
    def last(self) -> date:
        if self.day is not None:
            return self.day
        assert self.end is not None  # checked by _one_form
        return self.end

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.first <= day <= self.last

    def days(self) -> Iterator[date]:
        day = self.first
        while day <= self.last:
            yield day
            day += timedelta(days=1)

    def describe(self) -> str:
        if self.day is not None:
            return self.day.isoformat()
        return f"{self.first.isoformat()}..{self.last.isoformat()}"


class ClosedDays(DateSpan):
    """Fermeture exceptionnelle (company closure, pont)."""


class OpenDays(DateSpan):
    """Ouverture exceptionnelle: the days are worked, holidays and closures notwithstanding."""

    period: str | None = Field(None, min_length=1)
    ranges: tuple[TimeRange, ...] | None = Field(None, min_length=1)


class AddedHoliday(_Model):
    """A day treated as a public holiday (e.g. a local feast)."""

    day: date = Field(alias="date")
    label: str = Field("jour férié ajouté", min_length=1)


def _added_holiday(value: Any) -> Any:
    return {"date": value} if isinstance(value, date | str) else value


def _holiday_ref(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value


# (start_s, end_s, period, "HH:MM-HH:MM")
_Slot = tuple[int, int, str, str]


@dataclass(frozen=True, slots=True)
class CalendarDecision:
    """The calendar's answer at one instant.

    ``period``: the open period's name, ``None`` when closed. ``reason``: French, for
    traces (``période "ouvert" (lundi 08:00-12:00)``, ``fermé: jour férié (Lundi de
    Pâques)``, ``fermé: hors horaires``, ``fermé: pont de l'Assomption``). ``holiday``:
    the public holiday of that local date, if any (even when it does not close).
    ``local``: the instant in the calendar's zone.
    """

    period: str | None
    reason: str
    holiday: str | None
    local: datetime

    @property
    def is_open(self) -> bool:
        return self.period is not None


class Calendar(_Model):
    """Un calendrier: weekly periods, jours fériés, exceptional closures and openings."""

    timezone: str = "Europe/Paris"
    holidays: str | None = "FR"
    holidays_closed: bool = True
    periods: dict[str, tuple[WeeklyHours, ...]] = Field(min_length=1)
    closed: tuple[ClosedDays, ...] = ()
    open: tuple[OpenDays, ...] = ()
    remove_holidays: tuple[Annotated[date | str, BeforeValidator(_holiday_ref)], ...] = ()
    add_holidays: tuple[Annotated[AddedHoliday, BeforeValidator(_added_holiday)], ...] = ()

    # -- validation ---------------------------------------------------------------

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise _error("timezone", f"unknown time zone {value!r}") from None
        return value

    @field_validator("holidays")
    @classmethod
    def _known_holiday_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        zone = _ZONE_ALIASES.get(value.upper(), value.upper())
        if zone not in HOLIDAY_ZONES:
            raise _error(
                "holidays",
                f"unknown holiday zone {value!r} (one of {', '.join(HOLIDAY_ZONES)}, or null)",
            )
        return zone

    @field_validator("periods")
    @classmethod
    def _periods(
        cls, periods: dict[str, tuple[WeeklyHours, ...]]
    ) -> dict[str, tuple[WeeklyHours, ...]]:
        for name, rules in periods.items():
            if not name.strip():
                raise _error("period", "a period needs a name")
            if not rules:
                raise _error("period", f"period {name!r} has no hours")
        for day, slots in zip(WEEKDAYS, _weekly_slots(periods), strict=True):
            _no_overlap(slots, day)
        return periods

    @field_validator("open")
    @classmethod
    def _openings(cls, opens: tuple[OpenDays, ...], info: ValidationInfo) -> tuple[OpenDays, ...]:
        periods: dict[str, tuple[WeeklyHours, ...]] | None = info.data.get("periods")
        if periods is None:  # periods invalid: reported there
            return opens
        weekly = _weekly_slots(periods)
        for i, entry in enumerate(opens):
            if entry.period is not None and entry.period not in periods:
                raise _error(
                    "open",
                    f"open[{i}]: unknown period {entry.period!r} (one of {', '.join(periods)})",
                )
            if entry.ranges is not None:
                _no_overlap(_open_day_slots(entry, weekly, periods, 0), f"open[{i}]")
            else:
                for day in entry.days():
                    if not _open_day_slots(entry, weekly, periods, day.weekday()):
                        which = (
                            f"period {entry.period!r} has no hours"
                            if entry.period
                            else "no period has hours"
                        )
                        raise _error(
                            "open",
                            f"open[{i}]: {which} on {WEEKDAYS[day.weekday()]} "
                            f"{day.isoformat()}; give ranges",
                        )
            for j, other in enumerate(opens[:i]):
                if entry.first <= other.last and other.first <= entry.last:
                    raise _error(
                        "open",
                        f"open[{i}] ({entry.describe()}) overlaps open[{j}] ({other.describe()})",
                    )
        return opens

    @field_validator("remove_holidays")
    @classmethod
    def _removable(
        cls, refs: tuple[date | str, ...], info: ValidationInfo
    ) -> tuple[date | str, ...]:
        if not refs or "holidays" not in info.data:
            return refs
        zone: str | None = info.data["holidays"]
        if zone is None:
            raise _error("remove_holidays", "remove_holidays needs a holidays zone")
        known = _known_names(zone)
        for ref in refs:
            if isinstance(ref, str) and ref not in known:
                raise _error(
                    "remove_holidays",
                    f"unknown holiday {ref!r} for {zone} (one of {', '.join(sorted(known))})",
                )
        return refs

    # -- derived state ------------------------------------------------------------
    # Computed once per calendar and kept in the instance ``__dict__``: a plain
    # attribute read on the hot path. (Pydantic private attributes cost an
    # AttributeError raised and caught on every read.)

    @cached_property
    def _tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _weekly(self) -> tuple[tuple[_Slot, ...], ...]:
        return _weekly_slots(self.periods)

    @cached_property
    def _open_slots(self) -> tuple[tuple[OpenDays, tuple[tuple[_Slot, ...], ...]], ...]:
        return tuple(
            (
                entry,
                tuple(_open_day_slots(entry, self._weekly, self.periods, wd) for wd in range(7)),
            )
            for entry in self.open
        )

    @cached_property
    def _years(self) -> dict[int, Mapping[date, str]]:
        """The adjusted holiday table of each year asked for (see ``_build_year``)."""
        return {}

    # -- evaluation ---------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        return self._tz

    def holiday(self, day: date) -> str | None:
        """The public holiday name of a local date (after add/remove), or ``None``."""
        table = self._years.get(day.year)
        if table is None:
            table = self._build_year(day.year)
        return table.get(day)

    def _build_year(self, year: int) -> Mapping[date, str]:
        table: dict[date, str] = {}
        if self.holidays is not None:
            table.update(_zone_holidays(self.holidays, year))
            for ref in self.remove_holidays:
                if isinstance(ref, date):
                    table.pop(ref, None)
                    continue
                for day, name in list(table.items()):
                    parts = [p for p in name.split("; ") if p != ref]
                    if not parts:
                        del table[day]
                    elif len(parts) != name.count("; ") + 1:
                        table[day] = "; ".join(parts)
        for added in self.add_holidays:
            if added.day.year == year:
                table[added.day] = added.label
        frozen = MappingProxyType(table)
        self._years[year] = frozen
        return frozen

    def evaluate(self, at: datetime) -> CalendarDecision:
        """Open period (or closed, and why) at the instant ``at`` (timezone-aware)."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("calendar needs a timezone-aware datetime")
        local = at.astimezone(UTC).astimezone(self._tz)
        day = local.date()
        weekday = day.weekday()
        second = local.hour * 3600 + local.minute * 60 + local.second
        holiday = self.holiday(day)
        for entry, by_weekday in self._open_slots:
            if day in entry:
                label = entry.label or "ouverture exceptionnelle"
                for start, end, period, text in by_weekday[weekday]:
                    if start <= second < end:
                        reason = (
                            f'période "{period}" (ouverture exceptionnelle: {label}, '
                            f"{_FRENCH_DAYS[weekday]} {text})"
                        )
                        return CalendarDecision(period, reason, holiday, local)
                reason = f"fermé: hors horaires (ouverture exceptionnelle: {label})"
                return CalendarDecision(None, reason, holiday, local)
        for closure in self.closed:
            if day in closure:
                reason = f"fermé: {closure.label or 'fermeture exceptionnelle'}"
                return CalendarDecision(None, reason, holiday, local)
        if holiday is not None and self.holidays_closed:
            return CalendarDecision(None, f"fermé: jour férié ({holiday})", holiday, local)
        for start, end, period, text in self._weekly[weekday]:
            if start <= second < end:
                reason = f'période "{period}" ({_FRENCH_DAYS[weekday]} {text})'
                return CalendarDecision(period, reason, holiday, local)
        return CalendarDecision(None, "fermé: hors horaires", holiday, local)

    def for_site(self, *, timezone: str | None = None, holidays: str | None = "") -> Calendar:
        """This calendar in another site's zone and/or holiday zone (validated again).

        ``holidays=""`` (default) keeps the calendar's; ``None`` removes public holidays.
        """
        data = self.model_dump(by_alias=True, exclude_defaults=True)
        if timezone is not None:
            data["timezone"] = timezone
        if holidays != "":
            data["holidays"] = holidays
        return Calendar.model_validate(data)


def evaluate(calendar: Calendar, at: datetime) -> CalendarDecision:
    """Module-level form of ``Calendar.evaluate``."""
    return calendar.evaluate(at)


# -- helpers ----------------------------------------------------------------------------


def _weekly_slots(periods: Mapping[str, tuple[WeeklyHours, ...]]) -> tuple[tuple[_Slot, ...], ...]:
    days: list[list[_Slot]] = [[] for _ in WEEKDAYS]
    for name, rules in periods.items():
        for rule in rules:
            for text in rule.ranges:
                start, end = parse_range(text)
                for day in rule.days:
                    days[WEEKDAYS.index(day)].append((start, end, name, text))
    return tuple(tuple(sorted(d)) for d in days)


def _no_overlap(slots: tuple[_Slot, ...], where: str) -> None:
    for (_s1, e1, p1, t1), (s2, _e2, p2, t2) in pairwise(slots):
        if s2 < e1:
            raise _error("overlap", f'ranges overlap on {where}: "{t1}" ({p1}) and "{t2}" ({p2})')


def _open_day_slots(
    entry: OpenDays,
    weekly: tuple[tuple[_Slot, ...], ...],
    periods: Mapping[str, Any],
    weekday: int,
) -> tuple[_Slot, ...]:
    if entry.ranges is not None:
        period = entry.period or next(iter(periods))
        return tuple(sorted((*parse_range(r), period, r) for r in entry.ranges))
    slots = weekly[weekday]
    if entry.period is not None:
        return tuple(s for s in slots if s[2] == entry.period)
    return slots


@lru_cache(maxsize=512)
def _zone_holidays(zone: str, year: int) -> Mapping[date, str]:
    """Public holidays of one zone and year (``holidays`` package, French names)."""
    subdiv = HOLIDAY_ZONES[zone]
    table = holidays_lib.country_holidays("FR", subdiv=subdiv, years=year, language="fr")
    return MappingProxyType({day: str(name) for day, name in sorted(table.items())})


@lru_cache(maxsize=32)
def _known_names(zone: str) -> frozenset[str]:
    names: set[str] = set()
    for year in _KNOWN_NAME_YEARS:
        for name in _zone_holidays(zone, year).values():
            names.update(name.split("; "))
    return frozenset(names)


def holiday_zone_names(zone: str, year: int) -> Mapping[date, str]:
    """The public holidays of a supported zone for one year (cached)."""
    canonical = _ZONE_ALIASES.get(zone, zone)
    if canonical not in HOLIDAY_ZONES:
        raise ValueError(f"unknown holiday zone {zone!r}")
    return _zone_holidays(canonical, year)
