"""The routing program models: bounds in types, shorthands, terminal steps, JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from routing.program import (
    DEFAULT_PRECEDENCE,
    CalendarStep,
    Cause,
    GnrStep,
    OverflowTarget,
    Program,
    RoutingFile,
    ServiceNumber,
    Step,
    Strategy,
    block_is_terminal,
    is_terminal,
    json_schema,
)

ROOT = Path(__file__).resolve().parents[3]
STEP: TypeAdapter[Any] = TypeAdapter(Step)


def step(data: dict[str, Any]) -> Any:
    return STEP.validate_python(data)


def error_of(data: dict[str, Any]) -> tuple[tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as info:
        step(data)
    (first, *_) = info.value.errors()
    return tuple(first["loc"]), first["msg"]


def test_gnr_defaults_and_shorthand_targets() -> None:
    gnr = step({"type": "gnr", "targets": ["401", {"number": "0612345678", "ring_s": 30}]})
    assert isinstance(gnr, GnrStep)
    assert [t.number for t in gnr.targets] == ["401", "0612345678"]
    assert [t.ring_s for t in gnr.targets] == [None, 30]
    assert gnr.strategy is Strategy.SEQUENTIAL
    assert (gnr.ring_s, gnr.rounds, gnr.skip_known_busy) == (20, 1, True)
    assert tuple(gnr.precedence) == DEFAULT_PRECEDENCE


def test_numbers_are_compacted() -> None:
    gnr = step({"type": "gnr", "targets": ["06 12 34 56 78", "0044 20 7946 0000", 401]})
    assert [t.number for t in gnr.targets] == ["0612345678", "+442079460000", "401"]


@pytest.mark.parametrize(
    ("data", "loc", "message"),
    [
        (
            {"type": "gnr", "targets": []},
            ("gnr", "targets"),
            "a GNR holds 1 to 10 reception numbers, not 0",
        ),
        (
            {"type": "gnr", "targets": [str(400 + i) for i in range(11)]},
            ("gnr", "targets"),
            "a GNR holds 1 to 10 reception numbers, not 11",
        ),
        (
            {"type": "gnr", "targets": ["401"], "rounds": 11},
            ("gnr", "rounds"),
            "Input should be less than or equal to 10",
        ),
        (
            {"type": "gnr", "targets": ["401"], "ring_s": 301},
            ("gnr", "ring_s"),
            "Input should be less than or equal to 300",
        ),
        (
            {"type": "gnr", "targets": ["401"], "precedence": []},
            ("gnr", "precedence"),
            "List should have at least 1 item after validation, not 0",
        ),
        (
            {"type": "limit", "max": 0},
            ("limit", "max"),
            "Input should be greater than or equal to 1",
        ),
        (
            {"type": "play", "message": "m", "skippable_with": "##"},
            ("play", "skippable_with"),
            "String should match pattern '^[0-9*#]$'",
        ),
        (
            {"type": "dial", "number": "abc"},
            ("dial", "number"),
            "not a phone number: 'abc'",
        ),
        (
            {"type": "callers", "branches": [{"steps": [{"type": "hangup"}]}]},
            ("callers", "branches", 0),
            "give at least one of nature, country, zone, list, prefixes",
        ),
        (
            {
                "type": "callers",
                "branches": [{"nature": ["martian"], "steps": [{"type": "hangup"}]}],
            },
            ("callers", "branches", 0, "nature", 0),
            "Input should be 'anonymous', 'unknown', 'fixed', 'mobile', 'nongeo', "
            "'telemarketing', 'overseas', 'international' or 'short'",
        ),
        (
            {"type": "goto", "program": "bad name"},
            ("goto", "program"),
            "a name is 1-64 letters, digits, '_', '.', '-' (starting with a letter or digit)",
        ),
        (
            {"type": "calendar", "calendar": "c", "branches": {}},
            ("calendar", "branches"),
            "Dictionary should have at least 1 item after validation, not 0",
        ),
    ],
)
def test_step_bounds(data: dict[str, Any], loc: tuple[str | int, ...], message: str) -> None:
    assert error_of(data) == (loc, message)


def test_overflow_target_needs_exactly_one() -> None:
    assert OverflowTarget(number="601").describe() == "numéro 601"
    assert OverflowTarget(message="m").describe() == "message « m »"
    assert OverflowTarget(program="p").describe() == "programme « p »"
    for bad in ({}, {"number": "601", "program": "p"}):
        with pytest.raises(ValidationError, match="give exactly one of number, message, program"):
            OverflowTarget.model_validate(bad)
    with pytest.raises(ValidationError, match="ring_s goes with number"):
        OverflowTarget.model_validate({"message": "m", "ring_s": 10})


def test_overflow_keys_are_causes() -> None:
    program = Program.model_validate(
        {"steps": [{"type": "hangup"}], "overflow": {"busy": {"number": "601"}}}
    )
    assert list(program.overflow) == [Cause.BUSY]


def test_models_are_frozen_and_strict() -> None:
    program = Program.model_validate({"steps": [{"type": "hangup"}]})
    with pytest.raises(ValidationError):
        program.description = "x"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Program.model_validate({"steps": [{"type": "hangup"}], "steps2": []})


def test_service_number_shorthands() -> None:
    number = ServiceNumber.model_validate({"program": "p", "atp": "atp-tarif"})
    assert number.atp is not None
    assert (number.atp.message, number.atp.early, number.atp.skippable_with) == (
        "atp-tarif",
        True,
        "#",
    )
    with pytest.raises(ValidationError, match="limit_pool needs limit"):
        ServiceNumber.model_validate({"program": "p", "limit_pool": "x"})


def test_split_must_total_100() -> None:
    ok = step(
        {
            "type": "split",
            "branches": [
                {"percent": 25, "steps": [{"type": "hangup"}]},
                {"percent": 75, "steps": [{"type": "hangup"}]},
            ],
        }
    )
    assert [b.percent for b in ok.branches] == [25, 75]
    short = {
        "type": "split",
        "branches": [
            {"percent": 30, "steps": [{"type": "hangup"}]},
            {"percent": 60, "steps": [{"type": "hangup"}]},
        ],
    }
    assert error_of(short) == (("split", "branches"), "percentages add up to 90, not 100")


@pytest.mark.parametrize(
    ("data", "terminal"),
    [
        ({"type": "gnr", "targets": ["401"]}, True),
        ({"type": "dial", "number": "401"}, True),
        ({"type": "goto", "program": "p"}, True),
        ({"type": "voicemail", "box": "401"}, True),
        ({"type": "menu", "menu": "m"}, True),
        ({"type": "hangup"}, True),
        ({"type": "limit", "max": 3}, False),
        ({"type": "play", "message": "m"}, False),
        ({"type": "play", "message": "m", "then": "hangup"}, True),
        # A calendar ends the block when every branch does (closed overflows).
        ({"type": "calendar", "calendar": "c", "branches": {"o": [{"type": "hangup"}]}}, True),
        (
            {
                "type": "calendar",
                "calendar": "c",
                "branches": {"o": [{"type": "play", "message": "m"}]},
            },
            False,
        ),
        # Callers without `others` may fall through.
        (
            {
                "type": "callers",
                "branches": [{"nature": ["mobile"], "steps": [{"type": "hangup"}]}],
            },
            False,
        ),
        (
            {
                "type": "callers",
                "branches": [{"nature": ["mobile"], "steps": [{"type": "hangup"}]}],
                "others": [{"type": "hangup"}],
            },
            True,
        ),
    ],
)
def test_terminal_steps(data: dict[str, Any], terminal: bool) -> None:
    assert is_terminal(step(data)) is terminal


def test_block_is_terminal() -> None:
    calendar = step({"type": "calendar", "calendar": "c", "branches": {"o": [{"type": "hangup"}]}})
    assert isinstance(calendar, CalendarStep)
    assert block_is_terminal([step({"type": "limit", "max": 1}), calendar])
    assert not block_is_terminal([step({"type": "limit", "max": 1})])


def test_committed_schema_is_the_generated_one() -> None:
    committed = json.loads((ROOT / "config" / "schema" / "routing.schema.json").read_text())
    assert committed == json_schema(), (
        "run: aiguilleur routing-schema -o config/schema/routing.schema.json"
    )


def test_schema_shape() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(RoutingFile.model_fields)
    gnr = schema["$defs"]["GnrStep"]["properties"]["targets"]
    assert (gnr["minItems"], gnr["maxItems"]) == (1, 10)
    assert {"$ref": "#/$defs/GnrTarget"} in gnr["items"]["anyOf"]
    target = schema["$defs"]["OverflowTarget"]
    assert target["oneOf"] == [
        {"required": ["number"]},
        {"required": ["message"]},
        {"required": ["program"]},
    ]
