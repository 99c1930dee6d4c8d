"""A generated routing library of any size, for the loader test and the routing benchmark."""

from __future__ import annotations

from pathlib import Path

_CALENDAR = (
    "calendars:\n  horaires:\n    periods:\n      ouvert:\n"
    "        - {days: [mon, tue, wed, thu, fri], ranges: ['08:00-19:00']}\n"
)
_PROGRAM = (
    "  prog-{i}:\n    steps:\n"
    "      - type: calendar\n        calendar: horaires\n        branches:\n"
    "          ouvert:\n            - type: gnr\n"
    "              targets: ['{a}', '{b}', '0612{i:06d}']\n"
    "              ring_s: 15\n              rounds: 2\n"
    "    overflow:\n      busy: {{number: '601'}}\n"
)


def generate_library(root: Path, numbers: int, programs: int, files: int = 10) -> Path:
    """``root/routing``: ``numbers`` service numbers (0970000000...) sharing ``programs``
    programs (prog-0...), spread over ``files`` files; returns the directory."""
    routing = root / "routing"
    routing.mkdir(parents=True)
    (routing / "programs.yaml").write_text(
        _CALENDAR
        + "programs:\n"
        + "".join(_PROGRAM.format(i=i, a=400 + i % 100, b=500 + i % 100) for i in range(programs))
    )
    per_file = numbers // files
    for f in range(files):
        (routing / f"numbers-{f}.yaml").write_text(
            "numbers:\n"
            + "".join(
                f"  '0970{n:06d}':\n    program: prog-{n % programs}\n    limit: {1 + n % 30}\n"
                for n in range(f * per_file, (f + 1) * per_file)
            )
        )
    return routing
