"""``aiguilleur explain`` and ``aiguilleur routing-schema``: the shell around routing/.

``explain`` is the only place that may read the clock for routing: without
``--at`` the call arrives *now*. A naive ``--at`` is read in the number's time
zone. Exit status: 0 when the explanation was printed, 1 on configuration or
usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from routing.source import ConfigErrors


def explain_command(args: argparse.Namespace) -> int:
    from routing.engine import RoutingContext
    from routing.explain import explain, parse_outcomes, render_json, render_text
    from routing.loader import load_library

    config_dir = Path(args.config)
    try:
        library = load_library(config_dir / "routing")
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s) in {config_dir}", file=sys.stderr)
        return 1
    entry = library.find_number(args.to)
    if entry is None:
        print(f"{args.to}: not a service number of {config_dir}", file=sys.stderr)
        return 1
    zone = ZoneInfo(entry.timezone)
    if args.at is None:
        at = datetime.now(zone)
    else:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError:
            print(f"--at {args.at!r}: not an ISO-8601 date and time", file=sys.stderr)
            return 1
        if at.tzinfo is None:
            at = at.replace(tzinfo=zone)
    try:
        outcomes = parse_outcomes(args.outcomes or "")
    except ValueError as exc:
        print(f"--outcomes: {exc}", file=sys.stderr)
        return 1
    ctx = RoutingContext(called=entry.key, at=at, caller=args.from_)
    result = explain(library, ctx, outcomes)
    sys.stdout.write(render_json(result) if args.json else render_text(result))
    return 0


def schema_text() -> str:
    from routing.program import json_schema

    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def schema_command(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
