"""Transfers and pickups in-process, raw SIP over UDP: REFER (blind, attended,
refused), INVITE with Replaces (pickup, errors), with their NOTIFYs, re-INVITEs,
line counts and CDR rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from switch.sip.message import Request, Response
from switch.sip.refer import parse_sipfrag
from tests.adapter.raw_ua import OutCall, RawUa, running_switch, sdp, sdp_port
from tests.adapter.test_call_lifecycle import cdr, settings, until


@asynccontextmanager
async def phones(port: int, *users: str) -> AsyncIterator[list[RawUa]]:
    """Phones for ``users`` (extensions of the test directory), registered; closed
    on the way out."""
    out: list[RawUa] = []
    try:
        for user in users:
            ua = await RawUa.open(user, f"secret{user}", port)
            out.append(ua)
            await ua.register()
            ua.answer_sdp_port = 4000 + int(user) % 100
        yield out
    finally:
        for ua in out:
            ua.close()


async def notify(ua: RawUa, out: OutCall) -> tuple[int, str, Request]:
    """The next NOTIFY of ``out``'s dialog, answered 200: (sipfrag status, state)."""
    message = await ua.expect(out.call_id, method="NOTIFY")
    assert isinstance(message, Request)
    assert message.headers.get("Event") == "refer"
    assert message.headers.get("Content-Type") == "message/sipfrag;version=2.0"
    ua.reply(message, 200)
    return (
        parse_sipfrag(message.body).status,
        message.headers.get("Subscription-State") or "",
        message,
    )


async def refer(out: OutCall, refer_to: str, *, status: int = 202) -> Response:
    out.send("REFER", extra=[f"Refer-To: {refer_to}", f"Referred-By: <sip:{out.ua.user}@pbx.test>"])
    response = await out.ua.expect(out.call_id, status=status)
    assert isinstance(response, Response)
    assert response.cseq.method == "REFER"
    return response


async def test_blind_transfer_reinvites_the_transferee_and_releases_the_referrer(
    tmp_path: Path,
) -> None:
    async with (
        running_switch(tmp_path, settings()) as (server, port),
        phones(port, "401", "402", "403") as (p401, p402, p403),
    ):
        out = await p401.call("402", rtp_port=4001)
        first = await out.answered()
        (incoming,) = p402.incoming.values()
        old_port = sdp_port(incoming.invite.body)

        await refer(out, "<sip:403@pbx.test>")
        assert (await notify(p401, out))[:2] == (100, "active;expires=60")
        # 403 is dialled for 401, with Referred-By, the transferee's codec in use.
        async with asyncio.timeout(5):
            while not p403.incoming:
                await p403.arrived.wait()
        (towards,) = p403.incoming.values()
        assert towards.invite.headers.get("Referred-By") == "<sip:401@pbx.test>"
        assert "From" in towards.invite.headers
        assert "sip:401@pbx.test" in (towards.invite.headers.get("From") or "")
        assert b"RTP/AVP 0 101" in towards.invite.body

        assert (await notify(p401, out))[:2] == (200, "terminated;reason=noresource")
        # 402 moves to the new call's relay session, both ways.
        reinvite = await p402.expect(incoming.invite.call_id, method="INVITE")
        assert isinstance(reinvite, Request)
        assert sdp_port(reinvite.body) not in (old_port, sdp_port(first.body))
        assert b"a=sendrecv" in reinvite.body
        p402.reply(reinvite, 200, body=sdp(4002))
        await out.bye_received()

        await until(lambda: len(cdr(server)) == 1)
        (row,) = cdr(server)
        assert (row["outcome"], row["cause"]) == ("answered", "transferred")
        assert server.b2bua is not None
        active = server.b2bua.active
        await until(lambda: "401@pbx.test" not in active)
        assert active["402@pbx.test"] == 1
        assert active["403@pbx.test"] == 1
        assert server.b2bua.stats["transferred"] == 1


async def test_refer_to_a_barred_number_is_a_403_notify_and_the_call_stays(
    tmp_path: Path,
) -> None:
    """Line 601 has profile 1: the transfer's target goes through its restrictions."""
    async with (
        running_switch(tmp_path, settings()) as (server, port),
        phones(port, "402") as (p402,),
    ):
        p601 = await RawUa.open("601", "secret601", port)
        try:
            out = await p601.call("402")
            await out.answered()
            await refer(out, "<sip:0899123456@pbx.test>")
            assert (await notify(p601, out))[0] == 100
            status, state, message = await notify(p601, out)
            assert (status, state) == (403, "terminated;reason=noresource")
            assert message.body == b"SIP/2.0 403 Destination barred (premium)\r\n"
            assert server.b2bua is not None
            assert server.b2bua.stats["trunk_out"] == 0
            # The call is still up: 601 hangs up itself, 402 gets the BYE.
            await out.bye()
            async with asyncio.timeout(5):
                (incoming,) = p402.incoming.values()
                await incoming.done.wait()
            await until(lambda: len(cdr(server)) == 2)
            causes = sorted(str(r["cause"]) for r in cdr(server))
            assert causes[0].startswith("barred")
        finally:
            p601.close()


async def test_a_transfer_to_a_busy_target_keeps_the_call(tmp_path: Path) -> None:
    async with (
        running_switch(tmp_path, settings()) as (server, port),
        phones(port, "401", "402", "403") as (p401, _p402, p403),
    ):
        p403.answer = 486
        out = await p401.call("402")
        await out.answered()
        await refer(out, "<sip:403@pbx.test>")
        assert (await notify(p401, out))[0] == 100
        assert (await notify(p401, out))[0] == 486
        assert server.b2bua is not None
        await until(lambda: len(cdr(server)) == 1)  # the attempt's own row
        assert cdr(server)[0]["outcome"] == "busy"
        assert len([c for c in server.b2bua.calls if not c.finished]) == 1
        await out.bye()


@pytest.mark.parametrize(
    ("refer_to", "status"),
    [
        ("<sip:403@pbx.test", 400),  # not a name-addr
        ("<sip:*8402@pbx.test>", 403),  # star codes are not transfer targets
        ("<mailto:someone@pbx.test>", 403),
        ("<sip:403@pbx.test?Replaces=nonsense>", 400),  # Replaces without tags
    ],
)
async def test_refer_errors_are_answered_on_the_refer(
    tmp_path: Path, refer_to: str, status: int
) -> None:
    async with (
        running_switch(tmp_path, settings()) as (_server, port),
        phones(port, "401", "402") as (p401, _p402),
    ):
        out = await p401.call("402")
        await out.answered()
        await refer(out, refer_to, status=status)


async def test_refer_with_replaces_naming_no_dialog_is_a_481_notify(tmp_path: Path) -> None:
    async with (
        running_switch(tmp_path, settings()) as (_server, port),
        phones(port, "401", "402") as (p401, _p402),
    ):
        out = await p401.call("402")
        await out.answered()
        await refer(out, "<sip:403@pbx.test?Replaces=nope%3Bto-tag%3D1%3Bfrom-tag%3D2>")
        assert (await notify(p401, out))[0] == 100
        assert (await notify(p401, out))[0] == 481


async def test_refer_outside_a_dialog_is_refused(tmp_path: Path) -> None:
    async with (
        running_switch(tmp_path, settings()) as (_server, port),
        phones(port, "401") as (p401,),
    ):
        for call_id, to_tag, status in (("ood-1", "", 403), ("ood-2", "never-issued", 481)):
            p401.request(
                "REFER", f"sip:402@127.0.0.1:{port}", call_id=call_id, cseq=1,
                from_tag="x", to_tag=to_tag, extra=["Refer-To: <sip:403@pbx.test>"],
            )  # fmt: skip
            answer = await p401.expect(call_id, status=status)
            assert isinstance(answer, Response)


async def test_attended_transfer_joins_the_transferee_and_the_consultation(
    tmp_path: Path,
) -> None:
    async with (
        running_switch(tmp_path, settings()) as (server, port),
        phones(port, "401", "402", "403") as (p401, p402, p403),
    ):
        x = await p401.call("402", rtp_port=4001)
        await x.answered()
        y = await p401.call("403", rtp_port=4011)
        ok = await y.answered()
        (to_403,) = p403.incoming.values()
        y_port = sdp_port(to_403.invite.body)
        # RFC 3891 §3: the tags of the consultation as the switch sees it.
        replaces = f"{y.call_id}%3Bto-tag%3D{ok.to_tag}%3Bfrom-tag%3D{y.from_tag}"
        await refer(x, f"<sip:403@pbx.test?Replaces={replaces}>")
        assert (await notify(p401, x))[0] == 100
        assert (await notify(p401, x))[0] == 200
        (to_402,) = p402.incoming.values()
        reinvite = await p402.expect(to_402.invite.call_id, method="INVITE")
        assert isinstance(reinvite, Request)
        p402.reply(reinvite, 200, body=sdp(4002))
        # 402 takes 401's place in the consultation: the relay side 401 used.
        assert sdp_port(reinvite.body) == sdp_port(ok.body)
        assert sdp_port(reinvite.body) != y_port
        await x.bye_received()
        await y.bye_received()
        await until(lambda: len(cdr(server)) == 1)
        assert cdr(server)[0]["cause"] == "transferred"
        assert server.b2bua is not None
        active = server.b2bua.active
        await until(lambda: "401@pbx.test" not in active)
        assert (active["402@pbx.test"], active["403@pbx.test"]) == (1, 1)


async def test_pickup_by_invite_with_replaces(tmp_path: Path) -> None:
    async with (
        running_switch(tmp_path, settings()) as (server, port),
        phones(port, "401", "402", "403") as (p401, p402, p403),
    ):
        p402.answer = 180
        out = await p401.call("402", rtp_port=4001)
        await out.ringing()
        (ringing,) = p402.incoming.values()
        invite = ringing.invite
        # As a BLF key builds it from 402's dialog: to-tag = 402's own tag.
        replaces = (
            f"Replaces: {invite.call_id};to-tag={ringing.tag};from-tag={invite.from_tag};early-only"
        )
        picker = await p403.call("402", rtp_port=4003, headers=[replaces])
        ok = await picker.answered()
        answered = await out.answered()
        async with asyncio.timeout(5):
            await ringing.done.wait()
        assert ringing.events == ["cancel"]
        assert sdp_port(ok.body) != sdp_port(answered.body)
        assert b"RTP/AVP 0" in ok.body
        assert server.b2bua is not None
        assert server.b2bua.stats["pickups"] == 1
        active = server.b2bua.active
        assert "402@pbx.test" not in active
        assert (active["401@pbx.test"], active["403@pbx.test"]) == (1, 1)
        await picker.bye()
        await out.bye_received()
        await until(lambda: len(cdr(server)) == 1)
        (row,) = cdr(server)
        assert row["outcome"] == "answered"


def second_company(config: Path) -> None:
    with (config / "directory.yaml").open("a", encoding="utf-8") as out:
        out.write(
            "  - id: autre\n"
            "    name: Autre\n"
            "    domain: autre.test\n"
            "    contract: {id: C-3000, name: Autre}\n"
            '    main_number: "+33150000401"\n'
            "    lines:\n"
            "      - extension: 401\n"
            "        name: Ailleurs\n"
            '        direct_number: "+33150000401"\n'
            '        password: "secretautre"\n'
            "        device: {model: softphone}\n"
        )


async def test_replaces_errors(tmp_path: Path) -> None:
    """RFC 3891 §3: 400 malformed, 481 no such dialog (or the caller's early one),
    486 early-only on an answered call, 403 across companies."""
    async with (
        running_switch(tmp_path, settings(), prepare=second_company) as (_s, port),
        phones(port, "401", "402", "403") as (p401, p402, p403),
    ):
        p402.answer = 180
        outsider = await RawUa.open("401", "secretautre", port, domain="autre.test")
        try:
            out = await p401.call("402")
            ringing = await p401.expect(out.call_id, status=180)
            assert isinstance(ringing, Response)
            (to_402,) = p402.incoming.values()
            b_leg = f"{to_402.invite.call_id};to-tag={to_402.tag};from-tag={to_402.invite.from_tag}"
            a_leg = f"{out.call_id};to-tag={ringing.to_tag};from-tag={out.from_tag}"
            cases = [
                ("Replaces: nonsense", 400),
                ("Replaces: unknown@h;to-tag=1;from-tag=2", 481),
                (f"Replaces: {a_leg}", 481),  # an early dialog the switch did not start
            ]
            for header, status in cases:
                attempt = await p403.call("402", headers=[header])
                await attempt.failed(status)
            attempt = await outsider.call("402", headers=[f"Replaces: {b_leg}"])
            await attempt.failed(403)
            # Answered now: early-only refuses it.
            p402.reply(to_402.invite, 200, tag=to_402.tag, body=sdp(4002))
            await out.answered()
            attempt = await p403.call("402", headers=[f"Replaces: {b_leg};early-only"])
            await attempt.failed(486)
        finally:
            outsider.close()


async def test_transfer_while_ringing_hands_the_ringing_consultation_over(
    tmp_path: Path,
) -> None:
    """Poly's "transfer while ringing": the Replaces names the consultation's early
    dialog. The switch takes it over: the referrer is done at once, the transferee
    waits in the ringing call and gets 403's media when 403 answers."""
    async with (
        running_switch(tmp_path, settings()) as (server, port),
        phones(port, "401", "402", "403") as (p401, p402, p403),
    ):
        p403.answer = 180
        x = await p401.call("402", rtp_port=4001)
        await x.answered()
        y = await p401.call("403", rtp_port=4011)
        ringing = await p401.expect(y.call_id, status=180)
        assert isinstance(ringing, Response)
        replaces = f"{y.call_id}%3Bto-tag%3D{ringing.to_tag}%3Bfrom-tag%3D{y.from_tag}"
        await refer(x, f"<sip:403@pbx.test?Replaces={replaces}>")
        assert (await notify(p401, x))[0] == 100
        assert (await notify(p401, x))[0] == 200
        await y.failed(487)  # the consultation INVITE, taken over
        await x.bye_received()
        (to_403,) = p403.incoming.values()
        p403.reply(to_403.invite, 200, tag=to_403.tag, body=sdp(4003))
        (to_402,) = p402.incoming.values()
        reinvite = await p402.expect(to_402.invite.call_id, method="INVITE")
        assert isinstance(reinvite, Request)
        assert b"a=sendrecv" in reinvite.body
        p402.reply(reinvite, 200, body=sdp(4002))
        assert server.b2bua is not None
        active = server.b2bua.active
        await until(lambda: "401@pbx.test" not in active)
        assert (active["402@pbx.test"], active["403@pbx.test"]) == (1, 1)


async def test_directed_pickup_by_star_code(tmp_path: Path) -> None:
    """``*8*<ext>`` (``switch.features``): ``B2bua.pickup(running, line)`` answers the
    call ringing at the line with the picker's INVITE; nothing ringing: 480."""
    async with (
        running_switch(tmp_path, settings()) as (server, port),
        phones(port, "401", "402", "403") as (p401, p402, p403),
    ):
        p402.answer = 180
        nothing = await p403.call("*8*402")
        await nothing.failed(480)
        out = await p401.call("402", rtp_port=4001)
        await out.ringing()
        picker = await p403.call("*8*402", rtp_port=4003)
        ok = await picker.answered()
        await out.answered()
        (ringing,) = p402.incoming.values()
        async with asyncio.timeout(5):
            await ringing.done.wait()
        assert ringing.events == ["cancel"]
        assert b"RTP/AVP 0" in ok.body
        assert server.b2bua is not None
        active = server.b2bua.active
        assert "402@pbx.test" not in active
        assert (active["401@pbx.test"], active["403@pbx.test"]) == (1, 1)
        await picker.bye()
        await out.bye_received()
        await until(lambda: len(cdr(server)) == 3)
        causes = [str(r["cause"]) for r in cdr(server)]
        assert "picked-up" in causes
        assert "pickup-nothing" in causes
