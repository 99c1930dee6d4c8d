"""Location stores (memory, SQLite), the restart acceptance, and ``aiguilleur registrations``."""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from switch.location import (
    DB_FILE,
    SCHEMA_VERSION,
    AsyncStore,
    LocationStore,
    LocationStoreError,
    MemoryLocationStore,
    SqliteLocationStore,
    location_db_path,
    read_bindings,
)
from switch.registrar import Binding, Registrar, live_bindings
from switch.registrations import current, registrations_command, render_text
from switch.sip.endpoint import Endpoint
from switch.sip.message import Request
from switch.sip.parser import parse_message

T0 = 1_767_225_600.0
AOR = "sip:401@pbx.test"
UDP = Endpoint("UDP", "192.0.2.10", 5062)
TCP = Endpoint("TCP", "192.0.2.11", 40312, conn_id=7)


def binding(
    contact: str = "sip:401@192.0.2.10:5062",
    *,
    aor: str = AOR,
    expires_at: float = T0 + 600,
    source: Endpoint = UDP,
    **kwargs: object,
) -> Binding:
    fields: dict[str, object] = {
        "aor": aor,
        "contact": contact,
        "expires_at": expires_at,
        "call_id": "c1",
        "cseq": 1,
        "source": source,
        "received_at": T0,
        **kwargs,
    }
    return Binding(**fields)  # type: ignore[arg-type]


StoreFactory = Callable[[], LocationStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens a store; for SQLite every call reopens the same file (a restart)."""
    opened: list[LocationStore] = []

    def factory() -> LocationStore:
        store: LocationStore
        if request.param == "memory":
            store = MemoryLocationStore()
        else:
            store = SqliteLocationStore(tmp_path / DB_FILE)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


# -- the interface, for every store ----------------------------------------------------


def test_apply_then_lookup(make_store: StoreFactory) -> None:
    store = make_store()
    a, b = binding("sip:401@192.0.2.10:5062"), binding("sip:401@192.0.2.20:5062")
    other = binding("sip:402@192.0.2.30:5062", aor="sip:402@pbx.test")
    store.apply([a, b, other])
    assert store.lookup(AOR) == [a, b]
    assert store.lookup("sip:402@pbx.test") == [other]
    assert store.lookup("sip:403@pbx.test") == []
    assert sorted(store.all(), key=lambda x: x.contact) == [a, b, other]


def test_upsert_replaces_the_binding_with_the_same_key(make_store: StoreFactory) -> None:
    store = make_store()
    store.apply([binding("sip:401@192.0.2.10:5062;transport=udp", cseq=1)])
    # Same contact URI up to case: same key, so the same binding.
    refreshed = binding("SIP:401@192.0.2.10:5062;Transport=UDP", cseq=2, expires_at=T0 + 900)
    store.apply([refreshed])
    assert store.lookup(AOR) == [refreshed]


def test_removals_then_upserts(make_store: StoreFactory) -> None:
    store = make_store()
    a, b = binding("sip:401@192.0.2.10:5062"), binding("sip:401@192.0.2.20:5062")
    store.apply([a, b])
    new_a = replace(a, cseq=5)
    store.apply(upserts=[new_a], removals=[a, b])  # a removed and re-added: the upsert wins
    assert store.lookup(AOR) == [new_a]
    store.apply(removals=[binding("sip:401@192.0.2.99:5062")])  # absent: nothing happens
    assert store.lookup(AOR) == [new_a]


def test_purge_expired_and_next_expiry(make_store: StoreFactory) -> None:
    store = make_store()
    soon = binding("sip:401@192.0.2.10:5062", expires_at=T0 + 60)
    later = binding("sip:401@192.0.2.20:5062", expires_at=T0 + 600)
    store.apply([soon, later])
    assert store.next_expiry() == T0 + 60
    assert store.purge_expired(T0 + 59) == []
    assert store.purge_expired(T0 + 60) == [soon]
    assert store.lookup(AOR) == [later]
    assert store.next_expiry() == T0 + 600
    assert store.purge_expired(T0 + 10_000) == [later]
    assert store.next_expiry() is None
    assert store.all() == []


def test_a_refresh_moves_the_expiry(make_store: StoreFactory) -> None:
    store = make_store()
    first = binding(expires_at=T0 + 60)
    store.apply([first])
    refreshed = replace(first, expires_at=T0 + 660, cseq=2)
    store.apply([refreshed])
    assert store.next_expiry() == T0 + 660
    assert store.purge_expired(T0 + 61) == []  # the old deadline is stale
    # Removed, then bound again with the first deadline: purged once.
    store.apply(removals=[refreshed])
    store.apply([first])
    assert store.purge_expired(T0 + 61) == [first]


def test_mark_unreachable_by_connection(make_store: StoreFactory) -> None:
    store = make_store()
    over_tcp = binding("sip:401@192.0.2.11:40312;transport=tcp", source=TCP)
    over_udp = binding("sip:401@192.0.2.10:5062", source=UDP)
    store.apply([over_tcp, over_udp])
    changed = store.mark_unreachable(7)
    assert changed == [replace(over_tcp, reachable=False)]
    assert store.mark_unreachable(7) == []  # already unreachable
    assert store.mark_unreachable(8) == []
    assert {b.contact: b.reachable for b in store.lookup(AOR)} == {
        over_tcp.contact: False,
        over_udp.contact: True,
    }
    # A new REGISTER over a new connection makes it reachable again.
    back = replace(over_tcp, source=replace(TCP, conn_id=9), reachable=True)
    store.apply([back])
    assert store.mark_unreachable(7) == []
    assert store.mark_unreachable(9) == [replace(back, reachable=False)]


def test_mark_unreachable_by_address(make_store: StoreFactory) -> None:
    store = make_store()
    store.apply([binding(source=UDP), binding("sip:401@192.0.2.20:5062", source=TCP)])
    changed = store.mark_unreachable(Endpoint("UDP", "192.0.2.10", 5062))
    assert [b.source for b in changed] == [UDP]


async def test_async_adapter() -> None:
    store = AsyncStore(MemoryLocationStore())
    b = binding(expires_at=T0 + 5)
    await store.apply([b])
    assert await store.lookup(AOR) == [b]
    assert await store.all() == [b]
    assert await store.next_expiry() == T0 + 5
    assert await store.mark_unreachable(UDP) == [replace(b, reachable=False)]
    assert await store.purge_expired(T0 + 5) == [replace(b, reachable=False)]
    await store.close()


# -- SQLite: persistence, atomicity, schema --------------------------------------------


def test_bindings_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    store = SqliteLocationStore(path)
    full = binding(
        "sip:401@192.0.2.10:5062;ob",
        q=0.5,
        instance_id="urn:uuid:00000000-0000-1000-8000-0004f2abcdef",
        reg_id=1,
        path=("<sip:edge1;lr>", "<sip:edge2;lr>"),
        user_agent="VVX/6.4",
    )
    store.apply([full])
    store.close()
    reopened = SqliteLocationStore(path)
    assert reopened.lookup(AOR) == [full]
    assert reopened.lookup(AOR)[0].key == full.key
    reopened.close()


def test_connections_do_not_survive_a_restart(tmp_path: Path) -> None:
    # Connection ids restart from 1 in every process: an old one could name
    # another phone's connection.
    path = tmp_path / DB_FILE
    store = SqliteLocationStore(path)
    over_tcp = binding("sip:401@192.0.2.11:40312;transport=tcp", source=TCP)
    over_udp = binding("sip:401@192.0.2.10:5062")
    store.apply([over_tcp, over_udp])
    store.close()
    reopened = SqliteLocationStore(path)
    got = {b.contact: b for b in reopened.lookup(AOR)}
    assert got[over_tcp.contact].source == replace(TCP, conn_id=None)
    assert got[over_tcp.contact].reachable is False
    assert got[over_udp.contact] == over_udp
    assert reopened.mark_unreachable(7) == []
    reopened.close()


def test_expired_bindings_are_gone_after_purge_and_restart(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    store = SqliteLocationStore(path)
    store.apply([binding(expires_at=T0 + 60)])
    assert len(store.purge_expired(T0 + 60)) == 1
    store.close()
    reopened = SqliteLocationStore(path)
    assert reopened.all() == []
    reopened.close()


def test_a_failed_commit_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    store = SqliteLocationStore(path)
    kept = binding("sip:401@192.0.2.10:5062")
    store.apply([kept])
    with closing(sqlite3.connect(path)) as db, db:  # a commit that fails half-way through
        db.execute(
            "CREATE TRIGGER boom BEFORE INSERT ON bindings WHEN NEW.contact LIKE '%boom%' "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
    with pytest.raises(LocationStoreError, match="disk on fire"):
        store.apply(
            upserts=[binding("sip:401@192.0.2.20:5062"), binding("sip:boom@192.0.2.30")],
            removals=[kept],
        )
    assert store.lookup(AOR) == [kept]
    assert read_bindings(path) == [kept]
    store.close()


def test_file_layout(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    SqliteLocationStore(path).close()
    with closing(sqlite3.connect(path)) as db, db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        indexes = {row[1] for row in db.execute("PRAGMA index_list(bindings)")}
    assert "bindings_expires_at" in indexes


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    SqliteLocationStore(path).close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(LocationStoreError, match="schema version 2"):
        SqliteLocationStore(path)
    with pytest.raises(LocationStoreError, match="schema version 2"):
        read_bindings(path)


def test_bad_synchronous_is_refused_before_the_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    with pytest.raises(LocationStoreError, match="synchronous"):
        SqliteLocationStore(path, synchronous="ALWAYS")  # type: ignore[arg-type]
    assert not path.exists()


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LocationStoreError):
        SqliteLocationStore(path)


def test_keys_are_recomputed_on_open(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    store = SqliteLocationStore(path)
    b = binding()
    store.apply([b])
    store.close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE bindings SET key = 'written-by-an-older-build'")
    reopened = SqliteLocationStore(path)
    reopened.apply(removals=[b])
    reopened.close()
    assert read_bindings(path) == []


def test_read_bindings_while_the_switch_writes(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    assert read_bindings(path) == []  # no file yet, and none created
    assert not path.exists()
    store = SqliteLocationStore(path)
    b = binding()
    store.apply([b])
    assert read_bindings(path) == [b]
    store.apply([binding("sip:401@192.0.2.20:5062")])
    assert len(read_bindings(path)) == 2
    store.close()
    assert len(read_bindings(path)) == 2


# -- acceptance: restart between registration and lookup -------------------------------


def _register(contact: str, expires: int, cseq: int = 1) -> Request:
    text = (
        "REGISTER sip:pbx.test SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 192.0.2.11:40312;branch=z9hG4bK-{cseq}\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:401@pbx.test>\r\n"
        "From: <sip:401@pbx.test>;tag=1\r\n"
        "Call-ID: restart@192.0.2.11\r\n"
        f"CSeq: {cseq} REGISTER\r\n"
        f"Contact: <{contact}>;expires={expires}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def test_restart_between_registration_and_lookup(tmp_path: Path) -> None:
    registrar = Registrar()
    path = tmp_path / DB_FILE
    contact = "sip:401@192.0.2.11:40312;transport=tcp"

    store = SqliteLocationStore(path)
    outcome = registrar.process(
        _register(contact, 300), aor=AOR, current=store.lookup(AOR), source=TCP, at=T0
    )
    store.apply(outcome.upserts, outcome.removals)  # before the 200 goes out
    assert outcome.response.status == 200
    store.close()  # the switch stops

    store = SqliteLocationStore(path)  # and starts again
    (found,) = live_bindings(store.lookup(AOR), T0 + 10)
    assert found.contact == contact
    # The phone refreshes over its new connection: the 200 lists one binding.
    outcome = registrar.process(
        _register(contact, 300, cseq=2),
        aor=AOR,
        current=store.lookup(AOR),
        source=replace(TCP, conn_id=1),
        at=T0 + 10,
    )
    store.apply(outcome.upserts, outcome.removals)
    assert len(outcome.response.headers.get_all("Contact")) == 1
    assert store.lookup(AOR)[0].reachable
    # After its expiry it is gone.
    deadline = store.next_expiry()
    assert deadline == T0 + 310
    assert len(store.purge_expired(deadline)) == 1
    store.close()
    assert read_bindings(path) == []


# -- aiguilleur registrations ----------------------------------------------------------


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    (config / "switch.yaml").write_text("sip:\n  domain: pbx.test\ndata_dir: ../data\n")
    (tmp_path / "data").mkdir()
    return config


def _args(config: Path, **kwargs: object) -> argparse.Namespace:
    values: dict[str, object] = {"config": str(config), "json": False, "data_dir": None}
    values["aor"] = None
    values.update(kwargs)
    return argparse.Namespace(**values)


def test_registrations_lists_current_bindings_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    now = time.time()
    store = SqliteLocationStore(location_db_path(tmp_path / "data"))
    live = binding(expires_at=now + 600, user_agent="VVX/6.4", source=TCP)
    other = binding("sip:402@192.0.2.12:5062", aor="sip:402@pbx.test", expires_at=now + 60)
    gone = binding("sip:401@192.0.2.99:5062", expires_at=now - 1)
    store.apply([live, other, gone])

    assert registrations_command(_args(config, json=True)) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["aor"], r["contact"]) for r in rows] == [
        (AOR, live.contact),
        ("sip:402@pbx.test", other.contact),
    ]
    first = rows[0]
    assert 590 <= first["expires_in"] <= 600
    assert first["source"] == {
        "transport": "TCP",
        "host": "192.0.2.11",
        "port": 40312,
        "conn_id": 7,
    }
    assert (first["user_agent"], first["reachable"]) == ("VVX/6.4", True)

    assert registrations_command(_args(config, aor="sip:402@pbx.test")) == 0
    text = capsys.readouterr().out
    assert "sip:402@192.0.2.12:5062" in text
    assert "sip:401@" not in text
    assert text.splitlines()[0].split() == [
        "AOR",
        "CONTACT",
        "SOURCE",
        "EXPIRES",
        "STATE",
        "USER-AGENT",
    ]
    assert text.endswith("1 registration\n")
    store.close()


def test_registrations_with_no_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert registrations_command(_args(config)) == 0
    assert capsys.readouterr().out == "no current registrations\n"
    assert not location_db_path(tmp_path / "data").exists()


def test_registrations_data_dir_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = SqliteLocationStore(location_db_path(elsewhere))
    store.apply([binding(expires_at=time.time() + 100)])
    store.close()
    assert registrations_command(_args(config, json=True, data_dir=str(elsewhere))) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1


def test_registrations_reports_config_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert registrations_command(_args(tmp_path / "missing")) == 1
    assert "file not found" in capsys.readouterr().err


def test_render_text_shows_unreachable_and_missing_user_agent() -> None:
    b = binding(reachable=False, expires_at=T0 + 42)
    text = render_text(current([b], T0), T0)
    assert "unreachable" in text
    assert "42s" in text
    assert text.splitlines()[1].rstrip().endswith("-")
