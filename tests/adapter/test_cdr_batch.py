"""CDR rows are committed in batches (switch.cdr.CdrStore): by count, by timer, at close."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from switch.call import CdrRecord, LegRecord, Outcome
from switch.cdr import CdrStore


def record(n: int) -> CdrRecord:
    at = datetime(2026, 1, 1, 12, 0, n, tzinfo=UTC)
    return CdrRecord(
        id=f"call-{n}",
        call_id=f"cid-{n}",
        started_at=at,
        answered_at=at,
        ended_at=at,
        caller="401@pbx.test",
        called="402",
        outcome=Outcome.ANSWERED,
        cause="normal",
        legs=(LegRecord("a", f"cid-{n}", "401", 200),),
        codecs=("PCMA",),
    )


def committed(path: Path) -> list[str]:
    """The ids another connection sees (what `aiguilleur cdr` would export)."""
    with sqlite3.connect(path) as db:
        return [r[0] for r in db.execute("SELECT id FROM cdr ORDER BY started_at")]


async def test_rows_wait_until_the_batch_is_full_then_commit_together(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite3"
    store = CdrStore(path, flush_rows=3, flush_seconds=3600)
    try:
        store.write(record(1))
        store.write(record(2))
        assert committed(path) == []
        assert store.pending == 2
        store.write(record(3))
        assert committed(path) == ["call-1", "call-2", "call-3"]
        assert store.pending == 0
    finally:
        store.close()


async def test_a_lone_row_is_committed_by_the_timer(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite3"
    store = CdrStore(path, flush_rows=100, flush_seconds=0)
    try:
        store.write(record(1))
        assert committed(path) == []
        for _ in range(100):  # yields to the loop (no waiting): the timer is due at once
            if store.pending == 0:
                break
            await asyncio.sleep(0)
        assert committed(path) == ["call-1"]
    finally:
        store.close()


async def test_close_commits_the_waiting_rows(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite3"
    store = CdrStore(path, flush_rows=100, flush_seconds=3600)
    store.write(record(1))
    store.close()
    assert committed(path) == ["call-1"]


def test_without_an_event_loop_each_row_is_committed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "cdr.sqlite3"
    store = CdrStore(path, flush_rows=100, flush_seconds=3600)
    try:
        store.write(record(1))
        assert committed(path) == ["call-1"]
        assert store.rows()[0]["legs"][0]["status"] == 200
    finally:
        store.close()
