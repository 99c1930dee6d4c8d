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

Profiles 8 and 9 are the company's own ("profil modifiable"); until a company
defines them they allow what profile 1 allows, the safe side. High-risk
international destinations (toll fraud) and special numbers are allowed by
profile 10 only. Emergency numbers are never barred, by any profile.
"""

from __future__ import annotations

from dataclasses import dataclass

from routing.numbering import KIND_LABELS, DestinationClass, DestinationKind


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


@dataclass(frozen=True, slots=True)
class Restriction:
    """The verdict for one call: allowed or not, and why (for logs and CDRs)."""

    allowed: bool
    klass: DestinationKind
    because: str

    @property
    def reason_phrase(self) -> str:
        """A SIP reason phrase for a barred call (ASCII: phones display it)."""
        return f"Destination barred ({self.klass.replace('_', ' ')})"


def check(profile: int, destination: DestinationClass) -> Restriction:
    """May a line with ``profile`` reach ``destination``?"""
    klass = destination.klass
    label = KIND_LABELS.get(klass, klass)
    name = PROFILE_NAMES.get(profile, str(profile))
    if klass == "emergency":
        return Restriction(True, klass, "numéro d'urgence : jamais restreint")
    allowed = klass in PROFILES.get(profile, _P1)
    verdict = "autorisé" if allowed else "interdit"
    return Restriction(allowed, klass, f"profil {profile} « {name} » : {label} {verdict}")


__all__ = ["PROFILES", "PROFILE_NAMES", "Restriction", "check"]
