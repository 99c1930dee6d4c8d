"""BLF in-process with raw SIP UAs over UDP: SUBSCRIBE Event: dialog, digest, company
checks, the idle document, refresh and unsubscribe, and the NOTIFYs a call 401 -> 402
produces (call-id and tags those of the switch's B leg towards 402)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from switch.sip.auth import answer_challenge, parse_challenge
from switch.sip.dialog_info import DialogState, Direction, parse
from switch.sip.message import Request, Response
from switch.sip.parser import parse_message
from tests.adapter.blf_watcher import Subscription, Watcher
from tests.adapter.raw_ua import WAIT, RawUa, running_switch, sdp

OTHER_COMPANY = """
  - id: autre
    name: Autre
    domain: other.test
    contract: {id: C-9, name: Autre}
    main_number: "+33150000401"
    lines:
      - extension: 401
        name: Ailleurs
        direct_number: "+33150000401"
        password: secret-other
        device: {model: softphone}
"""


def settings() -> str:
    return (
        "registrar:\n  keepalive: {interval: 0}\n"
        "media:\n  address: 127.0.0.1\n  rtp_ports: [43000, 43199]\n  rtp_timeout: 30\n"
        "calls:\n  ring_timeout: 30\n  max_duration: 3600\n"
    )


def with_other_company(config: Path) -> None:
    path = config / "directory.yaml"
    path.write_text(path.read_text(encoding="utf-8") + OTHER_COMPANY, encoding="utf-8")


async def test_subscribe_unauthenticated_is_challenged_then_idle_line_has_a_dummy_dialog(
    tmp_path: Path,
) -> None:
    async with running_switch(tmp_path, settings()) as (_server, port):
        watcher = await Watcher.line("403", "secret403", port)
        try:
            sub = Subscription("402", port)
            watcher.send_subscribe(sub)
            challenge = await watcher.final(sub)
            assert challenge.status == 407
            assert challenge.headers.get("Proxy-Authenticate")

            sub, ok = await watcher.subscribe("402")
            assert ok.status == 200
            assert ok.headers.get("Expires") == "600"
            assert ok.to_tag
            notify = await watcher.notify(sub.call_id)
            assert notify.headers.get("Event") == "dialog"
            assert notify.headers.get("Subscription-State") == "active;expires=600"
            assert notify.from_tag == ok.to_tag
            info = parse(notify.body)
            assert (info.version, info.state, info.entity) == (0, "full", "sip:402@pbx.test")
            (dummy,) = info.dialogs
            assert dummy.state is DialogState.TERMINATED
            assert dummy.call_id is None
        finally:
            watcher.close()


async def test_wrong_company_unknown_line_and_unknown_package_are_refused(
    tmp_path: Path,
) -> None:
    async with running_switch(tmp_path, settings(), prepare=with_other_company) as (_s, port):
        stranger = await Watcher.line("401", "secret-other", port)
        stranger.domain = "other.test"
        watcher = await Watcher.line("403", "secret403", port)
        try:
            _, refused = await stranger.subscribe("402")
            assert refused.status == 403
            _, missing = await watcher.subscribe("499")
            assert missing.status == 404
            sub = Subscription("402", port)
            watcher.send_subscribe(sub, event="presence")
            bad_event = await watcher.final(sub)
            assert bad_event.status == 489
            assert bad_event.headers.get("Allow-Events") == "dialog"
            assert stranger.notifies == watcher.notifies == {}
        finally:
            stranger.close()
            watcher.close()


async def test_refresh_and_unsubscribe(tmp_path: Path) -> None:
    async with running_switch(tmp_path, settings()) as (_server, port):
        watcher = await Watcher.line("403", "secret403", port)
        try:
            sub, ok = await watcher.subscribe("402", expires=300)
            assert ok.status == 200
            assert (await watcher.document(sub.call_id)).version == 0

            watcher.send_subscribe(sub, expires=3600)  # in the dialog, no digest again
            refreshed = await watcher.final(sub)
            assert refreshed.status == 200
            assert refreshed.headers.get("Expires") == "3600"
            notify = await watcher.notify(sub.call_id)
            assert notify.headers.get("Subscription-State") == "active;expires=3600"
            assert parse(notify.body).version == 1

            watcher.send_subscribe(sub, expires=30)  # below the minimum
            assert (await watcher.final(sub)).status == 423

            watcher.send_subscribe(sub, expires=0)
            done = await watcher.final(sub)
            assert done.status == 200
            final = await watcher.notify(sub.call_id)
            assert final.headers.get("Subscription-State") == "terminated;reason=timeout"
            assert parse(final.body).version == 2

            watcher.send_subscribe(sub, expires=600)
            assert (await watcher.final(sub)).status == 481
        finally:
            watcher.close()


async def states(watcher: Watcher, sub: Subscription, call_id: str) -> list[str]:
    """Documents of ``sub`` until the dialog ``call_id`` is terminated: its states,
    consecutive repeats merged; versions checked to grow by one."""
    seen: list[str] = []
    version = None
    async with asyncio.timeout(WAIT):
        while not seen or seen[-1] != "terminated":
            info = await watcher.document(sub.call_id)
            if version is not None:
                assert info.version == version + 1
            version = info.version
            for dialog in info.dialogs:
                if dialog.call_id == call_id and (not seen or seen[-1] != dialog.state):
                    seen.append(str(dialog.state))
    return seen


async def test_a_call_401_to_402_is_notified_early_confirmed_terminated(tmp_path: Path) -> None:
    async with running_switch(tmp_path, settings()) as (_server, port):
        watcher = await Watcher.line("403", "secret403", port)
        caller = await RawUa.open("401", "secret401", port)
        callee = await RawUa.open("402", "secret402", port)
        try:
            await callee.register()
            callee.answer = 180  # ring; answered by hand below
            on_402, _ = await watcher.subscribe("402")
            on_401, _ = await watcher.subscribe("401")
            assert len((await watcher.document(on_402.call_id)).dialogs) == 1  # idle dummy
            assert len((await watcher.document(on_401.call_id)).dialogs) == 1

            out = await caller.call("402")
            await out.ringing()
            (incoming,) = callee.incoming.values()
            b_leg = incoming.invite
            # The caller's line: an initiator dialog with the caller's own tag.
            early_401 = await watcher.document(on_401.call_id)
            while not any(d.state is DialogState.EARLY for d in early_401.dialogs):
                early_401 = await watcher.document(on_401.call_id)
            (a_view,) = early_401.dialogs
            assert a_view.call_id == out.call_id
            assert a_view.local_tag == out.from_tag
            assert a_view.direction is Direction.INITIATOR
            assert a_view.remote is not None
            assert a_view.remote.identity == "sip:402@pbx.test"

            callee.reply(b_leg, 200, tag=incoming.tag, body=sdp(4000))
            await out.answered()
            await out.bye()

            seen = await states(watcher, on_402, b_leg.call_id)
            assert [s for s in seen if s != "trying"] == ["early", "confirmed", "terminated"]
        finally:
            watcher.close()
            caller.close()
            callee.close()


async def test_the_callee_dialog_names_the_switchs_b_leg_towards_402(tmp_path: Path) -> None:
    async with running_switch(tmp_path, settings()) as (server, port):
        watcher = await Watcher.line("403", "secret403", port)
        caller = await RawUa.open("401", "secret401", port)
        callee = await RawUa.open("402", "secret402", port)
        try:
            await callee.register()
            callee.answer = 180
            on_402, _ = await watcher.subscribe("402")
            await watcher.document(on_402.call_id)
            out = await caller.call("402")
            await out.ringing()
            (incoming,) = callee.incoming.values()
            b_leg = incoming.invite
            async with asyncio.timeout(WAIT):
                while True:
                    info = await watcher.document(on_402.call_id)
                    early = [d for d in info.dialogs if d.state is DialogState.EARLY]
                    if early:
                        break
            (view,) = early
            assert view.call_id == b_leg.call_id != out.call_id
            assert view.local_tag == incoming.tag  # 402's own tag
            assert view.remote_tag == b_leg.from_tag  # the switch's tag on the B leg
            assert view.direction is Direction.RECIPIENT
            assert view.local is not None
            assert view.local.identity == "sip:402@pbx.test"
            assert view.local.target == f"sip:402@127.0.0.1:{callee.port}"
            assert view.remote is not None
            assert view.remote.identity == "sip:401@pbx.test"
            assert view.remote.display == "Accueil"
            await out.cancel()
            async with asyncio.timeout(WAIT):
                while True:
                    info = await watcher.document(on_402.call_id)
                    ended = [d for d in info.dialogs if d.call_id == b_leg.call_id]
                    if ended and ended[0].state is DialogState.TERMINATED:
                        break
            assert ended[0].event == "cancelled"
            # 401 is watched by nobody: nothing is kept of its ended call.
            assert server.blf is not None
            assert "401@pbx.test" not in server.blf._lines
        finally:
            watcher.close()
            caller.close()
            callee.close()


async def read_message(reader: asyncio.StreamReader) -> Request | Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    match = re.search(rb"\r\nContent-Length:\s*(\d+)", head, re.I)
    body = await reader.readexactly(int(match.group(1))) if match else b""
    return parse_message(head + body)


async def test_a_tcp_subscriber_gets_its_notify_over_its_own_connection(tmp_path: Path) -> None:
    async with running_switch(tmp_path, settings()) as (_server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        local = writer.get_extra_info("sockname")[1]
        try:

            def subscribe(cseq: int, auth: str = "") -> None:
                lines = [
                    "SUBSCRIBE sip:402@pbx.test SIP/2.0",
                    f"Via: SIP/2.0/TCP 127.0.0.1:{local};branch=z9hG4bK-tcp{cseq}",
                    "Max-Forwards: 70",
                    "From: <sip:403@pbx.test>;tag=tcpw",
                    "To: <sip:402@pbx.test>",
                    "Call-ID: tcp-watch@test",
                    f"CSeq: {cseq} SUBSCRIBE",
                    # A Contact nobody listens on: the NOTIFY must use this connection.
                    "Contact: <sip:403@192.0.2.99:5999;transport=tcp>",
                    "Event: dialog",
                    "Expires: 600",
                    *([f"Proxy-Authorization: {auth}"] if auth else []),
                    "Content-Length: 0",
                ]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())

            subscribe(1)
            challenge = await read_message(reader)
            assert isinstance(challenge, Response)
            assert challenge.status == 407
            value = challenge.headers.get("Proxy-Authenticate")
            assert value is not None
            auth = answer_challenge(
                parse_challenge(value), method="SUBSCRIBE", uri="sip:402@pbx.test",
                username="403", password="secret403", cnonce="t", nc=1,
            )  # fmt: skip
            subscribe(2, auth)
            ok = await read_message(reader)
            assert isinstance(ok, Response)
            assert ok.status == 200
            notify = await read_message(reader)
            assert isinstance(notify, Request)
            assert notify.method == "NOTIFY"
            assert str(notify.uri) == "sip:403@192.0.2.99:5999;transport=tcp"
            assert notify.top_via.transport == "TCP"
            assert parse(notify.body).version == 0
        finally:
            writer.close()
            await writer.wait_closed()
