"""Forwards, the main number and mobiles through the trunk, with raw SIP UAs.

The carrier is a ``RawUa`` bound to 127.0.0.1:5090 (the example trunk's address): it
places calls to our numbers and receives what the switch sends out. Port 5090 is
shared: run under ``flock /tmp/aiguilleur-5090.lock``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from routing.linesettings import ForwardedIdentity, Forwarding, LineSettings
from switch.app import Server
from tests.adapter.raw_ua import OutCall, RawUa, running_switch, sdp
from tests.adapter.test_call_lifecycle import cdr, settings, until
from tests.adapter.test_forwarding import header, only_invite, phone

TRUNK_PORT = 5090
MOBILE = "+33612345678"
_n = itertools.count(1)
LINE_401 = "        restrictions: {direct: 10, forwarded: 10}\n"


async def carrier(port: int, answer: int = 200) -> RawUa:
    loop = asyncio.get_running_loop()
    _, ua = await loop.create_datagram_endpoint(
        lambda: RawUa("+33699000000", "", port), local_addr=("127.0.0.1", TRUNK_PORT)
    )
    ua.answer = answer
    return ua


def with_mobile(mode: str) -> object:
    def prepare(config: Path) -> None:
        path = config / "directory.yaml"
        text = path.read_text(encoding="utf-8")
        assert text.count(LINE_401) == 1
        mobile = f'        mobile: {{number: "{MOBILE}", mode: {mode}, rings: 1}}\n'
        path.write_text(text.replace(LINE_401, LINE_401 + mobile), encoding="utf-8")

    return prepare


@asynccontextmanager
async def switch(tmp_path: Path, mobile: str | None = None) -> AsyncIterator[tuple[Server, int]]:
    prepare = with_mobile(mobile) if mobile else None
    async with running_switch(tmp_path, settings(), prepare=prepare) as running:  # type: ignore[arg-type]
        yield running


async def save(server: Server, extension: str, settings_: LineSettings) -> None:
    assert server.b2bua is not None
    await server.b2bua.line_settings.save(f"{extension}@pbx.test", settings_)


def from_trunk(trunk: RawUa, number: str, port: int) -> OutCall:
    out = OutCall(
        trunk, number, f"sip:{number}@127.0.0.1:{port}", f"trunk-{next(_n)}", body=sdp(4500)
    )
    out.send_invite()  # a trunk source is not challenged
    return out


async def test_forward_to_a_public_number_goes_out_with_diversion(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        await save(server, "401", LineSettings(forwarding=Forwarding(unconditional=MOBILE)))
        trunk = await carrier(port)
        caller = await phone("402", port)
        call = await caller.call("401")
        await call.answered()
        invite = only_invite(trunk)
        assert str(invite.uri).startswith(f"sip:{MOBILE}@127.0.0.1:{TRUNK_PORT}")
        assert header(invite, "Diversion") == (
            "<sip:+33140000401@pbx.test;user=phone>;reason=unconditional;counter=1;privacy=off"
        )
        assert f"<sip:{MOBILE}@pbx.test;user=phone;cause=302>;index=1.1;mp=1" in header(
            invite, "History-Info"
        )
        # The first caller's number is presented (the line's default).
        assert "<sip:+33140000402@pbx.test>" in header(invite, "From")
        await call.bye()
        trunk.close()
        caller.close()


async def test_forwarder_identity_presents_the_forwarding_line(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        await save(
            server,
            "401",
            LineSettings(
                forwarding=Forwarding(unconditional=MOBILE),
                forwarded_identity=ForwardedIdentity.FORWARDER,
            ),
        )
        trunk = await carrier(port)
        caller = await phone("402", port)
        call = await caller.call("401")
        await call.answered()
        assert "<sip:+33140000401@pbx.test>" in header(only_invite(trunk), "From")
        await call.bye()
        trunk.close()
        caller.close()


async def test_a_forward_barred_by_the_forward_profile_is_a_clear_failure(
    tmp_path: Path,
) -> None:
    async with switch(tmp_path) as (server, port):
        # 601: forward profile 1 (no mobiles), no voicemail.
        await save(server, "601", LineSettings(forwarding=Forwarding(unconditional=MOBILE)))
        trunk = await carrier(port)
        caller = await phone("402", port)
        call = await caller.call("601")
        await call.failed(480)
        assert trunk.incoming == {}
        await until(lambda: bool(cdr(server)))
        trace = "\n".join(cdr(server)[0]["because"])  # type: ignore[arg-type]
        assert f"renvoi immédiat de 601 vers {MOBILE} ignoré" in trace
        trunk.close()
        caller.close()


async def test_a_trunk_call_to_a_forwarded_direct_number_follows_the_forward(
    tmp_path: Path,
) -> None:
    async with switch(tmp_path) as (server, port):
        await save(server, "402", LineSettings(forwarding=Forwarding(unconditional="403")))
        target = await phone("403", port)
        trunk = await carrier(port)
        call = from_trunk(trunk, "+33140000402", port)
        await call.answered()
        invite = only_invite(target)
        assert header(invite, "Diversion") == (
            "<sip:+33140000402@pbx.test;user=phone>;reason=unconditional;counter=1;privacy=off"
        )
        assert "+33699000000" in header(invite, "From")  # the outside caller
        await call.bye()
        for ua in (target, trunk):
            ua.close()


async def test_main_number_rings_the_main_phone_then_the_standard(tmp_path: Path) -> None:
    async with switch(tmp_path) as (server, port):
        await save(server, "401", LineSettings(forwarding=Forwarding(ring_s=5)))
        main = await phone("401", port, answer=180)
        other = await phone("402", port, answer=180)
        answering = await phone("403", port, answer=200)
        trunk = await carrier(port)
        call = from_trunk(trunk, "+33140000401", port)
        await until(lambda: len(main.incoming) == 1)
        assert other.incoming == {}
        assert answering.incoming == {}
        await call.answered()  # 403, through the Standard (999), after 401's 5 s
        assert len(main.incoming) == 1  # the main phone is not rung again
        assert len(other.incoming) == 1
        await until(lambda: "cancel" in next(iter(other.incoming.values())).events)
        await call.bye()
        await until(lambda: bool(cdr(server)))
        trace = "\n".join(cdr(server)[0]["because"])  # type: ignore[arg-type]
        assert "le poste principal ne répond pas : le Standard" in trace
        for ua in (main, other, answering, trunk):
            ua.close()


async def test_mobile_rings_with_the_desk_phone_and_the_first_answer_wins(
    tmp_path: Path,
) -> None:
    async with switch(tmp_path, "simultaneous") as (_server, port):
        desk = await phone("401", port, answer=180)
        mobile = await carrier(port, answer=200)
        caller = await phone("402", port)
        call = await caller.call("401")
        await call.answered()
        assert str(only_invite(mobile).uri).startswith(f"sip:{MOBILE}@")
        await until(lambda: len(desk.incoming) == 1)
        await until(lambda: "cancel" in next(iter(desk.incoming.values())).events)
        await call.bye()
        for ua in (desk, mobile, caller):
            ua.close()


async def test_mobile_after_one_ring_joins_the_desk_phone(tmp_path: Path) -> None:
    async with switch(tmp_path, "after") as (_server, port):
        desk = await phone("401", port, answer=180)
        mobile = await carrier(port, answer=180)
        caller = await phone("402", port)
        call = await caller.call("401")
        await until(lambda: len(desk.incoming) == 1)
        assert mobile.incoming == {}
        await until(lambda: len(mobile.incoming) == 1, within=10)  # after 1 ring (5 s)
        (incoming,) = mobile.incoming.values()
        mobile.reply(incoming.invite, 200, tag=incoming.tag, body=sdp(4600))
        await call.answered()
        await until(lambda: "cancel" in next(iter(desk.incoming.values())).events)
        await call.bye()
        for ua in (desk, mobile, caller):
            ua.close()
