"""Nature des appelants (NUMBERING.md "Caller nature")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.callers import CallerInfo, classify_caller, matches_prefix
from routing.numbering import NumberingPlan, TelemarketingRow, default_plan

# -- anonymous and unknown ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "privacy", "display", "because"),
    [
        ("anonymous", False, None, "appelant anonyme (From anonymous)"),
        ("Anonymous", False, None, "appelant anonyme (From Anonymous)"),
        ("ANONYMOUS", False, "Anonymous", "appelant anonyme (From ANONYMOUS)"),
        (
            "anonymous@anonymous.invalid",
            False,
            None,
            "appelant anonyme (From anonymous@anonymous.invalid)",
        ),
        ("restricted", False, None, "appelant anonyme (From restricted)"),
        ("0612345678", True, None, "appelant anonyme (Privacy: id)"),
        (None, True, None, "appelant anonyme (Privacy: id)"),
        ("", True, None, "appelant anonyme (Privacy: id)"),
        (None, False, "Anonymous", 'appelant anonyme (nom affiché "Anonymous")'),
        ("", False, '"Anonyme"', 'appelant anonyme (nom affiché "Anonyme")'),
    ],
)
def test_anonymous(user: str | None, privacy: bool, display: str | None, because: str) -> None:
    info = classify_caller(user, privacy_id=privacy, display=display)
    assert info == CallerInfo("anonymous", None, None, None, None, None, because)


@pytest.mark.parametrize(
    ("user", "because"),
    [
        (None, "appelant inconnu (aucun numéro)"),
        ("", "appelant inconnu (aucun numéro)"),
        ("   ", "appelant inconnu (aucun numéro)"),
        ("unknown", "appelant inconnu (unknown)"),
        ("alice", "appelant inconnu (numéro inutilisable: alice)"),
        ("0123", "appelant inconnu (numéro inutilisable: 0123)"),
        ("+999123456", "appelant inconnu (numéro inutilisable: +999123456)"),
    ],
)
def test_unknown(user: str | None, because: str) -> None:
    info = classify_caller(user, display="Jean Dupont")
    assert (info.nature, info.number, info.because) == ("unknown", None, because)


def test_unassigned_block_is_unknown_but_keeps_the_number() -> None:
    info = classify_caller("0700123456")
    assert info.nature == "unknown"
    assert info.national == "0700123456"


# -- French natures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "nature", "zone", "because"),
    [
        ("0123456789", "fixed", "01", "appelant fixe (zone 01)"),
        ("+33298123456", "fixed", "02", "appelant fixe (zone 02)"),
        ("0033388123456", "fixed", "03", "appelant fixe (zone 03)"),
        ("04 91 12 34 56", "fixed", "04", "appelant fixe (zone 04)"),
        ("0556123456", "fixed", "05", "appelant fixe (zone 05)"),
        ("0612345678", "mobile", None, "appelant mobile (06)"),
        ("+33756123456", "mobile", None, "appelant mobile (07)"),
        ("0970123456", "nongeo", None, "appelant non géographique (09)"),
        ("0800100100", "nongeo", None, "appelant non géographique (08)"),
        ("0899123456", "nongeo", None, "appelant non géographique (08)"),
    ],
)
def test_french_natures(user: str, nature: str, zone: str | None, because: str) -> None:
    info = classify_caller(user)
    assert (info.nature, info.zone, info.country, info.territory, info.because) == (
        nature,
        zone,
        "FR",
        None,
        because,
    )
    assert info.number is not None
    assert info.national is not None
    assert info.number.value == "+33" + info.national[1:]


TELEMARKETING = [
    "0162", "0163", "0270", "0271", "0377", "0378", "0424", "0425",
    "0568", "0569", "0948", "0949", "09475", "09476", "09477", "09478", "09479",
]  # fmt: skip


@pytest.mark.parametrize("prefix", TELEMARKETING)
def test_telemarketing_ranges(prefix: str) -> None:
    national = (prefix + "123456")[:10]
    info = classify_caller(national)
    assert info.nature == "telemarketing"
    assert info.because == f"appelant démarchage (plage ARCEP {prefix})"
    assert info.national == national


def test_telemarketing_list_is_exactly_the_spec() -> None:
    assert {t.prefix for t in default_plan().telemarketing} == set(TELEMARKETING)


def test_telemarketing_keeps_zone_and_territory() -> None:
    assert classify_caller("0162123456").zone == "01"
    overseas = classify_caller("+590947512345")
    assert (overseas.nature, overseas.territory, overseas.country) == ("telemarketing", "GP", "GP")


@pytest.mark.parametrize("national", ["0161123456", "0164123456", "0947412345", "0950123456"])
def test_next_to_telemarketing_ranges(national: str) -> None:
    assert classify_caller(national).nature != "telemarketing"


def test_telemarketing_table_is_the_plans() -> None:
    plan = NumberingPlan(default_plan().rows, telemarketing=[TelemarketingRow("0612")])
    assert classify_caller("0612345678", plan=plan).nature == "telemarketing"
    assert classify_caller("0162123456", plan=plan).nature == "fixed"


# -- overseas and international ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "territory", "national"),
    [
        ("+262262123456", "RE", "0262123456"),
        ("+33262123456", "RE", "0262123456"),
        ("0692123456", "RE", "0692123456"),
        ("+262639012345", "YT", "0639012345"),
        ("+590590821234", "GP", "0590821234"),
        ("+590690123456", "GP", "0690123456"),
        ("+594694123456", "GF", "0694123456"),
        ("+596696123456", "MQ", "0696123456"),
        ("+508412345", "PM", "0508412345"),
    ],
)
def test_overseas(user: str, territory: str, national: str) -> None:
    info = classify_caller(user)
    assert (info.nature, info.territory, info.country, info.national) == (
        "overseas",
        territory,
        territory,
        national,
    )
    assert info.because.startswith(f"appelant outre-mer ({territory}, ")


@pytest.mark.parametrize(
    ("user", "country"),
    [
        ("+442079460958", "GB"),
        ("00493012345678", "DE"),
        ("+12125550123", "US"),
        ("+32470123456", "BE"),
        ("+41446681800", "CH"),
        ("+212612345678", "MA"),
        ("+687123456", "NC"),
        ("+881612345678", None),  # satellite: no country
    ],
)
def test_international(user: str, country: str | None) -> None:
    info = classify_caller(user)
    assert (info.nature, info.country, info.zone, info.territory) == (
        "international",
        country,
        None,
        None,
    )
    assert info.national is not None
    assert info.national.startswith("00")


@pytest.mark.parametrize("user", ["3900", "112", "36 55"])
def test_short(user: str) -> None:
    info = classify_caller(user)
    assert info.nature == "short"
    assert info.national == user.replace(" ", "")


# -- prefixes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "prefixes", "expected"),
    [
        ("0612345678", ["06"], "06"),
        ("0612345678", ["+336"], "+336"),
        ("0612345678", ["0033 6"], "0033 6"),
        ("+33612345678", ["06 12"], "06 12"),
        ("+33612345678", ["07", "+3361", "06"], "+3361"),  # the longest
        ("+33612345678", ["06", "+336"], "06"),  # tie: the first
        ("+262262123456", ["0262"], "0262"),
        ("+262262123456", ["+262"], "+262"),
        ("+262262123456", ["+33262"], "+33262"),
        ("0262123456", ["+262 262"], "+262 262"),
        ("+442079460958", ["+44"], "+44"),
        ("+442079460958", ["0044"], "0044"),
        ("+442079460958", ["00", "01"], "00"),
        ("3900", ["39"], "39"),
        ("0612345678", ["07", "+44", "01"], None),
        ("3900", ["03"], None),
        ("0123456789", ["0033 (0)1"], "0033 (0)1"),
        ("0123456789", [], None),
    ],
)
def test_matches_prefix(user: str, prefixes: list[str], expected: str | None) -> None:
    assert matches_prefix(classify_caller(user), prefixes) == expected


def test_anonymous_matches_no_prefix() -> None:
    assert matches_prefix(classify_caller("anonymous"), ["0", "+", "06"]) is None
    assert matches_prefix(classify_caller("0612345678", privacy_id=True), ["06"]) is None


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"0[1-9][0-9]{8}", fullmatch=True), st.integers(2, 10))
def test_a_number_matches_its_own_prefix_in_both_forms(national: str, size: int) -> None:
    info = classify_caller(national)
    if info.number is None:
        return
    assert matches_prefix(info, [national[:size]]) == national[:size]
    e164 = info.number.value
    cut = e164[: size + 2]
    assert matches_prefix(info, [cut]) == cut


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=16), st.booleans())
def test_classify_never_raises(user: str, privacy: bool) -> None:
    info = classify_caller(user, privacy_id=privacy)
    assert info.because.startswith(("appelant", "numéro"))
    assert (info.number is None) == (info.national is None) or info.nature == "unknown"
