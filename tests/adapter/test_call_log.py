"""The call log (``aiguilleur calls DIR --line / --company``) over CDR rows written
by real calls through an in-process switch (raw UAs over UDP)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from switch.cli import main
from tests.adapter.raw_ua import RawUa, running_switch
from tests.adapter.test_call_lifecycle import cdr, settings, until
from tests.sip_support import EXAMPLE


def calls(capsys: pytest.CaptureFixture[str], data: Path, *args: str) -> str:
    assert main(["calls", str(data), "--config", str(EXAMPLE), *args]) == 0
    return capsys.readouterr().out


def jsonl(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


async def test_line_and_company_logs_from_real_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running_switch(tmp_path, settings()) as (server, port):
        a401 = await RawUa.open("401", "secret401", port)
        a402 = await RawUa.open("402", "secret402", port)
        a403 = await RawUa.open("403", "secret403", port)
        try:
            await a402.register()
            answered = await a401.call("402")  # 401 -> 402, answered
            await answered.answered()
            await answered.bye()
            a402.answer = 486
            await (await a403.call("402")).failed(486)  # 403 -> 402: busy, missed
            await (await a403.call("401")).failed(480)  # 401 unregistered: missed
            await (await a401.call("*65*0")).answered()  # a star code is a call too
            await until(lambda: len(cdr(server)) == 4)
        finally:
            for ua in (a401, a402, a403):
                ua.close()
        data = server.data_dir

    log402 = jsonl(calls(capsys, data, "--line", "402", "--format", "jsonl"))
    assert [(e["direction"], e["caller"], e["missed"]) for e in log402] == [
        ("in", "403@pbx.test", True),  # newest first
        ("in", "401@pbx.test", False),
    ]
    assert log402[1]["outcome"] == "answered"
    assert log402[1]["line"] == "402@pbx.test"

    log401 = jsonl(calls(capsys, data, "--line", "401@pbx.test", "--format", "jsonl"))
    assert [(e["direction"], e["called"], e["missed"]) for e in log401] == [
        ("out", "*65*0", False),
        ("in", "401", True),
        ("out", "402", False),
    ]
    assert (
        len(jsonl(calls(capsys, data, "--line", "401", "--format", "jsonl", "--limit", "1"))) == 1
    )

    company = jsonl(calls(capsys, data, "--company", "exemple-pme", "--format", "jsonl"))
    assert len(company) == 4
    assert sum(bool(e["missed"]) for e in company) == 0  # internal calls: placed by a line
    assert {e["direction"] for e in company} == {"out"}

    text = calls(capsys, data, "--line", "402")
    lines = text.splitlines()
    assert len(lines) == 2
    assert "MISSED" in lines[0]
    assert "403@pbx.test -> 402" in lines[0]
    assert "MISSED" not in lines[1]

    rows = list(csv.reader(io.StringIO(calls(capsys, data, "--line", "402", "--format", "csv"))))
    assert rows[0][:3] == ["started_at", "direction", "missed"]
    assert len(rows) == 3


def test_unknown_line_or_company_and_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["calls", str(tmp_path), "--line", "401", "--config", str(EXAMPLE)]) == 1
    assert "no CDR database" in capsys.readouterr().err
    (tmp_path / "cdr.sqlite3").write_bytes(b"")
    assert main(["calls", str(tmp_path), "--line", "499", "--config", str(EXAMPLE)]) == 2
    assert "unknown line" in capsys.readouterr().err
    assert main(["calls", str(tmp_path), "--company", "nope", "--config", str(EXAMPLE)]) == 2
    assert "unknown company" in capsys.readouterr().err
