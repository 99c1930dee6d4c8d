"""``aiguilleur registrations DIR``: list the current bindings of the location store.

Reads the data directory from ``DIR/switch.yaml`` (``--data-dir`` overrides it,
as for ``aiguilleur run``), opens ``DATA_DIR/registrations.sqlite3`` read-only
(the switch may be running) and prints the bindings not expired now, one per
line, sorted by address-of-record::

    AOR               CONTACT                 SOURCE               EXPIRES  STATE      USER-AGENT
    sip:401@pbx.test  sip:401@192.0.2.10:5062  tcp:192.0.2.10:5062  3542s    reachable  VVX/6.4

``--json`` prints a JSON array instead (one object per binding, times as epoch
seconds and ISO 8601). ``--aor`` keeps one address-of-record. Exit status: 0,
or 1 on configuration or storage errors. This command reads the wall clock:
"expires in" is counted from now.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from routing.source import ConfigErrors
from switch.location import LocationStoreError, location_db_path, read_bindings
from switch.registrar import Binding, live_bindings

_HEADINGS = ("AOR", "CONTACT", "SOURCE", "EXPIRES", "STATE", "USER-AGENT")


def current(bindings: Sequence[Binding], at: float, aor: str | None = None) -> list[Binding]:
    """The bindings live at ``at`` (of ``aor`` only, if given), in display order."""
    live = live_bindings(bindings, at)
    if aor is not None:
        live = [b for b in live if b.aor == aor]
    return sorted(live, key=lambda b: (b.aor, b.expires_at, b.contact))


def as_dict(binding: Binding, at: float) -> dict[str, Any]:
    """One binding as the JSON output shows it."""
    source = binding.source
    return {
        "aor": binding.aor,
        "contact": binding.contact,
        "expires_in": binding.expires_in(at),
        "expires_at": binding.expires_at,
        "expires_at_iso": _iso(binding.expires_at),
        "q": binding.q,
        "instance_id": binding.instance_id,
        "reg_id": binding.reg_id,
        "path": list(binding.path),
        "source": {
            "transport": source.transport,
            "host": source.host,
            "port": source.port,
            "conn_id": source.conn_id,
        },
        "reachable": binding.reachable,
        "user_agent": binding.user_agent,
        "call_id": binding.call_id,
        "cseq": binding.cseq,
        "received_at": binding.received_at,
        "received_at_iso": _iso(binding.received_at),
    }


def render_json(bindings: Sequence[Binding], at: float) -> str:
    return json.dumps([as_dict(b, at) for b in bindings], indent=2) + "\n"


def render_text(bindings: Sequence[Binding], at: float) -> str:
    if not bindings:
        return "no current registrations\n"
    rows = [_HEADINGS] + [
        (
            b.aor,
            b.contact,
            str(b.source),
            f"{b.expires_in(at)}s",
            "reachable" if b.reachable else "unreachable",
            b.user_agent or "-",
        )
        for b in bindings
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADINGS) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        + "  "
        + row[-1]
        for row in rows
    ]
    noun = "registration" if len(bindings) == 1 else "registrations"
    lines.append(f"{len(bindings)} {noun}")
    return "\n".join(lines) + "\n"


def registrations_command(args: argparse.Namespace) -> int:
    """``args``: ``config`` (DIR), ``json`` (bool), ``data_dir`` and ``aor`` (or None)."""
    from switch.settings import load_settings

    config_dir = Path(args.config)
    try:
        settings = load_settings(config_dir)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s) in {config_dir}", file=sys.stderr)
        return 1
    override = getattr(args, "data_dir", None)
    data_dir = settings.data_path(Path(override) if override else None)
    path = location_db_path(data_dir)
    try:
        bindings = read_bindings(path)
    except LocationStoreError as exc:
        print(exc, file=sys.stderr)
        return 1
    at = time.time()  # the shell's clock: "expires in" is counted from now
    shown = current(bindings, at, getattr(args, "aor", None))
    sys.stdout.write(render_json(shown, at) if args.json else render_text(shown, at))
    return 0


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
