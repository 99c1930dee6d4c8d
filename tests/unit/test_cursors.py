"""GNR cursors across calls: merged per GNR, persisted across restarts."""

from __future__ import annotations

from pathlib import Path

from routing.gnr import Cursors
from switch.cursors import CursorStore, from_json, merge, to_json


def test_concurrent_sessions_on_two_gnrs_keep_both_changes() -> None:
    base = Cursors()
    one = base.with_position("shop/steps.0", 1)
    two = base.with_position("centre/steps.0", 2).answered("centre/steps.0", "402")
    current = merge(base, base, one)
    current = merge(current, base, two)
    assert dict(current.positions) == {"shop/steps.0": 1, "centre/steps.0": 2}
    assert dict(current.last_answered["centre/steps.0"]) == {"402": 1}


def test_unchanged_session_changes_nothing() -> None:
    current = Cursors().with_position("k", 3)
    assert merge(current, Cursors(), Cursors()) is current


def test_json_round_trip() -> None:
    cursors = Cursors().with_position("k", 2).answered("k", "401").answered("k", "403")
    assert from_json(to_json(cursors)) == cursors


def test_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "cursors.sqlite3"
    store = CursorStore(path)
    base = store.current
    store.update(base, base.with_position("centre/steps.0", 1))
    store.close()
    again = CursorStore(path)
    assert again.current.position("centre/steps.0") == 1
    again.close()


def test_unreadable_row_starts_over(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "cursors.sqlite3"
    CursorStore(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO cursors (name, value) VALUES ('gnr', 'not json')")
    db.commit()
    db.close()
    assert CursorStore(path).current == Cursors()
