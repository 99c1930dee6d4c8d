"""French numbering: normalisation of dialled numbers and destination classes.

Spec: ``NUMBERING.md``. The rules live in **data**, not code:

``routing/data/fr_numbering.csv``
    ``prefix,lengths,class,detail,e164,valid_from,source``, one row per prefix (national
    ``0…``, short ``1…``-``9…`` or E.164 ``+CC…``), each with the date and the source of
    its rule. The longest prefix whose ``lengths`` admits the number wins. National rows
    with an ``e164`` column are the overseas blocks: ``0262`` ↔ ``+262262``, ``0508`` ↔
    ``+508``; they drive normalisation (rule 3), the caller rewriting (rule 4) and the
    way back to national (rule 5).
``routing/data/high_risk_countries.csv``
    ``prefix,region,label,added,source``: E.164 prefixes known for toll fraud; loaded as
    rows of class ``high_risk_international``.
``routing/data/fr_telemarketing.csv``
    ``prefix,detail,valid_from,source``: the ARCEP démarchage ranges (used by
    ``routing.callers``).

Lines starting with ``#`` are comments. ``default_plan()`` loads the three files once;
an operator builds its own plan with ``NumberingPlan(rows, telemarketing=...)``,
``NumberingPlan.from_csv(...)``, or overrides rows of the default one with
``default_plan().with_rows(...)`` (a row replaces the row of same prefix and lengths).

``phonenumbers`` checks and formats international numbers and names their country, but
never decides for the French plan: its French metadata files overseas numbers under +33
and knows 4 of the 12 emergency numbers.

Normalisation (``normalize``), NUMBERING.md rules 1-4:

1. separators dropped (spaces, ``.``, ``-``, ``/``, parentheses; ``;`` parameters of a
   SIP user part), a leading ``+`` kept, ``00`` → ``+``, ``+330…`` → ``+33…``;
2. 2-6 digits not starting with ``0``: a short number, kept as dialled (never +33);
3. ``0`` + 9 digits: the plan's overseas rows first (``0262…`` → ``+262262…``,
   ``0508`` + 6 → ``+508`` + 6), everything else ``+33``; 14 digits only where a row
   admits 14 (``0700``, ``0901``) → ``+33`` + 13;
4. ``+33262…``, ``+33692…`` (as callers arrive) → read as national, hence ``+262262…``.

Anything else is ``Number(kind="invalid")``: never an exception.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

import phonenumbers

NumberKind = Literal["e164", "short", "invalid"]

DestinationKind = Literal[
    "emergency",
    "free",
    "shared_cost",
    "national",
    "azur",
    "mobile",
    "overseas",
    "premium",
    "international",
    "high_risk_international",
    "special",
    "invalid",
]
DESTINATION_KINDS: tuple[DestinationKind, ...] = get_args(DestinationKind)

# French words for ``because`` traces.
KIND_LABELS: dict[DestinationKind, str] = {
    "emergency": "urgence",
    "free": "gratuit",
    "shared_cost": "banalisé",
    "national": "national",
    "azur": "Azur",
    "mobile": "mobile",
    "overseas": "outre-mer",
    "premium": "surtaxé",
    "international": "international",
    "high_risk_international": "international à risque",
    "special": "spécial",
    "invalid": "invalide",
}

# Visual separators of RFC 3966 plus what people type; ``;`` starts user-part parameters.
_SEPARATORS = re.compile(r"[\s.\-/()\[\]]")
_DIGITS = re.compile(r"[0-9]+")
_PREFIX = re.compile(r"\+[1-9][0-9]*|0[1-9][0-9]*|0|[1-9][0-9]*")
_E164 = re.compile(r"\+[1-9][0-9]*")
_SHORT_LENGTHS = range(2, 7)
_NATIONAL_LENGTHS = (10, 14)
_E164_MAX_DIGITS = 15


@dataclass(frozen=True, slots=True)
class Number:
    """A dialled or presented number after normalisation.

    ``value``: E.164 with ``+`` (kind ``e164``), the digits (kind ``short``), or the
    cleaned input (kind ``invalid``). ``raw``: the input as received.
    """

    kind: NumberKind
    value: str
    raw: str

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class PlanRow:
    """One row of a numbering table (a prefix, its class, and where the rule comes from)."""

    prefix: str
    klass: DestinationKind
    detail: str = ""
    lengths: frozenset[int] = frozenset()
    e164: str = ""
    valid_from: date = date(2026, 1, 1)
    source: str = ""

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise ValueError(f"bad prefix {self.prefix!r}")
        if self.klass not in DESTINATION_KINDS:
            raise ValueError(f"unknown class {self.klass!r}")
        if self.e164 and (not self.prefix.startswith("0") or not _E164.fullmatch(self.e164)):
            raise ValueError(f"e164 {self.e164!r} needs a national prefix and a +CC… value")

    @property
    def scope(self) -> Literal["national", "short", "e164"]:
        if self.prefix.startswith("+"):
            return "e164"
        return "national" if self.prefix.startswith("0") else "short"

    @property
    def e164_prefix(self) -> str | None:
        """The E.164 form of a national row's prefix (``0800`` → ``+33800``)."""
        if self.scope != "national":
            return None
        return self.e164 or "+33" + self.prefix[1:]

    def admits(self, digits: int) -> bool:
        return not self.lengths or digits in self.lengths

    def describe(self) -> str:
        """``0800 (ARCEP …, 2015-10-01)``: what a ``because`` trace shows."""
        return f"{self.prefix} ({self.source}, {self.valid_from.isoformat()})"


@dataclass(frozen=True, slots=True)
class TelemarketingRow:
    """An ARCEP démarchage range (national prefix)."""

    prefix: str
    detail: str = "FR"
    valid_from: date = date(2023, 1, 1)
    source: str = ""


@dataclass(frozen=True, slots=True)
class DestinationClass:
    """Where a number goes, for restriction profiles and traces.

    ``detail``: the territory (``RE``, ``GP``…) for overseas, the ISO 3166-1 country (or
    ``001`` for non-geographic codes) for international, a French label otherwise.
    ``rule``: the table row that decided, ``None`` when no row matched.
    """

    klass: DestinationKind
    detail: str = ""
    rule: PlanRow | None = None

    @property
    def because(self) -> str:
        """``gratuit (0800, ARCEP …, 2015-10-01)``."""
        label = KIND_LABELS[self.klass]
        if self.detail:
            label = f"{label} {self.detail}"
        if self.rule is None:
            return label
        return f"{label}, préfixe {self.rule.describe()}"


class PlanError(ValueError):
    """A numbering table that cannot be read: ``where: message``."""


class NumberingPlan:
    """Prefix tables with longest-prefix match; immutable once built.

    Rows given later replace earlier rows with the same ``(prefix, lengths)``. Rows with a
    ``valid_from`` after ``as_of`` are left out (``as_of=None``: every row).
    """

    __slots__ = (
        "_by_e164",
        "_by_prefix",
        "_max_e164",
        "_max_prefix",
        "_max_tm",
        "_overseas_codes",
        "_rows",
        "_telemarketing",
        "as_of",
    )

    def __init__(
        self,
        rows: Iterable[PlanRow],
        *,
        telemarketing: Iterable[TelemarketingRow] = (),
        as_of: date | None = None,
    ) -> None:
        self.as_of = as_of
        merged: dict[tuple[str, frozenset[int]], PlanRow] = {}
        for row in rows:
            if as_of is None or row.valid_from <= as_of:
                merged.pop((row.prefix, row.lengths), None)
                merged[(row.prefix, row.lengths)] = row
        self._rows = tuple(merged.values())
        by_prefix: dict[str, list[PlanRow]] = {}
        by_e164: dict[str, list[PlanRow]] = {}
        for row in self._rows:
            by_prefix.setdefault(row.prefix, []).append(row)
            if row.e164:
                by_e164.setdefault(row.e164, []).append(row)
        # More specific (length-constrained) rows first within one prefix.
        self._by_prefix = {k: tuple(sorted(v, key=_fewer_lengths)) for k, v in by_prefix.items()}
        self._by_e164 = {k: tuple(sorted(v, key=_fewer_lengths)) for k, v in by_e164.items()}
        self._max_prefix = max((len(k) for k in self._by_prefix), default=0)
        self._max_e164 = max((len(k) for k in self._by_e164), default=0)
        self._overseas_codes = frozenset(
            r.prefix[1:] for r in self._rows if r.scope == "e164" and r.klass == "overseas"
        )
        tm: dict[str, TelemarketingRow] = {}
        for t in telemarketing:
            if as_of is None or t.valid_from <= as_of:
                tm[t.prefix] = t
        self._telemarketing = tm
        self._max_tm = max((len(k) for k in tm), default=0)

    # -- building -----------------------------------------------------------------

    @classmethod
    def from_csv(
        cls,
        numbering: str | Path,
        *,
        high_risk: str | Path | None = None,
        telemarketing: str | Path | None = None,
        as_of: date | None = None,
    ) -> NumberingPlan:
        """A plan from CSV files (``Path``) or CSV text (``str``), formats as the defaults."""
        rows = list(read_plan_rows(_text(numbering), _name(numbering, "numbering")))
        if high_risk is not None:
            rows += read_high_risk_rows(_text(high_risk), _name(high_risk, "high_risk"))
        tm = (
            read_telemarketing_rows(_text(telemarketing), _name(telemarketing, "telemarketing"))
            if telemarketing is not None
            else ()
        )
        return cls(rows, telemarketing=tm, as_of=as_of)

    def with_rows(self, rows: Iterable[PlanRow]) -> NumberingPlan:
        """This plan with ``rows`` added; a row replaces the one of same prefix and lengths."""
        return NumberingPlan(
            (*self._rows, *rows), telemarketing=self._telemarketing.values(), as_of=self.as_of
        )

    @property
    def rows(self) -> tuple[PlanRow, ...]:
        return self._rows

    @property
    def telemarketing(self) -> tuple[TelemarketingRow, ...]:
        return tuple(self._telemarketing.values())

    @property
    def overseas_codes(self) -> frozenset[str]:
        """Country codes (digits) of the French overseas plan: ``262``, ``590``…"""
        return self._overseas_codes

    # -- lookups ------------------------------------------------------------------

    def match(self, number: str) -> PlanRow | None:
        """The longest-prefix row for a national (``0…``), short or E.164 (``+…``) string."""
        digits = len(number) - number.startswith("+")
        for size in range(min(len(number), self._max_prefix), 0, -1):
            for row in self._by_prefix.get(number[:size], ()):
                if row.admits(digits):
                    return row
        return None

    def match_e164(self, e164: str) -> PlanRow | None:
        """The longest row for an E.164 number: overseas ``e164`` columns, then ``+`` rows."""
        for size in range(min(len(e164), self._max_e164), 0, -1):
            key = e164[:size]
            for row in self._by_e164.get(key, ()):
                national_digits = len(row.prefix) + len(e164) - len(key)
                if row.admits(national_digits):
                    return row
        return self.match(e164)

    def telemarketing_match(self, national: str) -> TelemarketingRow | None:
        for size in range(min(len(national), self._max_tm), 0, -1):
            row = self._telemarketing.get(national[:size])
            if row is not None:
                return row
        return None


def _fewer_lengths(row: PlanRow) -> tuple[bool, int]:
    return (not row.lengths, len(row.lengths))


# -- CSV ------------------------------------------------------------------------------


def _text(src: str | Path) -> str:
    return src.read_text(encoding="utf-8") if isinstance(src, Path) else src


def _name(src: str | Path, default: str) -> str:
    return str(src) if isinstance(src, Path) else default


def _records(
    text: str, where: str, columns: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, str]]]:
    lines = [
        (n, line)
        for n, line in enumerate(text.splitlines(), 1)
        if not line.lstrip().startswith("#")
    ]
    lines = [(n, line) for n, line in lines if line.strip()]
    if not lines:
        return
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)))
    header = [h.strip() for h in next(reader)]
    missing = [c for c in columns if c not in header]
    if missing:
        raise PlanError(f"{where}:{lines[0][0]}: missing columns: {', '.join(missing)}")
    for (n, _), values in zip(lines[1:], reader, strict=True):
        if len(values) != len(header):
            raise PlanError(f"{where}:{n}: {len(values)} fields, expected {len(header)}")
        yield n, {h: v.strip() for h, v in zip(header, values, strict=True)}


def _kind(value: str) -> DestinationKind:
    for kind in DESTINATION_KINDS:
        if kind == value:
            return kind
    raise ValueError(f"unknown class {value!r} (one of {', '.join(DESTINATION_KINDS)})")


def _date(value: str, where: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PlanError(f"{where}: bad date {value!r} (YYYY-MM-DD)") from None


def _lengths(value: str, where: str) -> frozenset[int]:
    if not value:
        return frozenset()
    try:
        return frozenset(int(v) for v in value.split("|"))
    except ValueError:
        raise PlanError(f"{where}: bad lengths {value!r} (e.g. 10 or 10|14)") from None


def read_plan_rows(text: str, where: str = "numbering") -> list[PlanRow]:
    """Rows of a ``prefix,lengths,class,detail,e164,valid_from,source`` table."""
    cols = ("prefix", "lengths", "class", "detail", "e164", "valid_from", "source")
    rows = []
    for n, rec in _records(text, where, cols):
        at = f"{where}:{n}"
        try:
            rows.append(
                PlanRow(
                    prefix=rec["prefix"],
                    klass=_kind(rec["class"]),
                    detail=rec["detail"],
                    lengths=_lengths(rec["lengths"], at),
                    e164=rec["e164"],
                    valid_from=_date(rec["valid_from"], at),
                    source=rec["source"],
                )
            )
        except PlanError:
            raise
        except ValueError as exc:
            raise PlanError(f"{at}: {exc}") from None
    return rows


def read_high_risk_rows(text: str, where: str = "high_risk") -> list[PlanRow]:
    """``prefix,region,label,added,source`` → rows of class ``high_risk_international``."""
    rows = []
    for n, rec in _records(text, where, ("prefix", "region", "label", "added", "source")):
        at = f"{where}:{n}"
        if not _E164.fullmatch(rec["prefix"]):
            raise PlanError(f"{at}: bad prefix {rec['prefix']!r} (+ and digits)")
        rows.append(
            PlanRow(
                prefix=rec["prefix"],
                klass="high_risk_international",
                detail=rec["region"],
                valid_from=_date(rec["added"], at),
                source=f"{rec['label']}: {rec['source']}",
            )
        )
    return rows


def read_telemarketing_rows(text: str, where: str = "telemarketing") -> list[TelemarketingRow]:
    """``prefix,detail,valid_from,source`` national démarchage prefixes."""
    rows = []
    for n, rec in _records(text, where, ("prefix", "detail", "valid_from", "source")):
        at = f"{where}:{n}"
        if not re.fullmatch(r"0[1-9][0-9]*", rec["prefix"]):
            raise PlanError(f"{at}: bad prefix {rec['prefix']!r} (national 0…)")
        rows.append(
            TelemarketingRow(
                rec["prefix"], rec["detail"], _date(rec["valid_from"], at), rec["source"]
            )
        )
    return rows


@cache
def default_plan() -> NumberingPlan:
    """The packaged tables (``routing/data``), loaded once."""
    data = resources.files("routing").joinpath("data")

    def read(name: str) -> str:
        return data.joinpath(name).read_text(encoding="utf-8")

    rows = read_plan_rows(read("fr_numbering.csv"), "fr_numbering.csv")
    rows += read_high_risk_rows(read("high_risk_countries.csv"), "high_risk_countries.csv")
    tm = read_telemarketing_rows(read("fr_telemarketing.csv"), "fr_telemarketing.csv")
    return NumberingPlan(rows, telemarketing=tm)


# -- normalisation --------------------------------------------------------------------


def normalize(dialled: str, plan: NumberingPlan | None = None) -> Number:
    """Rules 1-4 of NUMBERING.md; never raises."""
    plan = plan or default_plan()
    cleaned = _SEPARATORS.sub("", dialled.split(";", 1)[0])
    if cleaned.startswith("+"):
        digits, plus = cleaned[1:], True
    elif cleaned.startswith("00"):
        digits, plus = cleaned[2:], True
    else:
        digits, plus = cleaned, False
    if not _DIGITS.fullmatch(digits):
        return Number("invalid", cleaned, dialled)
    if plus:
        if digits.startswith("330"):
            digits = "33" + digits[3:]
        if digits.startswith("33"):
            return _national("0" + digits[2:], dialled, plan)
        return _international(digits, dialled)
    if len(digits) in _SHORT_LENGTHS and digits[0] != "0":
        return Number("short", digits, dialled)
    if digits[0] == "0":
        return _national(digits, dialled, plan)
    return Number("invalid", digits, dialled)


def _national(digits: str, raw: str, plan: NumberingPlan) -> Number:
    size = len(digits)
    if size not in _NATIONAL_LENGTHS or digits[1] == "0":
        return Number("invalid", digits, raw)
    row = plan.match(digits)
    if row is None or row.scope != "national":
        if size != 10:
            return Number("invalid", digits, raw)
        return Number("e164", "+33" + digits[1:], raw)
    if size == 14 and 14 not in row.lengths:  # 14 digits only where a row says so
        return Number("invalid", digits, raw)
    e164 = row.e164_prefix or ""
    return Number("e164", e164 + digits[len(row.prefix) :], raw)


def _international(digits: str, raw: str) -> Number:
    if not 3 <= len(digits) <= _E164_MAX_DIGITS:
        return Number("invalid", "+" + digits, raw)
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return Number("invalid", "+" + digits, raw)
    if not phonenumbers.is_possible_number(parsed):
        return Number("invalid", "+" + digits, raw)
    return Number(
        "e164", phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), raw
    )


def to_national(number: str | Number, plan: NumberingPlan | None = None) -> str:
    """Rule 5: the national display form (``+33800100100`` → ``0800100100``).

    ``+33X`` → ``0X``; an overseas block → its national prefix (``+262262…`` →
    ``0262…``, ``+508`` + 6 → ``0508`` + 6); another overseas code + 9 digits → ``0`` + 9;
    others → ``00`` + digits. Short numbers and anything not starting with ``+`` are
    returned unchanged.
    """
    value = number.value if isinstance(number, Number) else number
    if not value.startswith("+"):
        return value
    if value.startswith("+33"):
        return "0" + value[3:]
    plan = plan or default_plan()
    row = plan.match_e164(value)
    if row is not None and row.e164:
        return row.prefix + value[len(row.e164) :]
    for code in plan.overseas_codes:
        rest = value[1 + len(code) :]
        if value.startswith(code, 1) and len(rest) == 9:
            return "0" + rest
    return "00" + value[1:]


# -- destination classes --------------------------------------------------------------


def destination_class(number: Number | str, plan: NumberingPlan | None = None) -> DestinationClass:
    """The class of a (normalised, or raw dialled) number; ``rule`` is the deciding row."""
    plan = plan or default_plan()
    if isinstance(number, str):
        number = normalize(number, plan)
    if number.kind == "invalid":
        return DestinationClass("invalid", "numéro invalide")
    value = number.value
    if number.kind == "short":
        row = plan.match(value)
        if row is None or row.scope != "short":
            return DestinationClass("special", "numéro court non répertorié")
        return DestinationClass(row.klass, row.detail, row)
    if value.startswith("+33"):
        row = plan.match("0" + value[3:])
        if row is None or row.scope != "national":
            return DestinationClass("invalid", "préfixe non répertorié")
        return DestinationClass(row.klass, row.detail, row)
    row = plan.match_e164(value)
    if row is not None:
        if row.klass == "overseas":
            return DestinationClass("overseas", _territory(value, row.detail), row)
        if row.klass in ("international", "high_risk_international"):
            return DestinationClass(row.klass, _region(value) or row.detail, row)
        return DestinationClass(row.klass, row.detail, row)
    region = _region(value)
    if region is None:
        return DestinationClass("invalid", "indicatif inconnu")
    return DestinationClass("international", region)


@lru_cache(maxsize=4096)
def _region(e164: str) -> str | None:
    """ISO 3166-1 alpha-2 of an international number (``001``: non-geographic)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    if region is None and parsed.country_code is not None:
        region = phonenumbers.region_code_for_country_code(parsed.country_code)
    return None if region in (None, "ZZ") else str(region)


@lru_cache(maxsize=4096)
def _territory(e164: str, default: str) -> str:
    """Refine a shared overseas code (+590: GP, BL, MF) with phonenumbers, else the row's."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return default
    region = phonenumbers.region_code_for_number(parsed)
    return str(region) if region not in (None, "ZZ", "001") else default
