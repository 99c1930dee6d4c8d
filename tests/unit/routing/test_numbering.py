"""French numbering (NUMBERING.md): normalisation rules 1-5 and destination classes."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.numbering import (
    DESTINATION_KINDS,
    Number,
    NumberingPlan,
    PlanError,
    PlanRow,
    default_plan,
    destination_class,
    normalize,
    read_high_risk_rows,
    read_plan_rows,
    read_telemarketing_rows,
    to_national,
)

# -- rule 1: separators, 00, +330 -------------------------------------------------------


@pytest.mark.parametrize(
    ("dialled", "value"),
    [
        ("0123456789", "+33123456789"),
        ("01 23 45 67 89", "+33123456789"),
        ("01.23.45.67.89", "+33123456789"),
        ("01-23-45-67-89", "+33123456789"),
        ("(01) 23/45 67 89", "+33123456789"),
        ("0033123456789", "+33123456789"),
        ("+33 1 23 45 67 89", "+33123456789"),
        ("+33 (0)1 23 45 67 89", "+33123456789"),
        ("+330123456789", "+33123456789"),
        ("0033 0 6 12 34 56 78", "+33612345678"),
        ("0612345678;npdi", "+33612345678"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+44 (0)20 7946 0958", "+442079460958"),
    ],
)
def test_rule1_separators_and_international_prefix(dialled: str, value: str) -> None:
    number = normalize(dialled)
    assert number == Number("e164", value, dialled)


# -- rule 2: short numbers stay short ---------------------------------------------------


@pytest.mark.parametrize(
    "dialled", ["15", "17", "112", "3900", "36 55", "116000", "118712", "1014", "3646"]
)
def test_rule2_short_numbers_are_never_plus33(dialled: str) -> None:
    number = normalize(dialled)
    assert number.kind == "short"
    assert number.value == dialled.replace(" ", "")
    assert not number.value.startswith("+")


@pytest.mark.parametrize(
    "dialled",
    ["", "1", "1234567", "0800", "012345678", "01234567890", "00", "+", "*21#", "01234a6789"],
)
def test_invalid_inputs_are_kind_invalid_never_an_exception(dialled: str) -> None:
    assert normalize(dialled).kind == "invalid"


# -- rule 3: national, overseas first, 14 digits -----------------------------------------


@pytest.mark.parametrize(
    ("dialled", "value"),
    [
        ("0262123456", "+262262123456"),
        ("0263123456", "+262263123456"),
        ("0269612345", "+262269612345"),
        ("0639012345", "+262639012345"),
        ("0692123456", "+262692123456"),
        ("0693123456", "+262693123456"),
        ("0590123456", "+590590123456"),
        ("0690123456", "+590690123456"),
        ("0691123456", "+590691123456"),
        ("0594123456", "+594594123456"),
        ("0694123456", "+594694123456"),
        ("0596123456", "+596596123456"),
        ("0696123456", "+596696123456"),
        ("0697123456", "+596697123456"),
        ("0508412345", "+508412345"),
        # newer overseas blocks in 07 and 09 (data rows)
        ("0709012345", "+590709012345"),
        ("0709212345", "+262709212345"),
        ("0939912345", "+262939912345"),
        ("0976612345", "+596976612345"),
        # everything else: +33
        ("0123456789", "+33123456789"),
        ("0612345678", "+33612345678"),
        ("0756123456", "+33756123456"),
        ("0800100100", "+33800100100"),
        ("0970123456", "+33970123456"),
        ("0261123456", "+33261123456"),
        # 14 digits
        ("07001234567890", "+337001234567890"),
        ("09011234567890", "+339011234567890"),
    ],
)
def test_rule3_national_numbers(dialled: str, value: str) -> None:
    assert normalize(dialled) == Number("e164", value, dialled)


@pytest.mark.parametrize("dialled", ["06123456789012", "01234567890123", "0800123456789"])
def test_14_digits_only_for_0700_and_0901(dialled: str) -> None:
    assert normalize(dialled).kind == "invalid"


# -- rule 4: +33 overseas callers rewritten ---------------------------------------------


@pytest.mark.parametrize(
    ("received", "value"),
    [
        ("+33262123456", "+262262123456"),
        ("+33692123456", "+262692123456"),
        ("+33639012345", "+262639012345"),
        ("+33590123456", "+590590123456"),
        ("+33594123456", "+594594123456"),
        ("+33696123456", "+596696123456"),
        ("+33508412345", "+508412345"),
        ("0033262123456", "+262262123456"),
        ("+262262123456", "+262262123456"),
    ],
)
def test_rule4_overseas_callers_get_their_own_code(received: str, value: str) -> None:
    assert normalize(received).value == value


# -- rule 5: back to national -------------------------------------------------------------


@pytest.mark.parametrize(
    ("e164", "national"),
    [
        ("+33800100100", "0800100100"),
        ("+33123456789", "0123456789"),
        ("+337001234567890", "07001234567890"),
        ("+262262123456", "0262123456"),
        ("+262692123456", "0692123456"),
        ("+590690123456", "0690123456"),
        ("+596696123456", "0696123456"),
        ("+594594123456", "0594123456"),
        ("+508412345", "0508412345"),
        ("+590709012345", "0709012345"),
        ("+262123456789", "0123456789"),  # an overseas code + 9 digits outside the table
        ("+442079460958", "00442079460958"),
        ("+12125550123", "0012125550123"),
        ("3900", "3900"),
        ("112", "112"),
    ],
)
def test_rule5_to_national(e164: str, national: str) -> None:
    assert to_national(e164) == national


@pytest.mark.parametrize(
    "national",
    ["0262123456", "0692123456", "0590123456", "0594123456", "0596123456", "0508412345"],
)
def test_overseas_round_trip(national: str) -> None:
    number = normalize(national)
    assert not number.value.startswith("+33")
    assert to_national(number) == national
    assert normalize("+33" + national[1:]).value == number.value


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"0[1-9][0-9]{8}", fullmatch=True))
def test_every_national_number_round_trips(national: str) -> None:
    number = normalize(national)
    assert number.kind == "e164"
    assert to_national(number) == national
    assert normalize(number.value).value == number.value


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789+ .-()#*;a", max_size=20))
def test_normalize_never_raises(text: str) -> None:
    number = normalize(text)
    assert number.raw == text
    klass = destination_class(number)
    assert klass.klass in DESTINATION_KINDS


# -- destination classes ------------------------------------------------------------------

EMERGENCY = ["15", "17", "18", "112", "114", "115", "119", "191", "196", "197", "116000", "116117"]


@pytest.mark.parametrize("dialled", EMERGENCY)
def test_the_twelve_emergency_numbers(dialled: str) -> None:
    klass = destination_class(dialled)
    assert klass.klass == "emergency"
    assert klass.rule is not None
    assert klass.rule.prefix == dialled


def test_emergency_list_is_exactly_the_spec() -> None:
    rows = {r.prefix for r in default_plan().rows if r.klass == "emergency"}
    assert rows == set(EMERGENCY)


@pytest.mark.parametrize("dialled", ["150", "1150", "11", "1120", "16", "113"])
def test_emergency_needs_the_exact_number(dialled: str) -> None:
    assert destination_class(dialled).klass != "emergency"


@pytest.mark.parametrize(
    ("dialled", "klass"),
    [
        # free
        ("0800100100", "free"),
        ("0805123456", "free"),
        ("3000", "free"),
        ("3007", "free"),
        ("3009", "free"),
        ("3169", "free"),
        ("3180", "free"),
        ("3199", "free"),
        ("116006", "free"),
        ("116123", "free"),
        ("3901", "free"),
        # shared cost (grey)
        ("0806123456", "shared_cost"),
        ("0809123456", "shared_cost"),
        # national
        ("0123456789", "national"),
        ("0298123456", "national"),
        ("0556123456", "national"),
        ("0970123456", "national"),
        ("09011234567890", "national"),
        # azur
        ("0810123456", "azur"),
        ("0811123456", "azur"),
        # mobile
        ("0612345678", "mobile"),
        ("0733123456", "mobile"),
        ("0799123456", "mobile"),
        ("07001234567890", "mobile"),
        # overseas
        ("0262123456", "overseas"),
        ("0696123456", "overseas"),
        ("0508412345", "overseas"),
        ("+590690123456", "overseas"),
        # premium
        ("0820123456", "premium"),
        ("0899123456", "premium"),
        ("118712", "premium"),
        ("118218", "premium"),
        ("3008", "premium"),
        ("3170", "premium"),
        ("3179", "premium"),
        ("3200", "premium"),
        ("3646", "premium"),
        ("3900", "premium"),
        # international
        ("+442079460958", "international"),
        ("00493012345678", "international"),
        ("+12125550123", "international"),
        ("+687123456", "international"),
        ("+689401234", "international"),
        ("+681721234", "international"),
        ("+2697712345", "international"),
        # high-risk international
        ("+881612345678", "high_risk_international"),
        ("+8821234567890", "high_risk_international"),
        ("+5351234567", "high_risk_international"),
        ("+12684601234", "high_risk_international"),
        # special and invalid
        ("1014", "special"),
        ("601", "special"),
        ("0700123456", "invalid"),
        ("abc", "invalid"),
    ],
)
def test_destination_classes(dialled: str, klass: str) -> None:
    assert destination_class(dialled).klass == klass


@pytest.mark.parametrize(
    ("dialled", "iso"),
    [
        ("+442079460958", "GB"),
        ("+4930123456", "DE"),
        ("+12125550123", "US"),
        ("+14165550123", "CA"),
        ("+687123456", "NC"),
        ("+2697712345", "KM"),
        ("+5351234567", "CU"),
        ("+881612345678", "001"),
    ],
)
def test_international_country_detection(dialled: str, iso: str) -> None:
    assert destination_class(dialled).detail == iso


@pytest.mark.parametrize(
    ("dialled", "territory"),
    [
        ("0262123456", "RE"),
        ("0692123456", "RE"),
        ("0269612345", "YT"),
        ("0639012345", "YT"),
        ("0590821234", "GP"),
        ("0590271234", "BL"),
        ("0590771234", "MF"),
        ("0594123456", "GF"),
        ("0596123456", "MQ"),
        ("0508412345", "PM"),
    ],
)
def test_overseas_territory(dialled: str, territory: str) -> None:
    klass = destination_class(dialled)
    assert (klass.klass, klass.detail) == ("overseas", territory)


def test_class_explains_itself_with_the_row() -> None:
    klass = destination_class("0800 100 100")
    assert klass.rule is not None
    assert klass.rule.prefix == "0800"
    assert klass.rule.valid_from == date(2015, 10, 1)
    assert "gratuit" in klass.because
    assert "0800" in klass.because


def test_every_class_of_the_table_is_known() -> None:
    assert {r.klass for r in default_plan().rows} <= set(DESTINATION_KINDS)
    assert all(r.source and r.valid_from for r in default_plan().rows)


# -- custom plans --------------------------------------------------------------------------


def test_custom_plan_overrides_a_row() -> None:
    own = PlanRow("3900", "free", "SAV de l'opérateur", frozenset({4}), source="contrat client")
    plan = default_plan().with_rows([own])
    assert destination_class("3900").klass == "premium"
    assert destination_class("3900", plan).klass == "free"
    assert destination_class("3900", plan).rule == own
    assert destination_class("3901", plan).klass == "free"


def test_custom_plan_replaces_a_row_of_same_prefix_and_lengths() -> None:
    plan = default_plan().with_rows([PlanRow("081", "premium", lengths=frozenset({10}))])
    assert destination_class("0810123456", plan).klass == "premium"
    assert len(plan.rows) == len(default_plan().rows)


def test_custom_high_risk_entry() -> None:
    plan = default_plan().with_rows(
        read_high_risk_rows("prefix,region,label,added,source\n+44,GB,test,2026-01-01,ops\n")
    )
    assert destination_class("+442079460958", plan).klass == "high_risk_international"
    assert destination_class("+442079460958", plan).detail == "GB"


def test_plan_from_csv_text_and_as_of() -> None:
    text = (
        "# a comment\n"
        "prefix,lengths,class,detail,e164,valid_from,source\n"
        "01,10,national,,,2020-01-01,test\n"
        "0262,10,overseas,RE,+262262,2020-01-01,test\n"
        "+262,,overseas,RE,,2020-01-01,test\n"
        "3900,4,free,,,2030-01-01,future\n"
    )
    plan = NumberingPlan.from_csv(text)
    assert normalize("0262123456", plan).value == "+262262123456"
    assert destination_class("3900", plan).klass == "free"
    before = NumberingPlan.from_csv(text, as_of=date(2026, 1, 1))
    assert destination_class("3900", before).klass == "special"
    # 06 is not in this table: plain +33, class invalid (no row)
    assert normalize("0612345678", plan).value == "+33612345678"
    assert destination_class("0612345678", plan).klass == "invalid"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prefix,lengths,class\n", "missing columns"),
        (
            "prefix,lengths,class,detail,e164,valid_from,source\nx1,,free,,,2026-01-01,s\n",
            "bad prefix",
        ),
        (
            "prefix,lengths,class,detail,e164,valid_from,source\n01,,cheap,,,2026-01-01,s\n",
            "unknown class",
        ),
        (
            "prefix,lengths,class,detail,e164,valid_from,source\n01,,free,,,2026-13-01,s\n",
            "bad date",
        ),
        (
            "prefix,lengths,class,detail,e164,valid_from,source\n01,ten,free,,,2026-01-01,s\n",
            "bad lengths",
        ),
        ("prefix,lengths,class,detail,e164,valid_from,source\n01,,free\n", "3 fields"),
        (
            "prefix,lengths,class,detail,e164,valid_from,source\n3900,,free,,+33,2026-01-01,s\n",
            "e164",
        ),
    ],
)
def test_bad_tables_are_located(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message) as info:
        read_plan_rows(text, "mine.csv")
    assert str(info.value).startswith("mine.csv:")


def test_bad_side_tables() -> None:
    with pytest.raises(PlanError, match="bad prefix"):
        read_high_risk_rows("prefix,region,label,added,source\n881,001,x,2026-01-01,s\n")
    with pytest.raises(PlanError, match="bad prefix"):
        read_telemarketing_rows("prefix,detail,valid_from,source\n+33162,FR,2023-01-01,s\n")


def test_default_plan_is_a_singleton() -> None:
    assert default_plan() is default_plan()
