"""Call detail records: one row per call in ``DATA_DIR/cdr.sqlite3``.

Written once, when the call ends (``switch.call.CallEnded``). Times are ISO 8601
UTC strings (sortable as text); ``legs`` and ``codecs`` are JSON arrays; the
``because`` column holds the routing trace of calls to service numbers (JSON
array, empty for other calls) and ``messages`` the messages the caller heard
(JSON array of message ids, in order).

Two readers: the export (``aiguilleur cdr DIR``: every row, oldest first) and
the call log (``aiguilleur calls DIR --line 401`` or ``--company ID``: the last
calls of a line or a company, newest first, in and out, missed ones flagged;
:func:`read_calls`, :class:`Party`, :func:`journal`).
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from switch.call import CdrRecord

if TYPE_CHECKING:
    from switch.directory import Directory

DB_FILE = "cdr.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cdr (
    id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    answered_at TEXT,
    ended_at TEXT NOT NULL,
    caller TEXT NOT NULL,
    called TEXT NOT NULL,
    outcome TEXT NOT NULL,
    cause TEXT NOT NULL,
    duration REAL NOT NULL,
    legs TEXT NOT NULL,
    codecs TEXT NOT NULL,
    because TEXT NOT NULL DEFAULT '[]',
    messages TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS cdr_started ON cdr (started_at);
"""
_COLUMNS = (
    "id, call_id, started_at, answered_at, ended_at, caller, called, outcome, cause, "
    "duration, legs, codecs, because, messages"
)
_JSON_COLUMNS = ("legs", "codecs", "because", "messages")
_INSERT = f"INSERT OR REPLACE INTO cdr ({_COLUMNS}) VALUES ({', '.join('?' * 14)})"
# Columns added after the first release: (name, definition) for ALTER TABLE.
_ADDED = (("messages", "TEXT NOT NULL DEFAULT '[]'"),)


def cdr_db_path(data_dir: Path) -> Path:
    return data_dir / DB_FILE


class CdrStore:
    """The CDR table (SQLite, WAL). One insert per call: cheap enough inline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        present = {row[1] for row in self._db.execute("PRAGMA table_info(cdr)")}
        for name, definition in _ADDED:
            if name not in present:
                self._db.execute(f"ALTER TABLE cdr ADD COLUMN {name} {definition}")

    def write(self, record: CdrRecord) -> None:
        legs = [
            {
                "role": leg.role,
                "call_id": leg.call_id,
                "target": leg.target,
                "status": leg.final_status,
            }
            for leg in record.legs
        ]
        self._db.execute(
            _INSERT,
            (
                record.id,
                record.call_id,
                record.started_at.isoformat(),
                None if record.answered_at is None else record.answered_at.isoformat(),
                record.ended_at.isoformat(),
                record.caller,
                record.called,
                str(record.outcome),
                record.cause,
                round(record.duration, 3),
                json.dumps(legs),
                json.dumps(list(record.codecs)),
                json.dumps(list(record.because), ensure_ascii=False),
                json.dumps(list(record.messages)),
            ),
        )

    def rows(self) -> list[dict[str, Any]]:
        """Every row, oldest first (tests, exports)."""
        return _select(self._db, None)

    def close(self) -> None:
        self._db.close()


# -- export: ``aiguilleur cdr DIR --since ISO --format csv|jsonl`` ---------------------

EXPORT_COLUMNS = tuple(c.strip() for c in _COLUMNS.split(","))


def read_rows(path: Path, since: datetime | None = None) -> list[dict[str, Any]]:
    """The rows of the CDR database ``path`` started at or after ``since``, oldest first.

    Opened read-only: the export runs next to a live switch (WAL readers do not block).
    """
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _select(db, since)
    finally:
        db.close()


def _select(db: sqlite3.Connection, since: datetime | None) -> list[dict[str, Any]]:
    """Rows started at or after ``since`` (all when None), oldest first, JSON decoded."""
    query = f"SELECT {_COLUMNS} FROM cdr"
    params: tuple[str, ...] = ()
    if since is not None:
        query += " WHERE started_at >= ?"
        params = (since.astimezone(UTC).isoformat(),)
    return _rows(db.execute(query + " ORDER BY started_at, id", params))


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    """The cursor's rows as dicts, the JSON columns decoded."""
    names = [d[0] for d in cursor.description]
    out = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        for key in _JSON_COLUMNS:
            row[key] = json.loads(row[key])
        out.append(row)
    return out


def write_export(rows: list[dict[str, Any]], fmt: str, out: IO[str]) -> None:
    """``jsonl``: one JSON object per line; ``csv``: a header, the JSON columns as JSON."""
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(
            json.dumps(row[c], ensure_ascii=False) if c in _JSON_COLUMNS else row[c]
            for c in EXPORT_COLUMNS
        )


# -- call log: ``aiguilleur calls DIR --line 401 | --company ID`` ----------------------


@dataclass(frozen=True, slots=True)
class Party:
    """Whose calls a journal lists: one line, or every line of a company.

    ``keys``: the lines (``extension@domain``, the CDR ``caller`` of their calls
    and the label of the B legs that rang them); ``numbers``: public numbers that
    reach them (direct lines, the company's main and company numbers);
    ``extensions``: their internal numbers, dialled from ``domain``.
    """

    keys: frozenset[str]
    numbers: frozenset[str] = frozenset()
    extensions: frozenset[str] = frozenset()
    domain: str = ""


def _in(column: str, values: frozenset[str]) -> tuple[str, list[str]]:
    marks = ", ".join("?" * len(values))
    return f"{column} IN ({marks})", sorted(values)


def read_calls(path: Path, party: Party, limit: int = 20) -> list[dict[str, Any]]:
    """The last ``limit`` calls of ``party`` (in and out), newest first.

    A call is the party's when one of its lines placed it (``caller``), when it
    dialled one of its numbers, when one of its lines was dialled from its own
    domain, or when a B leg rang one of its lines (``legs[].target``). Opened
    read-only, like the export.
    """
    clauses: list[str] = []
    params: list[str] = []
    for clause, values in (
        _in("caller", party.keys),
        _in("called", party.numbers),
        _in("j.value ->> '$.target'", party.keys),
    ):
        if values:
            clauses.append(clause)
            params += values
    if party.extensions and party.domain:
        clause, values = _in("called", party.extensions)
        clauses.append(f"({clause} AND caller LIKE ?)")
        params += [*values, f"%@{party.domain}"]
    if not clauses:
        return []
    legs = "EXISTS (SELECT 1 FROM json_each(cdr.legs) AS j WHERE "
    where = " OR ".join(f"{legs}{c})" if c.startswith("j.value") else c for c in clauses)
    query = f"SELECT {_COLUMNS} FROM cdr WHERE {where} ORDER BY started_at DESC, id DESC LIMIT ?"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _rows(db.execute(query, (*params, max(0, limit))))
    finally:
        db.close()


JOURNAL_COLUMNS = (
    "started_at",
    "direction",
    "missed",
    "line",
    "caller",
    "called",
    "outcome",
    "cause",
    "duration",
    "id",
)


def journal(row: dict[str, Any], party: Party) -> dict[str, Any]:
    """One call of the log: ``direction`` ``out`` (one of the party's lines placed it)
    or ``in``; ``missed``: an incoming call none of the party's lines answered;
    ``line``: the party's line concerned (the caller's, else the one that answered
    or rang)."""
    b_legs = [leg for leg in row["legs"] if leg.get("role") == "b"]
    ours = [leg for leg in b_legs if leg.get("target") in party.keys]
    answered = [leg for leg in ours if leg.get("status") == 200]
    out = row["caller"] in party.keys
    if out:
        line = row["caller"]
    elif answered or ours:
        line = (answered or ours)[0]["target"]
    else:
        line = ""
    missed = not out and not answered and not (row["outcome"] == "answered" and not ours)
    return {
        "started_at": row["started_at"],
        "direction": "out" if out else "in",
        "missed": missed,
        "line": line,
        "caller": row["caller"],
        "called": row["called"],
        "outcome": row["outcome"],
        "cause": row["cause"],
        "duration": row["duration"],
        "id": row["id"],
    }


def write_journal(entries: list[dict[str, Any]], fmt: str, out: IO[str]) -> None:
    """``text``: one aligned line per call; ``csv``; ``jsonl``."""
    if fmt == "jsonl":
        for entry in entries:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(JOURNAL_COLUMNS)
        for entry in entries:
            writer.writerow(entry[c] for c in JOURNAL_COLUMNS)
        return
    for e in entries:
        at = datetime.fromisoformat(e["started_at"]).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        flag = "MISSED" if e["missed"] else ""
        out.write(
            f"{at}  {e['direction']:<3}  {flag:<6}  {e['caller']} -> {e['called']}  "
            f"{e['outcome']} ({e['cause']})  {e['duration']:.0f} s\n"
        )


def party_for(directory: Directory, line: str | None, company_id: str | None) -> Party | str:
    """The party of ``--line`` (``401`` or ``401@pbx.test``) or ``--company``; a str
    says why there is none."""
    if company_id is not None:
        company = directory.company(company_id)
        if company is None:
            return f"unknown company {company_id!r}"
        numbers = {company.main_number, company.company_number}
        numbers |= {ln.direct_number for ln in company.lines if ln.direct_number}
        numbers |= {g.direct_number for g in company.groups if g.direct_number}
        return Party(
            keys=frozenset(ln.key for ln in company.lines),
            numbers=frozenset(numbers),
            extensions=frozenset(ln.extension for ln in company.lines),
            domain=company.domain,
        )
    assert line is not None
    extension, _, domain = line.partition("@")
    found = [
        (c, ln)
        for c, ln in directory
        if ln.extension == extension and (not domain or c.domain == domain)
    ]
    if not found:
        return f"unknown line {line!r}"
    if len(found) > 1:
        return f"line {line!r} is in several companies: write it as {extension}@DOMAIN"
    company, found_line = found[0]
    return Party(
        keys=frozenset({found_line.key}),
        numbers=frozenset({found_line.direct_number} if found_line.direct_number else ()),
        extensions=frozenset({found_line.extension}),
        domain=company.domain,
    )


def calls_command(args: argparse.Namespace) -> int:
    """``aiguilleur calls DIR (--line EXT | --company ID) [--limit N] [--format F]``."""
    from routing.source import ConfigErrors
    from switch.directory import load_directory

    path = cdr_db_path(Path(args.data_dir))
    if not path.is_file():
        print(f"{path}: no CDR database", file=sys.stderr)
        return 1
    try:
        directory = load_directory(Path(args.config))
    except ConfigErrors as exc:
        print(exc, file=sys.stderr)
        return 2
    party = party_for(directory, args.line, args.company)
    if isinstance(party, str):
        print(party, file=sys.stderr)
        return 2
    rows = read_calls(path, party, args.limit)
    write_journal([journal(row, party) for row in rows], args.format, sys.stdout)
    return 0


def parse_since(value: str) -> datetime:
    """An ISO 8601 date or time; naive values are UTC."""
    at = datetime.fromisoformat(value)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def cdr_command(args: argparse.Namespace) -> int:
    """``aiguilleur cdr DIR [--since ISO] [--format csv|jsonl]``: DIR is the data directory."""
    path = cdr_db_path(Path(args.data_dir))
    if not path.is_file():
        print(f"{path}: no CDR database", file=sys.stderr)
        return 1
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError:
        print(f"--since: not an ISO 8601 date or time: {args.since!r}", file=sys.stderr)
        return 2
    write_export(read_rows(path, since), args.format, sys.stdout)
    return 0


__all__ = [
    "DB_FILE",
    "EXPORT_COLUMNS",
    "JOURNAL_COLUMNS",
    "CdrStore",
    "Party",
    "calls_command",
    "cdr_command",
    "cdr_db_path",
    "journal",
    "party_for",
    "read_calls",
    "read_rows",
    "write_export",
    "write_journal",
]
