"""Bans kept across restarts: the SQLite store (wall-clock times) and
``Admission.restore`` (a kept ban back in a fresh ban list)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from switch.admission import Admission, Ban
from switch.bans import BanStore, BanStoreError, bans_db_path

T = 1_800_000_000.0  # Unix seconds
DAY = 86_400.0


def test_bans_in_force_come_back_and_expired_ones_go(tmp_path: Path) -> None:
    path = bans_db_path(tmp_path)
    store = BanStore(path)
    store.add(Ban("192.0.2.7", "10 failures", "source", T, T + DAY), T)
    store.add(Ban("2001:db8:1::/64", "10 failures against 401", "line", T + 5, T + 65), T + 5)
    store.close()

    store = BanStore(path)  # a restart
    assert store.load(T + 60) == [
        Ban("192.0.2.7", "10 failures", "source", T, T + DAY),
        Ban("2001:db8:1::/64", "10 failures against 401", "line", T + 5, T + 65),
    ]
    assert store.load(T + 65) == [Ban("192.0.2.7", "10 failures", "source", T, T + DAY)]
    store.close()
    with sqlite3.connect(path) as db:  # the expired row was deleted, not only skipped
        assert db.execute("SELECT address FROM bans").fetchall() == [("192.0.2.7",)]


def test_a_new_ban_of_an_address_replaces_its_row_and_sweeps_expired_ones(
    tmp_path: Path,
) -> None:
    store = BanStore(bans_db_path(tmp_path))
    store.add(Ban("192.0.2.7", "first", "source", T, T + 60), T)
    store.add(Ban("192.0.2.8", "other", "source", T, T + 60), T)
    store.add(Ban("192.0.2.7", "again", "line", T + 100, T + 160), T + 100)
    assert store.load(T + 100) == [Ban("192.0.2.7", "again", "line", T + 100, T + 160)]
    store.close()


def test_a_row_of_an_unknown_kind_is_skipped(tmp_path: Path) -> None:
    path = bans_db_path(tmp_path)
    BanStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO bans VALUES ('192.0.2.9', 'future', 'prefix', ?, ?)", (T, T + 60))
    store = BanStore(path)
    assert store.load(T) == []
    store.close()


def test_a_file_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = bans_db_path(tmp_path)
    BanStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (2)")
    with pytest.raises(BanStoreError, match="schema version 2; this build reads schema version 1"):
        BanStore(path)


def test_a_restored_ban_refuses_its_address_until_it_ends() -> None:
    admission = Admission(max_failures=3)
    assert admission.restore(Ban("192.0.2.7", "guessing", "source", 10.0, 70.0), 20.0)
    assert admission.check("192.0.2.7", 20.0) == Ban("192.0.2.7", "guessing", "source", 10.0, 70.0)
    assert admission.check("192.0.2.7", 70.0) is None
    # Put back, not made again: not new, not counted.
    assert admission.new_bans() == []
    assert admission.bans_total == {"source": 0, "line": 0}


def test_an_ipv6_prefix_ban_is_restored_for_the_whole_prefix() -> None:
    admission = Admission()
    assert admission.restore(Ban("2001:db8:1::/64", "guessing", "line", 0.0, 60.0), 1.0)
    assert admission.check("2001:db8:1::42", 1.0) is not None


@pytest.mark.parametrize(
    ("ban", "why"),
    [
        (Ban("192.0.2.7", "old", "source", 0.0, 20.0), "over"),
        (Ban("198.51.100.4", "office NAT", "source", 10.0, 70.0), "allow-listed since"),
        (Ban("not an address", "?", "source", 10.0, 70.0), "not an address"),
    ],
)
def test_a_ban_over_or_now_allowed_is_not_restored(ban: Ban, why: str) -> None:
    admission = Admission(allow=["198.51.100.0/24"])
    assert not admission.restore(ban, 20.0), why
    assert admission.bans(20.0) == []


def test_a_ban_from_the_future_starts_now() -> None:
    """The wall clock went back across the restart: the ban still holds until its end."""
    admission = Admission()
    assert admission.restore(Ban("192.0.2.7", "guessing", "source", 50.0, 90.0), 20.0)
    assert admission.bans(20.0) == [Ban("192.0.2.7", "guessing", "source", 20.0, 90.0)]
