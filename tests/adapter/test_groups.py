"""Hunt groups on live calls, with raw SIP UAs over UDP.

config/example's group 500 (402 then 403, sequential) gets a 1 s ring time and a
night destination (601) for these tests; 999 is the implicit Standard (every line).
Membership changes (``*30``) and the day/night override are written to the switch's
store, the override through the admin API and through ``aiguilleur groups daynight``
as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from routing.linesettings import (
    DayNight,
    DayNightOverride,
    Forwarding,
    GroupSettings,
    LineSettings,
)
from switch.app import Server, injected_clock
from switch.cli import main
from switch.line_settings import SqliteLineSettingsStore, group_key, line_settings_db_path
from tests.adapter.raw_ua import RawUa, running_switch, sdp
from tests.adapter.test_call_lifecycle import cdr, settings, until
from tests.adapter.test_forwarding import phone as answering_phone
from tests.sip_support import ROOT

GROUP_500 = "      - {number: 500, name: Commercial, strategy: sequential}\n"
TEST_500 = (
    "      - {number: 500, name: Commercial, strategy: sequential, ring_s: 1,\n"
    '         overflow: "601", night: {destination: "601"}}\n'
)


def prepare(config: Path) -> None:
    path = config / "directory.yaml"
    text = path.read_text(encoding="utf-8")
    assert GROUP_500 in text
    path.write_text(text.replace(GROUP_500, TEST_500), encoding="utf-8")


@asynccontextmanager
async def switch(tmp_path: Path) -> AsyncIterator[tuple[Server, int]]:
    async with running_switch(tmp_path, settings(), prepare=prepare) as running:
        yield running


async def phone(extension: str, port: int, answer: int = 180) -> RawUa:
    """A registered line that only rings unless told to answer ``answer``."""
    return await answering_phone(extension, port, answer)


def pick_up(ua: RawUa) -> None:
    """Answer the (only) call ringing on ``ua``."""
    (incoming,) = ua.incoming.values()
    ua.reply(incoming.invite, 200, tag=incoming.tag, body=sdp(4300))


def admin(server: Server, path: str, body: dict[str, str]) -> tuple[int, dict[str, object]]:
    assert server.admin is not None
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.admin.port}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def test_sequential_group_rings_members_in_order_then_the_second_answers(
    tmp_path: Path,
) -> None:
    async with switch(tmp_path) as (server, port):
        first = await phone("402", port)
        second = await phone("403", port)
        caller = await phone("401", port)
        call = await caller.call("500")
        await until(lambda: len(first.incoming) == 1)
        assert second.incoming == {}
        await until(lambda: len(second.incoming) == 1)  # after 402's ring time
        assert "cancel" in next(iter(first.incoming.values())).events
        pick_up(second)
        await call.answered()
        assert caller.incoming == {}
        await call.bye()
        await until(lambda: bool(cdr(server)))
        row = cdr(server)[0]
        legs = row["legs"]
        assert isinstance(legs, list)
        assert [leg["target"] for leg in legs if leg["role"] == "b"] == ["402", "403"]
        for ua in (first, second, caller):
            ua.close()


async def test_standard_999_rings_every_member_but_the_caller_at_once(tmp_path: Path) -> None:
    async with switch(tmp_path) as (_server, port):
        a = await phone("402", port)
        b = await phone("403", port)
        caller = await phone("401", port)
        call = await caller.call("999")
        await until(lambda: len(a.incoming) == 1 and len(b.incoming) == 1)
        pick_up(b)
        await call.answered()
        await until(lambda: "cancel" in next(iter(a.incoming.values())).events)
        assert caller.incoming == {}
        await call.bye()
        for ua in (a, b, caller):
            ua.close()


async def test_a_line_that_left_999_no_longer_rings_for_it(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        assert server.b2bua is not None
        # *30*999 on 402, as the star code stores it.
        await server.b2bua.line_settings.save(
            "402@pbx.test", LineSettings(left_groups=frozenset({"999"}))
        )
        left = await phone("402", port)
        member = await phone("403", port, answer=200)
        caller = await phone("401", port)
        call = await caller.call("999")
        await call.answered()
        assert len(member.incoming) == 1
        assert left.incoming == {}
        await call.bye()
        for ua in (left, member, caller):
            ua.close()


async def by_admin_api(server: Server, mode: str) -> None:
    status, body = await asyncio.to_thread(
        admin, server, "/groups/exemple-pme/500/daynight", {"mode": mode}
    )
    assert (status, body["mode"]) == (200, mode)


async def by_cli(server: Server, mode: str) -> None:
    config, data = str(server.settings.config_dir), str(server.data_dir)
    args = ["groups", "daynight", config, "exemple-pme", "500", mode, "--data-dir", data]
    # From another thread: the store is written as another process would write it.
    assert await asyncio.to_thread(main, args) == 0


@pytest.mark.parametrize("set_mode", [by_admin_api, by_cli], ids=["admin-api", "cli"])
async def test_night_override_routes_the_group_to_601(
    tmp_path: Path, set_mode: Callable[[Server, str], Awaitable[None]]
) -> None:
    async with switch(tmp_path) as (server, port):
        members = [await phone(ext, port) for ext in ("402", "403")]
        night = await phone("601", port, answer=200)
        caller = await phone("401", port)
        await set_mode(server, "night")
        call = await caller.call("500")
        await call.answered()
        assert len(night.incoming) == 1
        assert all(m.incoming == {} for m in members)
        await call.bye()
        await until(lambda: bool(cdr(server)))
        trace = "\n".join(cdr(server)[0]["because"])  # type: ignore[arg-type]
        assert "mode nuit forcé" in trace
        assert "service de nuit vers 601" in trace

        # Back to the schedule (none: day): the members ring again.
        await set_mode(server, "auto")
        again = await caller.call("500")
        await until(lambda: len(members[0].incoming) == 1)
        await again.cancel()
        assert len(night.incoming) == 1
        for ua in (*members, night, caller):
            ua.close()


def test_daynight_cli_writes_the_store_of_a_stopped_switch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(ROOT / "config" / "example")
    SqliteLineSettingsStore(line_settings_db_path(tmp_path)).close()  # as a switch leaves it
    args = ["groups", "daynight", config, "exemple-pme", "999", "night", "--data-dir"]
    assert main([*args, str(tmp_path)]) == 0
    store = SqliteLineSettingsStore(line_settings_db_path(tmp_path))
    try:
        stored = store.load_group(group_key("999", "pbx.test"))
    finally:
        store.close()
    assert stored == GroupSettings(DayNightOverride(DayNight.NIGHT))
    assert capsys.readouterr().out == "group 999 of exemple-pme: night (forced)\n"


@pytest.mark.parametrize(
    ("company", "number", "error"),
    [
        ("exemple-pme", "510", "unknown group 510 in exemple-pme"),
        ("x", "500", "unknown company: x"),
    ],
)
def test_daynight_cli_refuses_unknown_companies_and_groups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], company: str, number: str, error: str
) -> None:
    config = str(ROOT / "config" / "example")
    args = ["groups", "daynight", config, company, number, "day", "--data-dir", str(tmp_path)]
    assert main(args) == 2
    assert capsys.readouterr().err == error + "\n"
    assert not line_settings_db_path(tmp_path).exists()


def test_daynight_cli_writes_no_store_where_the_switch_never_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(ROOT / "config" / "example")
    args = ["groups", "daynight", config, "exemple-pme", "500", "day", "--data-dir"]
    assert main([*args, str(tmp_path)]) == 1
    assert "no line settings store" in capsys.readouterr().err
    assert not line_settings_db_path(tmp_path).exists()


def test_daynight_cli_refuses_other_modes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["groups", "daynight", "config/example", "exemple-pme", "500", "dusk"])
    assert exit_.value.code == 2
    assert "invalid choice: 'dusk'" in capsys.readouterr().err


STANDARD_AT_NIGHT = """\
    standard:
      night:
        destination: "500"
        calendar:
          periods:
            ouvert: [{days: [mon, tue, wed, thu, fri], ranges: ["08:00-18:00"]}]
"""
SUNDAY = datetime(2026, 11, 22, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))


def prepare_calendar(config: Path) -> None:
    prepare(config)
    path = config / "directory.yaml"
    text = path.read_text(encoding="utf-8")
    anchor = "    groups:  "
    assert text.count(anchor) == 1
    path.write_text(text.replace(anchor, STANDARD_AT_NIGHT + anchor), encoding="utf-8")


async def test_the_calendar_sends_the_standard_to_its_night_destination(
    tmp_path: Path,
) -> None:
    clock = injected_clock(SUNDAY)
    async with running_switch(tmp_path, settings(), prepare=prepare_calendar, wall=clock) as (
        server,
        port,
    ):
        first = await phone("402", port, answer=200)
        second = await phone("403", port, answer=200)
        caller = await phone("401", port)
        call = await caller.call("999")
        await call.answered()
        # Night: 999 -> group 500 (sequential): 402 answers, 403 is never offered
        # the call (by day 999 would offer it to both at once).
        assert len(first.incoming) == 1
        assert second.incoming == {}
        await call.bye()
        await until(lambda: bool(cdr(server)))
        trace = "\n".join(cdr(server)[0]["because"])  # type: ignore[arg-type]
        assert "groupement 999 (Standard) : mode nuit selon l'horaire" in trace
        assert "service de nuit vers 500" in trace
        for ua in (first, second, caller):
            ua.close()


async def test_daynight_route_refuses_unknown_groups_and_modes(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, _):
        path = "/groups/exemple-pme/500/daynight"
        assert (await asyncio.to_thread(admin, server, path, {"mode": "dusk"}))[0] == 422
        assert (
            await asyncio.to_thread(admin, server, path.replace("500", "510"), {"mode": "day"})
        )[0] == 404
        assert (
            await asyncio.to_thread(
                admin, server, path.replace("exemple-pme", "x"), {"mode": "day"}
            )
        )[0] == 404


async def test_a_group_with_nobody_reachable_fails_480(tmp_path: Path) -> None:
    async with switch(tmp_path) as (_server, port):
        caller = await phone("401", port)
        call = await caller.call("999")  # nobody else is registered
        await call.failed(480)
        caller.close()


async def test_a_group_overflows_after_its_last_member(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        busy = await phone("402", port, answer=486)
        overflow = await phone("601", port, answer=200)
        caller = await phone("401", port)
        call = await caller.call("500")  # 402 busy, 403 not registered
        await call.answered()
        assert len(busy.incoming) == 1
        assert len(overflow.incoming) == 1
        await call.bye()
        await until(lambda: bool(cdr(server)))
        trace = "\n".join(cdr(server)[0]["because"])  # type: ignore[arg-type]
        assert "groupement 500 : débordement vers 601" in trace
        for ua in (busy, overflow, caller):
            ua.close()


async def test_a_forward_to_a_group_hunts_it_with_diversion(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        assert server.b2bua is not None
        await server.b2bua.line_settings.save(
            "401@pbx.test", LineSettings(forwarding=Forwarding(unconditional="500"))
        )
        member = await phone("402", port, answer=200)
        caller = await phone("601", port)
        call = await caller.call("401")
        await call.answered()
        (incoming,) = member.incoming.values()
        diversion = ", ".join(incoming.invite.headers.get_all("Diversion"))
        assert diversion == (
            "<sip:+33140000401@pbx.test;user=phone>;reason=unconditional;counter=1;privacy=off"
        )
        await call.bye()
        for ua in (member, caller):
            ua.close()
