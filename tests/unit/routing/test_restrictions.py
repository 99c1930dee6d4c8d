"""Restriction profiles 1-10: each profile against one number of each destination class."""

from __future__ import annotations

import pytest

from routing.numbering import destination_class, normalize
from routing.restrictions import PROFILES, check

# One number per destination class (NUMBERING.md).
SAMPLES = {
    "emergency": "112",
    "free": "0800123456",
    "shared_cost": "0806123456",
    "national": "0140000000",
    "azur": "0811123456",
    "mobile": "0612345678",
    "overseas": "0696123456",
    "premium": "0899123456",
    "international": "+447700900123",
    "high_risk_international": "+88216000000",
}

# RESTRICTIONS.md, row by row: the classes each profile lets through.
ALLOWED = {
    1: {"emergency", "free"},
    2: {"emergency", "free", "shared_cost", "national"},
    3: {"emergency", "free", "shared_cost", "national", "azur"},
    4: {"emergency", "free", "shared_cost", "national", "azur", "mobile"},
    5: {"emergency", "free", "shared_cost", "national", "azur", "mobile", "overseas"},
    6: {"emergency", "free", "shared_cost", "national", "azur", "mobile", "overseas", "premium"},
    7: {
        "emergency",
        "free",
        "shared_cost",
        "national",
        "azur",
        "mobile",
        "overseas",
        "international",
    },
    8: {"emergency", "free"},
    9: {"emergency", "free"},
    10: set(SAMPLES),
}


def test_samples_are_in_the_class_they_stand_for() -> None:
    for klass, number in SAMPLES.items():
        assert destination_class(normalize(number)).klass == klass, number


@pytest.mark.parametrize("profile", sorted(ALLOWED))
@pytest.mark.parametrize("klass", sorted(SAMPLES))
def test_profile_table(profile: int, klass: str) -> None:
    verdict = check(profile, destination_class(normalize(SAMPLES[klass])))
    assert verdict.allowed is (klass in ALLOWED[profile])
    assert verdict.klass == klass


@pytest.mark.parametrize("number", ["112", "15", "17", "18", "114", "196", "116117"])
@pytest.mark.parametrize("profile", [*sorted(PROFILES), 0, 99])
def test_emergency_numbers_are_never_barred(number: str, profile: int) -> None:
    verdict = check(profile, destination_class(normalize(number)))
    assert verdict.allowed
    assert verdict.because == "numéro d'urgence : jamais restreint"


def test_unknown_profile_falls_back_to_the_safe_side() -> None:
    assert not check(42, destination_class(normalize("0612345678"))).allowed


def test_verdict_explains_itself_and_gives_an_ascii_reason_phrase() -> None:
    verdict = check(1, destination_class(normalize("0899123456")))
    assert verdict.because == "profil 1 « Urgences, Gratuits et SAV » : surtaxé interdit"
    assert verdict.reason_phrase == "Destination barred (premium)"
    assert verdict.reason_phrase.isascii()
