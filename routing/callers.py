"""Nature des appelants: who is calling, for routing incoming calls (NUMBERING.md).

``classify_caller`` turns the caller's SIP identity (the user part of From or
P-Asserted-Identity, ``Privacy: id``, the display name) into a ``CallerInfo``:

=============== ===========================================================================
nature          when
=============== ===========================================================================
anonymous       ``Privacy: id``; user ``anonymous`` (any case, RFC 3323
                ``sip:anonymous@anonymous.invalid``) or another withheld word; no user and a
                display name saying so
unknown         no usable number (absent, ``unknown``, not a number, unassigned block)
telemarketing   an ARCEP démarchage range (checked first; zone/territory still filled)
fixed           ``01``-``05`` (``zone`` is a hint only: no proof of location since 2023)
mobile          ``06``, ``07`` (not the overseas blocks)
nongeo          ``09``, and ``08`` numbers presented as callers
overseas        an overseas block (``territory`` and ``country``: ``RE``, ``GP``…)
international   another country (``country``: ISO 3166-1 alpha-2)
short           a short number (2-6 digits)
=============== ===========================================================================

With ``Privacy: id`` the number is not kept (``number`` is ``None``): the callee must
not see it, and routing must not depend on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from routing.numbering import (
    Number,
    NumberingPlan,
    default_plan,
    destination_class,
    normalize,
    to_national,
)

CallerNature = Literal[
    "anonymous",
    "unknown",
    "fixed",
    "mobile",
    "nongeo",
    "telemarketing",
    "overseas",
    "international",
    "short",
]

# User parts and display names that mean "withheld" (RFC 3323 and carrier habits).
_ANONYMOUS_WORDS = frozenset(
    {"anonymous", "anonyme", "restricted", "withheld", "private", "privé", "masqué"}
)
_UNKNOWN_WORDS = frozenset({"unknown", "unavailable", "inconnu", "indisponible"})
_ZONES = frozenset({"01", "02", "03", "04", "05"})
_PREFIX_SEPARATORS = re.compile(r"[\s.\-/()]")


@dataclass(frozen=True, slots=True)
class CallerInfo:
    """What routing knows about the caller.

    ``national``: the national display form (``0612345678``, ``0262…``, ``0044…``);
    ``zone``: ``01``-``05`` for geographic numbers; ``territory``: overseas ISO code;
    ``country``: ISO 3166-1 alpha-2 (``FR`` for metropolitan numbers, the territory for
    overseas ones); ``because``: one French phrase for traces.
    """

    nature: CallerNature
    number: Number | None
    national: str | None
    zone: str | None
    territory: str | None
    country: str | None
    because: str


def classify_caller(
    user: str | None,
    *,
    privacy_id: bool = False,
    display: str | None = None,
    plan: NumberingPlan | None = None,
) -> CallerInfo:
    """The nature of a caller from its user part, ``Privacy: id`` and display name."""
    if privacy_id:
        return _anonymous("appelant anonyme (Privacy: id)")
    text = (user or "").strip()
    if text.lower().partition("@")[0] in _ANONYMOUS_WORDS:
        return _anonymous(f"appelant anonyme (From {text})")
    if not text:
        shown = (display or "").strip().strip('"')
        if shown.lower() in _ANONYMOUS_WORDS:
            return _anonymous(f'appelant anonyme (nom affiché "{shown}")')
        return _unknown("appelant inconnu (aucun numéro)")
    if text.lower() in _UNKNOWN_WORDS:
        return _unknown(f"appelant inconnu ({text})")
    plan = plan or default_plan()
    number = normalize(text, plan)
    if number.kind == "invalid":
        return _unknown(f"appelant inconnu (numéro inutilisable: {text})")
    if number.kind == "short":
        return CallerInfo(
            "short",
            number,
            number.value,
            None,
            None,
            None,
            f"appelant numéro court ({number.value})",
        )
    return _classify_e164(number, plan)


def _classify_e164(number: Number, plan: NumberingPlan) -> CallerInfo:
    dest = destination_class(number, plan)
    national = to_national(number, plan)
    klass = dest.klass
    if klass in ("international", "high_risk_international"):
        country = dest.detail if len(dest.detail) == 2 else None
        return CallerInfo(
            "international",
            number,
            national,
            None,
            None,
            country,
            f"appelant international ({dest.detail or number.value})",
        )
    if klass == "invalid" or not national.startswith("0") or national.startswith("00"):
        return CallerInfo(
            "unknown", number, national, None, None, None, f"appelant inconnu ({dest.detail})"
        )
    overseas = klass == "overseas"
    territory = dest.detail if overseas else None
    country = territory if overseas else "FR"
    zone = national[:2] if not overseas and national[:2] in _ZONES else None
    telemarketing = plan.telemarketing_match(national)
    if telemarketing is not None:
        return CallerInfo(
            "telemarketing",
            number,
            national,
            zone,
            territory,
            country,
            f"appelant démarchage (plage ARCEP {telemarketing.prefix})",
        )
    block = dest.rule.prefix if dest.rule is not None else national[:2]
    if overseas:
        nature: CallerNature = "overseas"
        because = f"appelant outre-mer ({territory}, {block})"
    elif klass == "mobile":
        nature, because = "mobile", f"appelant mobile ({national[:2]})"
    elif zone is not None:
        nature, because = "fixed", f"appelant fixe (zone {zone})"
    elif klass in ("national", "free", "shared_cost", "azur", "premium"):
        nature, because = "nongeo", f"appelant non géographique ({national[:2]})"
    else:  # emergency / special under +33: not a caller identity
        return CallerInfo(
            "unknown", number, national, None, None, None, f"appelant inconnu ({block})"
        )
    return CallerInfo(nature, number, national, zone, territory, country, because)


def _anonymous(because: str) -> CallerInfo:
    return CallerInfo("anonymous", None, None, None, None, None, because)


def _unknown(because: str) -> CallerInfo:
    return CallerInfo("unknown", None, None, None, None, None, because)


def matches_prefix(info: CallerInfo, prefixes: Iterable[str]) -> str | None:
    """The most specific of ``prefixes`` the caller's number starts with (first on a tie).

    A prefix is compared in the form it is written in: ``+…`` (or ``00…``) against the
    E.164 number, ``0…`` against the national form, other digits against a short
    number. ``+33…`` prefixes also match the national form, so ``+33262`` matches a
    caller normalised to ``+262262…``. Specificity counts digits in national form
    (``+336`` ties with ``06``). Separators in prefixes are ignored. Anonymous and
    unknown callers match nothing.
    """
    number = info.number
    if number is None:
        return None
    e164 = number.value if number.kind == "e164" else None
    national = info.national or ""
    best: str | None = None
    best_size = -1
    for given in prefixes:
        p = _PREFIX_SEPARATORS.sub("", given)
        if p.startswith("00"):
            p = "+" + p[2:]
        if p.startswith("+330"):
            p = "+33" + p[4:]
        if not p:
            continue
        if p.startswith("+"):
            hit = e164 is not None and e164.startswith(p)
            if not hit and p.startswith("+33"):
                hit = national.startswith("0" + p[3:])
            # specificity in national digits: "+336" is as long as "06", "+44" as "0044"
            size = len(p) - 2 if p.startswith("+33") else len(p) + 1
        elif p.startswith("0"):
            hit = national.startswith(p) and not national.startswith("00")
            size = len(p)
        else:
            hit = number.kind == "short" and number.value.startswith(p)
            size = len(p)
        if hit and size > best_size:
            best, best_size = given, size
    return best
