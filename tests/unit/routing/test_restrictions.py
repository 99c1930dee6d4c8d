"""Restriction profiles 1-10: each profile against one number of each destination class."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from routing.numbering import destination_class, normalize
from routing.restrictions import (
    CUSTOM_PROFILES,
    NO_TABLE,
    PROFILE_CLASSES,
    PROFILE_NAMES,
    PROFILES,
    CustomProfile,
    Prefix,
    PrefixList,
    Restriction,
    RestrictionTable,
    check,
    parse_prefix,
)

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


# -- prefixes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "values"),
    [
        ("+44 9", ["+449"]),
        ("0044-20", ["+4420"]),
        ("+41", ["+41"]),
        ("08.97", ["+33897"]),
        ("+33 897", ["+33897"]),  # +33X is read as the national 0X
        ("+330897", ["+33897"]),  # +330 → +33, as normalize does
        ("0692", ["+262692"]),  # an overseas block: its own code
        ("0692 12", ["+26269212"]),
        ("+33 692", ["+262692"]),
        ("0508", ["+508"]),
        ("+33", ["+33"]),
        ("36", ["36"]),  # short numbers, as dialled
        ("118", ["118"]),
    ],
)
def test_prefixes_are_normalised_like_numbers(written: str, values: list[str]) -> None:
    assert [p.value for p in parse_prefix(written)] == values
    assert all(not p.broad for p in parse_prefix(written))


def test_a_national_prefix_stands_for_the_overseas_blocks_it_covers() -> None:
    prefixes = parse_prefix("069")
    assert [(p.value, p.broad) for p in prefixes] == [
        ("+3369", False),
        ("+262692", True),
        ("+262693", True),
        ("+590690", True),
        ("+590691", True),
        ("+594694", True),
        ("+596696", True),
        ("+596697", True),
    ]
    assert {p.written for p in prefixes} == {"069"}


@pytest.mark.parametrize(
    "written", ["", "0", "00", "+", "+0", "abc", "0x12", "1234567", "+1234567890123456", "*21"]
)
def test_what_is_not_a_prefix_is_refused_with_the_accepted_forms(written: str) -> None:
    with pytest.raises(ValueError, match=r"^not a prefix: '.*' \(\+CC\.\.\., 00CC\.\.\."):
        parse_prefix(written)


@settings(max_examples=300)
@given(st.from_regex(r"0[1-9][0-9]{8}", fullmatch=True), st.integers(2, 10))
def test_a_national_prefix_matches_every_number_dialled_with_it(number: str, size: int) -> None:
    """Whatever the block (metropolitan, overseas, 07/09 overseas ranges), a number
    dialled ``P…`` matches the prefix ``P`` once both are normalised."""
    normal = normalize(number)
    assume(normal.kind == "e164")
    assert PrefixList.parse([number[:size]]).longest(normal.value) is not None


def test_longest_match_and_the_broad_entries_rank_below_the_block() -> None:
    lst = PrefixList.parse(["06", "0692", "+262 692 1"])
    assert lst.longest("+33612345678") == Prefix("+336", "06")
    # "06" stands for +262692 too (broad), "0692" names the block: the block wins.
    assert lst.longest("+262692999999") == Prefix("+262692", "0692")
    assert lst.longest("+262692199999") == Prefix("+2626921", "+2626921")
    assert lst.longest("+4420") is None
    assert lst.longest("3639") is None
    assert not PrefixList()


# -- the company's table ----------------------------------------------------------------

PREMIUM = "+33899123456"
HIGH_RISK = "+5372345678"  # Cuba, in routing/data/high_risk_countries.csv

TABLE = RestrictionTable(
    profiles=(
        CustomProfile(
            8,
            "Commerciaux",
            frozenset({"free", "shared_cost", "national", "azur", "mobile"}),
            allow=PrefixList.parse(["+32", "+41", "0899 1"]),
            deny=PrefixList.parse(["0970", "+32 2"]),
        ),
        CustomProfile(
            9,
            "Accueil",
            frozenset({"free", "national"}),
            allow=PrefixList.parse(["36", "0692"]),
            deny=PrefixList.parse(["06", "+262 692"]),
        ),
    ),
    allow=PrefixList.parse(["+53"]),
    deny=PrefixList.parse(["+44 9", "0897", "112", "3639"]),
)


def verdict(profile: int, dialled: str, table: RestrictionTable = TABLE) -> Restriction:
    number = normalize(dialled)
    return check(profile, destination_class(number), number=number.value, table=table)


@pytest.mark.parametrize("profile", range(1, 11))
def test_a_emergency_passes_even_under_a_deny_prefix(profile: int) -> None:
    result = verdict(profile, "112")  # "112" is in the company's deny list
    assert (result.allowed, result.rule, result.cause) == (True, "emergency", "")
    assert result.because == "numéro d'urgence : jamais restreint"


@pytest.mark.parametrize("profile", [8, 10])
def test_b_the_company_deny_list_bars_every_profile(profile: int) -> None:
    result = verdict(profile, "0897 12 34 56")
    assert not result.allowed
    assert result.klass == "premium"
    assert result.cause == "barred:company-deny"
    assert result.reason_phrase == "Destination barred (deny list)"
    assert result.because == (
        "liste d'interdiction de l'entreprise : préfixe 0897 (+33897) interdit"
    )
    # Short numbers as dialled; international prefixes written with separators.
    assert verdict(profile, "3639").cause == "barred:company-deny"
    assert verdict(profile, "+44 9012 345678").cause == "barred:company-deny"
    assert verdict(10, "+44 20 7946 0000").allowed


def test_b_a_company_deny_is_not_lifted_by_a_profile_allow() -> None:
    table = RestrictionTable(
        profiles=(CustomProfile(8, "P", frozenset(), allow=PrefixList.parse(["0897"])),),
        deny=PrefixList.parse(["08"]),
    )
    assert verdict(8, "0897123456", table).cause == "barred:company-deny"


def test_c_a_custom_profile_list_decides_whatever_the_class() -> None:
    # +41 is international, not among profile 8's classes: its allow list lets it through.
    swiss = verdict(8, "+41 44 668 18 00")
    assert (swiss.allowed, swiss.rule, swiss.klass) == (True, "profile-allow", "international")
    assert swiss.because == "profil 8 « Commerciaux » : préfixe +41 autorisé"
    # 0970 is national, among its classes: its deny list bars it.
    barred = verdict(8, "0970 12 34 56")
    assert (barred.allowed, barred.cause) == (False, "barred:profile-deny")
    assert barred.reason_phrase == "Destination barred (deny list)"
    assert barred.because == "profil 8 « Commerciaux » : préfixe 0970 (+33970) interdit"
    # Premium is not among its classes, but 0899 1… is allowed by prefix.
    assert verdict(8, "0899 12 34 56").rule == "profile-allow"
    assert verdict(8, "0899 22 34 56").cause == "barred:premium"
    # The lists are the profile's own: profile 9 and 10 do not read them.
    assert verdict(10, "0970123456").allowed
    assert verdict(9, "+41446681800").cause == "barred:international"


def test_c_longest_match_wins_and_deny_wins_ties() -> None:
    # +32 allowed, +32 2 denied: the longer one decides.
    assert verdict(8, "+32 2 123 45 67").cause == "barred:profile-deny"
    assert verdict(8, "+32 9 123 45 67").allowed
    # Profile 9: "06" denied (it covers 0692 as a broad entry), "0692" allowed: the
    # entry naming the block wins; "+262 692" denied ties with "0692": deny wins.
    tie = verdict(9, "0692 12 34 56")
    assert (tie.allowed, tie.cause) == (False, "barred:profile-deny")
    assert tie.because == "profil 9 « Accueil » : préfixe +262692 interdit"
    table = RestrictionTable(
        profiles=(
            CustomProfile(
                9,
                "Accueil",
                frozenset(),
                allow=PrefixList.parse(["0692"]),
                deny=PrefixList.parse(["06"]),
            ),
        )
    )
    assert verdict(9, "0692123456", table).rule == "profile-allow"
    assert verdict(9, "0612345678", table).cause == "barred:profile-deny"
    # A short-number prefix allows a premium short number (3639 is not company-denied
    # in this table).
    short = RestrictionTable(profiles=(TABLE.profiles[1],))
    assert verdict(9, "3639", short).rule == "profile-allow"


def test_d_the_company_allow_list_lifts_the_high_risk_list_only() -> None:
    cuba = destination_class(normalize(HIGH_RISK))
    assert cuba.klass == "high_risk_international"
    lifted = verdict(7, HIGH_RISK)  # profile 7 allows international
    assert (lifted.allowed, lifted.klass, lifted.rule) == (True, "international", "class")
    assert lifted.because == (
        "international à risque, préfixe +53 autorisé par l'entreprise : traité comme "
        "international ; profil 7 « Sauf Appels Surtaxés » : international autorisé"
    )
    # The line's profile still decides whether international is allowed.
    still = verdict(6, HIGH_RISK)
    assert (still.allowed, still.cause) == (False, "barred:international")
    assert still.reason_phrase == "Destination barred (international)"
    # Another high-risk code stays high-risk: barred but for profile 10.
    assert verdict(7, "+88216000000").cause == "barred:high_risk_international"
    assert verdict(10, "+88216000000").allowed
    # Without the company's exception, Cuba is high-risk.
    assert verdict(7, HIGH_RISK, NO_TABLE).cause == "barred:high_risk_international"


def test_e_a_defined_custom_profile_uses_its_own_classes() -> None:
    assert verdict(8, "0612345678").allowed  # mobile: among profile 8's classes
    assert verdict(9, "0612345678").cause == "barred:profile-deny"  # 9 denies 06
    assert verdict(9, "0140000000").allowed
    barred = verdict(9, "0811123456")
    assert barred.cause == "barred:azur"
    assert barred.because == "profil 9 « Accueil » : Azur interdit"


@pytest.mark.parametrize("profile", [8, 9])
def test_e_an_undefined_custom_profile_is_profile_1(profile: int) -> None:
    only_8 = RestrictionTable(profiles=(TABLE.profiles[0],))
    table = only_8 if profile == 9 else NO_TABLE
    assert verdict(profile, "0800123456", table).allowed
    barred = verdict(profile, "0140000000", table)
    assert barred.cause == "barred:national"
    assert barred.because == f"profil {profile} « {PROFILE_NAMES[profile]} » : national interdit"


def test_a_table_needs_the_number() -> None:
    with pytest.raises(ValueError, match="needs the number"):
        check(8, destination_class(normalize(PREMIUM)), table=TABLE)
    assert not check(8, destination_class(normalize(PREMIUM))).allowed


def test_only_8_and_9_are_custom() -> None:
    with pytest.raises(ValueError, match="only 8 and 9"):
        CustomProfile(7, "x", frozenset())
    assert CUSTOM_PROFILES == (8, 9)
    assert "invalid" not in PROFILE_CLASSES
    assert set(PROFILE_CLASSES) == set(PROFILES[10]) | {"emergency"}
