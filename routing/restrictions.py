"""Outgoing restriction profiles (profils de restriction), as data.

Each line has two profiles, one for the calls it dials and one for the calls it
forwards; a call is allowed when the class of what it finally reaches (see
``routing.numbering.destination_class``) is in the profile. Profiles 1-7 and 10
are the operator's fixed table:

    1 Urgences, Gratuits et SAV     emergency, free
    2 National seul                 + national, shared-cost (grey: price of a normal call)
    3 National et Numéros Azur      + azur
    4 Fixes et Mobiles France       + mobile
    5 Fixes et Mobiles et DOM/TOM   + overseas
    6 Sauf International            + premium
    7 Sauf Appels Surtaxés          5 + international
    10 Tout autorisé                everything

High-risk international destinations (toll fraud) and special numbers are allowed
by profile 10 only. Emergency numbers are never barred, by any profile.

The company's table (``RestrictionTable``, from ``directory.yaml``)
--------------------------------------------------------------------
Profiles 8 and 9 are the company's own ("profil modifiable"): a name, the classes
they allow, and their own ``allow`` / ``deny`` prefix lists. Until a company defines
one, it allows what profile 1 allows, the safe side. The company also has two
lists for all its lines: ``deny`` (barred for every line, whatever its profile) and
``allow`` (exceptions to the high-risk international list).

:func:`check` decides in this order, the first step that decides wins, and says
which in ``because``:

a. an emergency number is allowed, always (even when a deny prefix matches it);
b. the company's ``deny``: a matching prefix bars the call (``barred:company-deny``);
c. a defined custom profile (8, 9): its own ``allow`` / ``deny``, longest match wins,
   ``deny`` wins ties; a match allows or bars whatever the class
   (``barred:profile-deny``);
d. the company's ``allow``: a high-risk international number it matches is read as
   plain ``international`` (the company lifts the risky list; the line's profile
   still decides whether international calls are allowed);
e. the class: in the profile's classes (a defined 8 or 9: its own), or barred
   (``barred:<class>``, e.g. ``barred:premium``).

Prefixes (:func:`parse_prefix`) are matched against the normalised number
(``routing.numbering.normalize``): separators dropped; ``+…`` kept; ``00…`` → ``+…``;
``+33X…`` read as the national ``0X…``; national ``0…`` → E.164 through the numbering
plan (an overseas block to its own code: ``0692`` → ``+262692``, else ``+33…``); a
national prefix shorter than the overseas blocks it covers (``06`` covers ``0692``)
stands for them as well, each in its own E.164 form, but counts as *less specific*
than an entry naming the block itself; digits without a leading ``0`` are a prefix of
short numbers as dialled (``36`` matches ``3639``). "Longest" compares the E.164 forms.
A block whose E.164 form is a whole country code (``0508`` → ``+508``) matches every
number of that code (Saint-Pierre-et-Miquelon's ``0708 4…`` mobiles too): a prefix has
no length constraint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from routing.numbering import (
    DESTINATION_KINDS,
    KIND_LABELS,
    DestinationClass,
    DestinationKind,
    NumberingPlan,
    default_plan,
)


def _classes(*kinds: DestinationKind) -> frozenset[DestinationKind]:
    return frozenset(kinds)


_P1 = _classes("emergency", "free")
_P2 = _P1 | _classes("national", "shared_cost")
_P3 = _P2 | _classes("azur")
_P4 = _P3 | _classes("mobile")
_P5 = _P4 | _classes("overseas")
_P6 = _P5 | _classes("premium")
_P7 = _P5 | _classes("international")
_P10 = _P6 | _classes("international", "high_risk_international", "special")

PROFILES: dict[int, frozenset[DestinationKind]] = {
    1: _P1,
    2: _P2,
    3: _P3,
    4: _P4,
    5: _P5,
    6: _P6,
    7: _P7,
    8: _P1,
    9: _P1,
    10: _P10,
}

PROFILE_NAMES: dict[int, str] = {
    1: "Urgences, Gratuits et SAV",
    2: "National seul",
    3: "National et Numéros Azur",
    4: "Fixes et Mobiles France",
    5: "Fixes et Mobiles et DOM/TOM",
    6: "Sauf International",
    7: "Sauf Appels Surtaxés",
    8: "Profil modifiable 1",
    9: "Profil modifiable 2",
    10: "Tout autorisé",
}

CUSTOM_PROFILES = (8, 9)
"""The profiles a company defines itself; the others are the operator's table."""

PROFILE_CLASSES: tuple[DestinationKind, ...] = tuple(k for k in DESTINATION_KINDS if k != "invalid")
"""The classes a custom profile may allow (``emergency`` is allowed anyway)."""

MAX_PREFIXES = 1000
"""At most this many prefixes in one list (``directory.yaml`` checks it)."""

# What a phone shows for a call barred by a prefix list (ASCII, like every reason phrase).
DENY_LIST_REASON = "Destination barred (deny list)"

# Visual separators, as ``routing.numbering.normalize`` drops them.
_SEPARATORS = re.compile(r"[\s.\-/()\[\]]")
_INTERNATIONAL = re.compile(r"[1-9][0-9]{0,14}")
_NATIONAL = re.compile(r"0[1-9][0-9]{0,12}")
_SHORT = re.compile(r"[1-9][0-9]{0,5}")


# -- prefixes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prefix:
    """One prefix of a list, normalised: ``value`` is matched against the normalised
    number (an E.164 ``+…`` prefix, or the digits of a short number).

    ``written``: as the administrator wrote it (for ``because``). ``broad``: a national
    prefix shorter than the overseas block ``value`` stands for (``06`` for ``0692`` →
    ``+262692``), less specific than an entry naming the block.
    """

    value: str
    written: str
    broad: bool = False

    @property
    def rank(self) -> tuple[int, bool]:
        """Longer wins; at equal length, an entry naming the block beats a broad one."""
        return len(self.value), not self.broad

    def describe(self) -> str:
        """``0897 (+33897)``, or ``+41`` when written as matched."""
        return self.written if self.written == self.value else f"{self.written} ({self.value})"


def parse_prefix(written: str, plan: NumberingPlan | None = None) -> tuple[Prefix, ...]:
    """The prefixes ``written`` stands for (module docstring); ``ValueError`` with the
    message an administrator reads when it is not a prefix."""
    cleaned = _SEPARATORS.sub("", written)
    if cleaned.startswith("+"):
        digits: str | None = cleaned[1:]
    elif cleaned.startswith("00"):
        digits = cleaned[2:]
    else:
        digits = None
    if digits is not None:
        if not _INTERNATIONAL.fullmatch(digits):
            raise ValueError(_not_a_prefix(written))
        if digits.startswith("330"):
            digits = "33" + digits[3:]
        if digits.startswith("33") and len(digits) > 2:
            return _national("0" + digits[2:], cleaned, plan or default_plan())
        return (Prefix("+" + digits, cleaned),)
    if _NATIONAL.fullmatch(cleaned):
        return _national(cleaned, cleaned, plan or default_plan())
    if _SHORT.fullmatch(cleaned):
        return (Prefix(cleaned, cleaned),)
    raise ValueError(_not_a_prefix(written))


def _not_a_prefix(written: str) -> str:
    return (
        f"not a prefix: '{written}' (+CC..., 00CC..., a national 0... prefix, "
        "or the first digits of a short number)"
    )


def _national(national: str, written: str, plan: NumberingPlan) -> tuple[Prefix, ...]:
    """A national prefix in E.164: through the overseas block that contains it, else
    ``+33`` plus every overseas block it contains (NUMBERING.md rule 3)."""
    blocks = [r for r in plan.rows if r.scope == "national" and r.e164]
    within = [r for r in blocks if national.startswith(r.prefix)]
    if within:
        row = max(within, key=lambda r: len(r.prefix))
        return (Prefix(row.e164 + national[len(row.prefix) :], written),)
    covered = sorted({r.e164 for r in blocks if r.prefix.startswith(national)})
    return (
        Prefix("+33" + national[1:], written),
        *(Prefix(e164, written, broad=True) for e164 in covered),
    )


@dataclass(frozen=True, slots=True)
class PrefixList:
    """Prefixes with longest match (:attr:`Prefix.rank`); immutable."""

    prefixes: tuple[Prefix, ...] = ()
    _by_value: dict[str, Prefix] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        by_value: dict[str, Prefix] = {}
        for prefix in self.prefixes:
            seen = by_value.get(prefix.value)
            if seen is None or prefix.rank > seen.rank:
                by_value[prefix.value] = prefix
        object.__setattr__(self, "_by_value", by_value)

    @classmethod
    def parse(cls, written: Iterable[str], plan: NumberingPlan | None = None) -> PrefixList:
        """``ValueError`` on the first entry that is not a prefix (:func:`parse_prefix`)."""
        return cls(tuple(p for text in written for p in parse_prefix(text, plan)))

    def __bool__(self) -> bool:
        return bool(self.prefixes)

    def longest(self, number: str) -> Prefix | None:
        """The most specific prefix of ``number`` (a normalised value), or None."""
        for size in range(len(number), 0, -1):
            found = self._by_value.get(number[:size])
            if found is not None:
                return found
        return None


# -- the company's table ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomProfile:
    """Profile 8 or 9 as a company defines it."""

    number: int
    name: str
    classes: frozenset[DestinationKind]
    allow: PrefixList = PrefixList()
    deny: PrefixList = PrefixList()

    def __post_init__(self) -> None:
        if self.number not in CUSTOM_PROFILES:
            raise ValueError(f"profile {self.number}: only 8 and 9 are the company's")


@dataclass(frozen=True, slots=True)
class RestrictionTable:
    """A company's custom profiles and prefix lists; the empty table changes nothing."""

    profiles: tuple[CustomProfile, ...] = ()
    allow: PrefixList = PrefixList()  # exceptions to the high-risk international list
    deny: PrefixList = PrefixList()  # barred for every line of the company

    def profile(self, number: int) -> CustomProfile | None:
        return next((p for p in self.profiles if p.number == number), None)

    def __bool__(self) -> bool:
        return bool(self.profiles or self.allow or self.deny)


NO_TABLE = RestrictionTable()
"""A company without a ``restrictions:`` block: the operator's table only."""


# -- the verdict ------------------------------------------------------------------------

Rule = Literal["emergency", "company-deny", "profile-allow", "profile-deny", "class"]
"""The step of :func:`check` that decided."""


@dataclass(frozen=True, slots=True)
class Restriction:
    """The verdict for one call: allowed or not, and why (for logs and CDRs).

    ``klass``: the class the decision was made on (a high-risk number the company
    lifts is ``international``). ``rule``: the step that decided.
    """

    allowed: bool
    klass: DestinationKind
    because: str
    rule: Rule = "class"

    @property
    def cause(self) -> str:
        """The CDR cause of a barred call: ``barred:<class>``, ``barred:company-deny``,
        ``barred:profile-deny``; ``""`` when allowed."""
        if self.allowed:
            return ""
        return f"barred:{self.klass}" if self.rule == "class" else f"barred:{self.rule}"

    @property
    def reason_phrase(self) -> str:
        """A SIP reason phrase for a barred call (ASCII: phones display it)."""
        if self.rule in ("company-deny", "profile-deny"):
            return DENY_LIST_REASON
        return f"Destination barred ({self.klass.replace('_', ' ')})"


def check(
    profile: int,
    destination: DestinationClass,
    *,
    number: str | None = None,
    table: RestrictionTable = NO_TABLE,
) -> Restriction:
    """May a line with ``profile`` reach ``destination``? ``number``: its normalised
    value (``Number.value``), needed to read ``table``'s prefix lists; ``table``: the
    caller's company's (module docstring, steps a-e)."""
    klass = destination.klass
    if klass == "emergency":  # a
        return Restriction(True, klass, "numéro d'urgence : jamais restreint", "emergency")
    if number is None:
        if table:
            raise ValueError("check: a company table needs the number to match its prefixes")
        number = ""
    denied = table.deny.longest(number) if number else None
    if denied is not None:  # b
        why = f"liste d'interdiction de l'entreprise : préfixe {denied.describe()} interdit"
        return Restriction(False, klass, why, "company-deny")
    custom = table.profile(profile)
    name = custom.name if custom is not None else PROFILE_NAMES.get(profile, str(profile))
    head = f"profil {profile} « {name} »"
    if custom is not None and number:  # c
        allow, deny = custom.allow.longest(number), custom.deny.longest(number)
        if deny is not None and (allow is None or deny.rank >= allow.rank):
            why = f"{head} : préfixe {deny.describe()} interdit"
            return Restriction(False, klass, why, "profile-deny")
        if allow is not None:
            why = f"{head} : préfixe {allow.describe()} autorisé"
            return Restriction(True, klass, why, "profile-allow")
    lifted = ""
    if klass == "high_risk_international" and number:  # d
        exception = table.allow.longest(number)
        if exception is not None:
            lifted = (
                f"{KIND_LABELS[klass]}, préfixe {exception.describe()} autorisé par "
                "l'entreprise : traité comme international ; "
            )
            klass = "international"
    classes = custom.classes if custom is not None else PROFILES.get(profile, _P1)  # e
    allowed = klass in classes
    verdict = "autorisé" if allowed else "interdit"
    label = KIND_LABELS.get(klass, klass)
    return Restriction(allowed, klass, f"{lifted}{head} : {label} {verdict}")


__all__ = [
    "CUSTOM_PROFILES",
    "DENY_LIST_REASON",
    "MAX_PREFIXES",
    "NO_TABLE",
    "PROFILES",
    "PROFILE_CLASSES",
    "PROFILE_NAMES",
    "CustomProfile",
    "Prefix",
    "PrefixList",
    "Restriction",
    "RestrictionTable",
    "Rule",
    "check",
    "parse_prefix",
]
