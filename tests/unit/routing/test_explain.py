"""``aiguilleur explain`` on the example numbers: golden outputs, and the CLI's errors.

Regenerate the golden files after a deliberate change with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/routing/test_explain.py`` and review
the diff: it is the product's explanation of each call.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from routing.engine import RoutingContext
from routing.explain import explain, parse_outcomes, render_text
from routing.loader import load_library
from switch.cli import main

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "example"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

CASES: dict[str, list[str]] = {
    "0800100100-mardi-10h-occupes.txt": [
        "--to", "0800100100", "--from", "0612345678", "--at", "2026-05-12T10:00",
        "--outcomes", "busy,no_answer,busy,busy,no_answer,busy",
    ],
    "0800100100-mardi-10h-sans-reponse.txt": [
        "--to", "0800100100", "--from", "0145454545", "--at", "2026-05-12T10:00",
        "--outcomes", "no_answer,no_answer,no_answer,no_answer,no_answer,no_answer",
    ],
    "0800100100-mardi-10h-402-decroche.txt": [
        "--to", "0800100100", "--from", "0145454545", "--at", "2026-05-12T10:00+02:00",
        "--outcomes", "busy,answered",
    ],
    "0800100100-ascension.txt": [
        "--to", "0800100100", "--from", "0612345678", "--at", "2026-05-14T10:00",
    ],
    "0800100100-lundi-de-paques.txt": [
        "--to", "+33800100100", "--at", "2026-04-06T09:30",
    ],
    "0800100100-samedi.txt": [
        "--to", "0800100100", "--from", "0612345678", "--at", "2026-05-16T10:00",
    ],
    "0800100100-limiteur-plein.txt": [
        "--to", "0800100100", "--from", "0612345678", "--at", "2026-05-12T10:00",
        "--outcomes", "limit",
    ],
    "0891100100-atp.txt": [
        "--to", "0891100100", "--from", "0612345678", "--at", "2026-05-12T10:00",
        "--outcomes", "skipped,busy",
    ],
    "0891100100-atp-raccroche.txt": [
        "--to", "0891100100", "--from", "0612345678", "--at", "2026-05-12T10:00",
        "--outcomes", "hangup",
    ],
    "0970100100-mobile.txt": [
        "--to", "0970100100", "--from", "0612345678", "--at", "2026-05-12T10:00",
    ],
    "0970100100-international.txt": [
        "--to", "0970100100", "--from", "+447700900123", "--at", "2026-05-12T10:00",
    ],
    "0970100100-anonyme.txt": [
        "--to", "0970100100", "--from", "anonymous", "--at", "2026-05-12T10:00",
    ],
    "0970100100-fixe.txt": [
        "--to", "0970100100", "--from", "0145454545", "--at", "2026-05-12T10:00",
    ],
    "0800100100-mardi-10h.json": [
        "--to", "0800100100", "--from", "0612345678", "--at", "2026-05-12T10:00",
        "--outcomes", "busy", "--json",
    ],
}  # fmt: skip


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {name} (UPDATE_GOLDEN=1)"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(EXAMPLE), *CASES[name]]) == 0
    out = capsys.readouterr().out
    if name.endswith(".json"):
        json.loads(out)
    check_golden(name, out)


def test_golden_backup_plan() -> None:
    library = load_library(EXAMPLE / "routing").with_active_backup(
        "0800100100", "site-hors-service"
    )
    at = datetime(2026, 5, 14, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))  # even on a holiday
    result = explain(library, RoutingContext("0800100100", at, caller="0612345678"), ["busy"])
    check_golden("0800100100-plan-de-secours.txt", render_text(result))


def test_mutualisation_same_decisions_after_atp(capsys: pytest.CaptureFixture[str]) -> None:
    """0891100100 runs the very program of 0800100100 once its ATP is played."""
    args = ["--from", "0612345678", "--at", "2026-05-12T10:00", "--outcomes", "busy,busy", "--json"]
    main(["explain", str(EXAMPLE), "--to", "0800100100", *args])
    free = json.loads(capsys.readouterr().out)
    main(["explain", str(EXAMPLE), "--to", "0891100100", *args])
    surcharged = json.loads(capsys.readouterr().out)
    assert free["program"] == surcharged["program"] == "centre-appels"
    assert [s["action"] for s in surcharged["steps"]][:1] == ["Play"]
    dials = [[t["number"] for t in s["targets"]] for s in free["steps"] if s["action"] == "Dial"]
    assert dials == [
        [t["number"] for t in s["targets"]] for s in surcharged["steps"] if s["action"] == "Dial"
    ]


def test_outcome_words() -> None:
    assert parse_outcomes(" busy, No-Answer ,,answered") == ["busy", "no_answer", "answered"]
    with pytest.raises(ValueError, match="unknown outcome 'occupé'"):
        parse_outcomes("occupé")


def test_unused_outcomes_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--to", "0970100100", "--at", "2026-05-12T10:00", "--outcomes", "answered,busy"]
    assert main(["explain", str(EXAMPLE), *args]) == 0
    assert capsys.readouterr().out.endswith("résultats non utilisés : busy\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "0899999999", "--at", "2026-05-12T10:00"], "0899999999: not a service number"),
        (["--to", "0800100100", "--at", "mardi"], "--at 'mardi': not an ISO-8601 date"),
        (
            ["--to", "0800100100", "--at", "2026-05-12T10:00", "--outcomes", "bof"],
            "--outcomes: unknown outcome 'bof'",
        ),
    ],
)
def test_usage_errors_exit_1(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(EXAMPLE), *args]) == 1
    assert message in capsys.readouterr().err


def test_configuration_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "config")
    shop = tmp_path / "config" / "routing" / "shop.yaml"
    shop.write_text(shop.read_text().replace('number: "402"', "number: 0402"))
    assert main(["explain", str(tmp_path / "config"), "--to", "0970100100"]) == 1
    err = capsys.readouterr().err
    assert "shop.yaml:15:30: programs.boutique.steps[0].branches[1].steps[0].number: " in err
    assert "write this number in quotes" in err


def test_without_at_the_shell_uses_now(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(EXAMPLE), "--to", "0970100100", "--json"]) == 0
    at = datetime.fromisoformat(json.loads(capsys.readouterr().out)["at"])
    assert at.utcoffset() is not None


def test_naive_at_is_read_in_the_number_zone(capsys: pytest.CaptureFixture[str]) -> None:
    main(["explain", str(EXAMPLE), "--to", "0970100100", "--at", "2026-01-12T10:00", "--json"])
    assert json.loads(capsys.readouterr().out)["at"] == "2026-01-12T10:00:00+01:00"
    main(["explain", str(EXAMPLE), "--to", "0970100100", "--at", "2026-01-12T10:00Z", "--json"])
    assert json.loads(capsys.readouterr().out)["at"] == "2026-01-12T11:00:00+01:00"


def test_routing_schema_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "schema.json"
    assert main(["routing-schema", "-o", str(out)]) == 0
    committed = ROOT / "config" / "schema" / "routing.schema.json"
    assert out.read_text(encoding="utf-8") == committed.read_text(encoding="utf-8")
    assert main(["routing-schema"]) == 0
    assert capsys.readouterr().out == committed.read_text(encoding="utf-8")
