"""Line settings: the model's JSON form, and the stores (memory, SQLite) that keep it."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.linesettings import (
    DayNight,
    DayNightOverride,
    ForwardCondition,
    ForwardedIdentity,
    Forwarding,
    GroupSettings,
    LineSettings,
    PreAnswer,
    SettingsError,
    VoicePresentation,
    day_night_mode,
    is_internal_number,
)
from routing.starcodes import Reply, SettingCommand, StarContext, apply, parse
from switch.line_settings import (
    DB_FILE,
    AsyncSettingsStore,
    LineSettingsStore,
    LineSettingsStoreError,
    MemoryLineSettingsStore,
    SqliteLineSettingsStore,
    group_key,
    line_settings_db_path,
)

KEY = "401@pbx.test"
PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

FULL = LineSettings(
    forwarding=Forwarding(
        unconditional="888",
        busy="402",
        no_answer="+33612345678",
        unreachable="3639",
        ring_s=35,
        last_destination="+33612345678",
    ),
    clir=True,
    forward_protection=True,
    voice_presentation=VoicePresentation.ALL,
    pre_answer=PreAnswer(True, "pre-answer/401.wav"),
    left_groups=frozenset({"500", "999"}),
    forwarded_identity=ForwardedIdentity.FORWARDER,
)


# -- the model ---------------------------------------------------------------------------

destinations = st.one_of(
    st.none(), st.from_regex(r"\+?[0-9]{2,20}", fullmatch=True).filter(lambda d: d != "888")
)


@st.composite
def line_settings(draw: st.DrawFn) -> LineSettings:
    return LineSettings(
        forwarding=Forwarding(
            unconditional=draw(st.one_of(destinations, st.just("888"))),
            busy=draw(destinations),
            no_answer=draw(destinations),
            unreachable=draw(destinations),
            ring_s=draw(st.integers(5, 60)),
            last_destination=draw(destinations),
        ),
        clir=draw(st.booleans()),
        forward_protection=draw(st.booleans()),
        voice_presentation=draw(st.sampled_from(VoicePresentation)),
        pre_answer=PreAnswer(draw(st.booleans()), draw(st.one_of(st.none(), st.text()))),
        left_groups=frozenset(draw(st.lists(st.from_regex(r"[1-9][0-9]{2}", fullmatch=True)))),
        forwarded_identity=draw(st.sampled_from(ForwardedIdentity)),
    )


@given(line_settings())
def test_json_round_trip(settings: LineSettings) -> None:
    data = settings.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-able
    assert LineSettings.from_dict(json.loads(json.dumps(data))) == settings


def test_stored_form() -> None:
    assert FULL.to_dict() == {
        "v": 1,
        "forwarding": {
            "unconditional": "888",
            "busy": "402",
            "no_answer": "+33612345678",
            "unreachable": "3639",
            "ring_s": 35,
            "last_destination": "+33612345678",
        },
        "clir": True,
        "forward_protection": True,
        "voice_presentation": 5,
        "pre_answer": {"active": True, "message": "pre-answer/401.wav"},
        "left_groups": ["500", "999"],
        "forwarded_identity": "forwarder",
    }


def test_absent_keys_take_their_defaults_and_unknown_keys_are_ignored() -> None:
    assert LineSettings.from_dict({}) == LineSettings()
    assert LineSettings.from_dict({"clir": True, "dnd": True, "forwarding": {"x": 1}}) == (
        LineSettings(clir=True)
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "settings: expected an object, got list"),
        ({"v": 2}, "settings.v: version 2, this build reads 1"),
        ({"clir": "yes"}, "settings.clir: expected true or false, got 'yes'"),
        ({"forwarding": {"ring_s": True}}, "settings.forwarding.ring_s: expected an integer"),
        ({"forwarding": {"ring_s": 4}}, "ring_s: 4 not in 5-60"),
        ({"forwarding": {"busy": 402}}, "settings.forwarding.busy: expected a string or null"),
        ({"forwarding": {"busy": "4x2"}}, "busy: not a destination: '4x2'"),
        ({"forwarding": {"busy": "888"}}, "busy: voicemail is the default, store None"),
        ({"forwarding": []}, "settings.forwarding: expected an object"),
        ({"voice_presentation": 6}, "voice_presentation: 6 not in 0-5"),
        ({"forwarded_identity": "me"}, "forwarded_identity: 'me'"),
        ({"left_groups": "500"}, "settings.left_groups: expected a list"),
        ({"left_groups": [500]}, "settings.left_groups: expected strings"),
        ({"left_groups": ["50"]}, "left_groups: not a group number: '50'"),
    ],
)
def test_bad_stored_settings(data: object, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        LineSettings.from_dict(data)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_forwarding_accessors() -> None:
    fw = Forwarding(busy="402")
    assert fw.destination(ForwardCondition.BUSY) == "402"
    assert fw.is_set(ForwardCondition.BUSY)
    assert not fw.is_set(ForwardCondition.NO_ANSWER)
    assert fw.with_destination(ForwardCondition.NO_ANSWER, "888").no_answer is None
    assert fw.with_destination(ForwardCondition.UNCONDITIONAL, "888").unconditional == "888"


@pytest.mark.parametrize(
    ("dest", "internal"),
    [("401", True), ("999", True), ("499", True), ("112", False), ("3639", False), ("40", False)],
)
def test_internal_numbers_are_three_digits_but_not_emergency_numbers(
    dest: str, internal: bool
) -> None:
    assert is_internal_number(dest) is internal


def test_hunt_group_membership() -> None:
    declared = frozenset({"999", "500"})
    settings = LineSettings(left_groups=frozenset({"500"}))
    assert settings.in_group("999", declared)
    assert not settings.in_group("500", declared)  # left with *30*500
    assert not settings.in_group("501", declared)  # never declared: *31 cannot add it
    assert settings.active_groups(declared) == {"999"}


def test_group_settings_round_trip() -> None:
    override = GroupSettings(
        DayNightOverride(DayNight.NIGHT, datetime(2026, 3, 2, 8, tzinfo=PARIS))
    )
    assert GroupSettings.from_dict(override.to_dict()) == override
    assert GroupSettings.from_dict(GroupSettings().to_dict()) == GroupSettings()
    forever = GroupSettings(DayNightOverride(DayNight.DAY))
    assert GroupSettings.from_dict(json.loads(json.dumps(forever.to_dict()))) == forever
    with pytest.raises(SettingsError, match="mode"):
        GroupSettings.from_dict({"day_night": {"mode": "evening"}})
    with pytest.raises(SettingsError, match="until"):
        GroupSettings.from_dict({"day_night": {"mode": "day", "until": "2026-03-02T08:00"}})


def test_day_night_override_until_the_schedule_takes_over() -> None:
    until = datetime(2026, 3, 2, 8, tzinfo=PARIS)
    group = GroupSettings(DayNightOverride(DayNight.NIGHT, until))
    before = until - timedelta(minutes=1)
    assert day_night_mode(group, DayNight.DAY, before) == (
        DayNight.NIGHT,
        "mode nuit forcé jusqu'à 2026-03-02T08:00:00+01:00",
    )
    assert day_night_mode(group, DayNight.DAY, until) == (DayNight.DAY, "mode jour selon l'horaire")
    assert day_night_mode(GroupSettings(), DayNight.NIGHT, before)[0] is DayNight.NIGHT
    manual = GroupSettings(DayNightOverride(DayNight.DAY))
    assert day_night_mode(manual, DayNight.NIGHT, before) == (DayNight.DAY, "mode jour forcé")
    with pytest.raises(ValueError, match="time-zone-aware"):
        DayNightOverride(DayNight.DAY, datetime(2026, 3, 2, 8))


# -- the stores --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        self.at += timedelta(seconds=1)
        return self.at


StoreFactory = Callable[[], LineSettingsStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    opened: list[LineSettingsStore] = []

    def make() -> LineSettingsStore:
        store: LineSettingsStore
        if request.param == "memory":
            store = MemoryLineSettingsStore(clock=Clock())
        else:
            store = SqliteLineSettingsStore(tmp_path / DB_FILE, clock=Clock())
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_never_saved_is_the_initial_state(make_store: StoreFactory) -> None:
    store = make_store()
    assert store.load(KEY) == LineSettings()
    assert store.load_versioned(KEY) is None
    assert store.load_group(group_key("500", "pbx.test")) == GroupSettings()
    assert store.all() == {}


def test_save_and_load(make_store: StoreFactory) -> None:
    store = make_store()
    assert store.save(KEY, FULL) == 1
    assert store.load(KEY) == FULL
    stored = store.load_versioned(KEY)
    assert stored is not None
    assert (stored.settings, stored.version) == (FULL, 1)
    assert stored.updated_at == T0 + timedelta(seconds=1)
    assert store.save(KEY, LineSettings(clir=True)) == 2
    assert store.load(KEY) == LineSettings(clir=True)  # the last save wins
    assert store.all() == {KEY: LineSettings(clir=True)}
    store.delete(KEY)
    assert store.load_versioned(KEY) is None


def test_update_persists_a_star_code_before_returning(make_store: StoreFactory) -> None:
    store = make_store()
    ctx = StarContext("401", forward_profile=10, extensions=frozenset({"401", "402"}))
    command = parse("*24*402")
    assert isinstance(command, SettingCommand)

    settings, confirmation = store.update(KEY, lambda s: apply(s, command, ctx))
    assert confirmation.reply is Reply.ACCEPTED
    assert settings.forwarding.unreachable == "402"
    assert store.load(KEY) == settings
    stored = store.load_versioned(KEY)
    assert stored is not None
    assert stored.version == 1


def test_update_writes_nothing_when_nothing_changes(make_store: StoreFactory) -> None:
    store = make_store()
    ctx = StarContext("401", forward_profile=1)
    barred = parse("*24*0612345678")
    assert isinstance(barred, SettingCommand)
    _, confirmation = store.update(KEY, lambda s: apply(s, barred, ctx))
    assert confirmation.reply is Reply.REFUSED
    assert store.load_versioned(KEY) is None  # a refused code changes nothing
    query = parse("**65")
    assert isinstance(query, SettingCommand)
    _, confirmation = store.update(KEY, lambda s: apply(s, query, ctx))
    assert confirmation.reply is Reply.INACTIVE
    assert store.load_versioned(KEY) is None


def test_update_that_raises_writes_nothing(make_store: StoreFactory) -> None:
    store = make_store()
    store.save(KEY, FULL)

    def boom(settings: LineSettings) -> tuple[LineSettings, None]:
        raise RuntimeError("executor bug")

    with pytest.raises(RuntimeError):
        store.update(KEY, boom)
    stored = store.load_versioned(KEY)
    assert stored is not None
    assert (stored.settings, stored.version) == (FULL, 1)
    store.save(KEY, LineSettings())  # the store is still usable
    assert store.load(KEY) == LineSettings()


def test_group_settings(make_store: StoreFactory) -> None:
    store = make_store()
    key = group_key("500", "pbx.test")
    night = GroupSettings(DayNightOverride(DayNight.NIGHT, datetime(2026, 3, 2, 8, tzinfo=PARIS)))
    assert store.save_group(key, night) == 1
    assert store.save_group(key, night) == 2
    assert store.load_group(key) == night
    assert store.load(key) == LineSettings()  # lines and groups are apart
    store.delete_group(key)
    assert store.load_group(key) == GroupSettings()


# -- SQLite specifics ----------------------------------------------------------------------


def test_the_file_survives_reopening(tmp_path: Path) -> None:
    path = line_settings_db_path(tmp_path)
    assert path == tmp_path / "line_settings.sqlite3"
    with closing(SqliteLineSettingsStore(path, clock=Clock())) as store:
        store.save(KEY, FULL)
        store.save(KEY, FULL)
        store.save_group("500@pbx.test", GroupSettings(DayNightOverride(DayNight.DAY)))
    with closing(SqliteLineSettingsStore(path)) as again:
        stored = again.load_versioned(KEY)
        assert stored is not None
        assert (stored.settings, stored.version) == (FULL, 2)
        assert stored.updated_at == T0 + timedelta(seconds=2)
        assert again.load_group("500@pbx.test") == GroupSettings(DayNightOverride(DayNight.DAY))


def test_saves_through_two_connections_count_every_write_and_keep_the_last(
    tmp_path: Path,
) -> None:
    path = tmp_path / DB_FILE
    with (
        closing(SqliteLineSettingsStore(path)) as one,
        closing(SqliteLineSettingsStore(path)) as two,
    ):
        for i in range(10):
            (one if i % 2 else two).save(KEY, LineSettings(forwarding=Forwarding(ring_s=10 + i)))
        assert one.load(KEY) == two.load(KEY) == LineSettings(forwarding=Forwarding(ring_s=19))
        stored = one.load_versioned(KEY)
        assert stored is not None
        assert stored.version == 10


def counter(settings: LineSettings) -> tuple[LineSettings, int]:
    count = int(settings.pre_answer.message or "0") + 1
    return settings.with_pre_answer_message(str(count)), count


def test_concurrent_updates_lose_nothing(tmp_path: Path) -> None:
    """Threads, each with its own connection (like separate processes), and threads
    sharing one store: every read-modify-write is serialised."""
    path = tmp_path / DB_FILE
    shared = SqliteLineSettingsStore(path, synchronous="NORMAL")
    errors: list[BaseException] = []

    def work(store: SqliteLineSettingsStore, own: bool) -> None:
        try:
            for _ in range(25):
                store.update(KEY, counter)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            if own:
                store.close()

    threads = [
        threading.Thread(target=work, args=(SqliteLineSettingsStore(path), True)) for _ in range(3)
    ] + [threading.Thread(target=work, args=(shared, False)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = shared.load_versioned(KEY)
    assert stored is not None
    assert stored.settings.pre_answer.message == "150"
    assert stored.version == 150
    shared.close()


def test_a_corrupted_row_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    with closing(SqliteLineSettingsStore(path)) as store:
        store.save(KEY, FULL)
        store.save_group("500@pbx.test", GroupSettings())
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE line_settings SET settings = '{\"clir\": 1}'")
        db.execute("UPDATE group_settings SET settings = 'nope'")
        db.commit()
    with closing(SqliteLineSettingsStore(path)) as store:
        with pytest.raises(LineSettingsStoreError, match=r"line 401@pbx\.test: settings\.clir"):
            store.load(KEY)
        with pytest.raises(LineSettingsStoreError, match=r"group 500@pbx\.test: not JSON"):
            store.load_group("500@pbx.test")
        with pytest.raises(LineSettingsStoreError):
            store.update(KEY, counter)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    SqliteLineSettingsStore(path).close()
    with closing(sqlite3.connect(path)) as db:
        db.execute("INSERT INTO schema_version (version) VALUES (2)")
        db.commit()
    with pytest.raises(LineSettingsStoreError, match="schema version 2"):
        SqliteLineSettingsStore(path)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(LineSettingsStoreError, match="synchronous"):
        SqliteLineSettingsStore(tmp_path / DB_FILE, synchronous="ALWAYS")  # type: ignore[arg-type]
    assert not (tmp_path / DB_FILE).exists()  # refused before the file is created
    with pytest.raises(LineSettingsStoreError):
        SqliteLineSettingsStore(tmp_path / "missing" / DB_FILE)


async def test_async_adapter(tmp_path: Path) -> None:
    store = AsyncSettingsStore(SqliteLineSettingsStore(tmp_path / DB_FILE))
    assert await store.save(KEY, LineSettings(clir=True)) == 1
    assert await store.load(KEY) == LineSettings(clir=True)
    settings, count = await store.update(KEY, counter)
    assert count == 1
    assert (await store.all()) == {KEY: settings}
    stored = await store.load_versioned(KEY)
    assert stored is not None
    assert stored.version == 2
    assert await store.save_group("500@pbx.test", GroupSettings()) == 1
    assert await store.load_group("500@pbx.test") == GroupSettings()
    await store.delete_group("500@pbx.test")
    await store.delete(KEY)
    assert await store.load_versioned(KEY) is None
    await store.close()


def test_a_cached_line_is_read_again_after_another_connection_writes_it(
    tmp_path: Path,
) -> None:
    """The cache of lines read never serves settings older than the file's."""
    path = tmp_path / DB_FILE
    with (
        closing(SqliteLineSettingsStore(path)) as switch,
        closing(SqliteLineSettingsStore(path)) as other,
    ):
        assert switch.load(KEY) == LineSettings()  # cached: never saved
        other.save(KEY, FULL)
        assert switch.load(KEY) == FULL
        other.delete(KEY)
        assert switch.load(KEY) == LineSettings()
        switch.save(KEY, FULL)  # its own write replaces its cached entry
        assert switch.load(KEY) == FULL
        switch.update(KEY, lambda s: (s.with_pre_answer_message("7"), None))
        assert switch.load(KEY).pre_answer.message == "7"
        switch.delete(KEY)
        assert switch.load_versioned(KEY) is None


def test_a_line_read_twice_without_writes_is_read_from_the_file_once(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    with closing(SqliteLineSettingsStore(path)) as store:
        store.save(KEY, FULL)
        statements: list[str] = []
        store._file.db.set_trace_callback(statements.append)
        assert store.load(KEY) == store.load(KEY) == FULL
        assert [s for s in statements if s.startswith("SELECT")] == [
            "SELECT settings, version, updated_at FROM line_settings WHERE key = ?".replace(
                "?", f"'{KEY}'"
            )
        ]
