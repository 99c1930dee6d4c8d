"""Call endings in-process with raw SIP UAs over UDP: RTP timeout, maximum duration,
BYE from the caller, and no relay port or socket leak after 1,000 short calls
(answered, busy and cancelled)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import time
from pathlib import Path

from media.relay import MediaRelay, SrtpKeys
from media.sdp import SessionDescription, crypto_attributes
from switch.app import Server
from switch.cdr import CdrStore, cdr_db_path
from switch.sip.endpoint import Endpoint
from tests.adapter.raw_ua import OutCall, RawUa, running_switch, sdp_port, wait_done


def settings(*, rtp_timeout: float = 30, max_duration: float = 3600, ports: str = "") -> str:
    return (
        "registrar:\n  keepalive: {interval: 0}\n"
        f"media:\n  address: 127.0.0.1\n  rtp_ports: [{ports or '41000, 41999'}]\n"
        f"  rtp_timeout: {rtp_timeout}\n"
        f"calls:\n  ring_timeout: 30\n  max_duration: {max_duration}\n"
    )


def relay_of(server: Server) -> MediaRelay:
    assert server.b2bua is not None
    relay = server.b2bua.relay
    assert isinstance(relay, MediaRelay)
    return relay


def cdr(server: Server) -> list[dict[str, object]]:
    store = CdrStore(cdr_db_path(server.data_dir))
    try:
        return store.rows()
    finally:
        store.close()


async def lines(port: int) -> tuple[RawUa, RawUa]:
    caller = await RawUa.open("401", "secret401", port)
    callee = await RawUa.open("402", "secret402", port)
    await callee.register()
    return caller, callee


def open_sockets() -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


async def relay_idle(relay: MediaRelay) -> None:
    """Until no relay session is left and their sockets are really closed."""
    await until(lambda: relay.ports.in_use == 0 and relay.sessions == 0)
    await relay.close()  # no session open: only waits for the closed ones' sockets


async def until(check: object, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_rtp_timeout_releases_a_call_whose_far_end_goes_silent(tmp_path: Path) -> None:
    async with running_switch(tmp_path, settings(rtp_timeout=1)) as (server, port):
        caller, callee = await lines(port)
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        rtp.setblocking(False)
        try:
            out = await caller.call("402", rtp_port=rtp.getsockname()[1])
            ok = await out.answered()
            relay_port = sdp_port(ok.body)
            # The caller keeps talking; the callee (a UA that answered) never sends.
            started = time.monotonic()
            bye_task = asyncio.create_task(out.bye_received())
            while not bye_task.done() and time.monotonic() - started < 4:
                rtp.sendto(b"\x80\x00" + bytes(10) + bytes(160), ("127.0.0.1", relay_port))
                await asyncio.sleep(0.02)
            await bye_task
            elapsed = time.monotonic() - started
            assert 0.9 <= elapsed < 3.0, elapsed
            (incoming,) = await wait_done(callee, 1)
            assert incoming.events[-1] == "bye"
            await until(lambda: cdr(server))
            (row,) = cdr(server)
            assert (row["outcome"], row["cause"]) == ("answered", "rtp_timeout")
            await until(lambda: relay_of(server).ports.in_use == 0)
        finally:
            rtp.close()
            caller.close()
            callee.close()


async def test_max_duration_hangs_up_both_legs_and_bye_from_caller(tmp_path: Path) -> None:
    async with running_switch(tmp_path, settings(max_duration=1)) as (server, port):
        caller, callee = await lines(port)
        try:
            out = await caller.call("402")
            await out.answered()
            started = time.monotonic()
            await out.bye_received()
            assert 0.9 <= time.monotonic() - started < 3.0
            (incoming,) = await wait_done(callee, 1)
            assert incoming.events == ["ack", "bye"]

            # BYE from the caller ends the callee's leg too.
            second = await caller.call("402")
            await second.answered()
            await second.bye()
            calls = await wait_done(callee, 2)
            assert calls[1].events == ["ack", "bye"]
            await until(lambda: len(cdr(server)) == 2)
            causes = [(r["outcome"], r["cause"]) for r in cdr(server)]
            assert causes[0] == ("answered", "max_duration")
            assert causes[1][0] == "answered"
            assert str(causes[1][1]).startswith("caller-")
            await until(lambda: relay_of(server).ports.in_use == 0)
        finally:
            caller.close()
            callee.close()


async def one_call(caller: RawUa, callee: RawUa, kind: str) -> None:
    out: OutCall = await caller.call("402")
    if kind == "answer":
        await out.answered()
        await out.bye()
    elif kind == "busy":
        await out.failed(486)
    else:
        await out.ringing()
        await out.cancel()


async def test_no_relay_port_or_socket_leak_after_1000_short_calls(tmp_path: Path) -> None:
    async with running_switch(tmp_path, settings(ports="42000, 42399")) as (server, port):
        caller, callee = await lines(port)
        relay = relay_of(server)
        try:
            # Warm up (the first call answers the 407), then count sockets.
            await one_call(caller, callee, "answer")
            await relay_idle(relay)
            before = open_sockets()
            started = time.monotonic()
            kinds = ["answer"] * 900 + ["busy"] * 50 + ["cancel"] * 50
            for i, kind in enumerate(kinds):
                callee.answer = {"answer": 200, "busy": 486, "cancel": 180}[kind]
                await one_call(caller, callee, kind)
                if i % 100 == 99:
                    # The port range holds 200 pairs: a leak would exhaust it.
                    assert relay.ports.in_use <= 8
            elapsed = time.monotonic() - started
            assert elapsed < 60, elapsed
            await relay_idle(relay)
            assert open_sockets() == before
            assert server.b2bua is not None
            await until(lambda: not server.b2bua.calls if server.b2bua else True, 10)
            rows = cdr(server)
            assert len(rows) == 1001
            outcomes = {str(r["outcome"]) for r in rows}
            assert outcomes == {"answered", "busy", "cancelled"}
        finally:
            caller.close()
            callee.close()


def rtp_packet(seq: int, payload: bytes) -> bytes:
    return (
        bytes([0x80, 0x00])
        + seq.to_bytes(2, "big")
        + (seq * 160).to_bytes(4, "big")
        + (b"\x00\x00\x12\x34")
        + payload
    )


async def received(sock: socket.socket, within: float = 2.0) -> bytes:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recv(sock, 2048), within)


async def test_sdes_srtp_terminated_at_the_relay_towards_a_plain_phone(tmp_path: Path) -> None:
    phone_key = os.urandom(30)
    suite = "AES_CM_128_HMAC_SHA1_80"
    crypto = f"a=crypto:3 {suite} inline:{base64.b64encode(phone_key).decode()}\r\n"
    async with running_switch(tmp_path, settings()) as (server, port):
        caller, callee = await lines(port)
        a_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for sock in (a_rtp, b_rtp):
                sock.bind(("127.0.0.1", 0))
                sock.setblocking(False)
            callee.answer_sdp_port = b_rtp.getsockname()[1]
            out = await caller.call(
                "402", rtp_port=a_rtp.getsockname()[1], sdp_extra=crypto, proto="RTP/SAVP"
            )
            ok = await out.answered()
            (incoming,) = callee.incoming.values()
            offer = incoming.invite.body.decode()
            # The plain phone is offered plain RTP, without any key.
            assert " RTP/AVP " in offer
            assert "a=crypto" not in offer
            # The SRTP phone gets the switch's own key, same suite and tag.
            answer = SessionDescription.parse(ok.body)
            media = answer.media[0]
            assert media.proto == "RTP/SAVP"
            (ours,) = crypto_attributes(media)
            assert (ours.tag, ours.suite) == (3, suite)
            assert ours.key() != phone_key
            a_port, b_port = media.port, sdp_port(offer.encode())

            protect = SrtpKeys(suite, phone_key).session(inbound=False)
            unprotect = SrtpKeys(suite, ours.key()).session(inbound=True)
            # SRTP from the secure phone arrives decrypted at the plain phone...
            for seq in range(1, 6):
                a_rtp.sendto(protect.protect(rtp_packet(seq, b"\x11" * 160)), ("127.0.0.1", a_port))
                plain = await received(b_rtp)
                assert plain == rtp_packet(seq, b"\x11" * 160)
                # ...and the plain phone's RTP arrives encrypted with the switch's key.
                b_rtp.sendto(rtp_packet(seq, b"\x22" * 160), ("127.0.0.1", b_port))
                secure = await received(a_rtp)
                assert secure != rtp_packet(seq, b"\x22" * 160)
                assert unprotect.unprotect(secure) == rtp_packet(seq, b"\x22" * 160)
            await out.bye()
            await wait_done(callee, 1)
            await until(lambda: relay_of(server).ports.in_use == 0)
        finally:
            a_rtp.close()
            b_rtp.close()
            caller.close()
            callee.close()


async def test_graceful_stop_refuses_new_calls_drains_then_hangs_up(tmp_path: Path) -> None:
    extra = settings().replace("max_duration: 3600", "max_duration: 3600\n  drain_grace: 1")
    async with running_switch(tmp_path, extra) as (server, port):
        caller, callee = await lines(port)
        try:
            first = await caller.call("402")
            await first.answered()
            second = await caller.call("402")
            await second.answered()
            started = time.monotonic()
            server.handle_exit(signal.SIGTERM)
            assert server.b2bua is not None
            await asyncio.wait_for(server.b2bua.closing.wait(), 1)
            # Draining: a new call is refused 503 with Retry-After...
            refused = await caller.call("402")
            response = await refused.failed(503)
            assert response.headers.get("Retry-After")
            # ...a call may still end normally...
            await second.bye()
            # ...and the one left is hung up (BYE) once the grace period is over.
            await first.bye_received()
            assert 0.9 <= time.monotonic() - started < 3.0
            calls = await wait_done(callee, 2)
            assert [c.events[-1] for c in calls] == ["bye", "bye"]
            causes = sorted(str(r["cause"]) for r in cdr(server))
            assert causes[-1] == "shutdown"
            assert causes[0].startswith("caller-")
        finally:
            caller.close()
            callee.close()


async def test_a_call_out_cancelled_before_its_setup_runs_holds_no_trunk_slot(
    tmp_path: Path,
) -> None:
    """INVITE and CANCEL in one read batch (uvloop hands several datagrams at once):
    the call ends before its setup task runs, and the trunk is not counted for it."""
    async with running_switch(tmp_path, settings()) as (server, port):
        assert server.b2bua is not None
        assert server.stack is not None
        caller = await RawUa.open("401", "secret401", port)
        try:
            # Answer the 407 once (402 is not registered: 480).
            await (await caller.call("402")).failed(480)
            with caller.held() as sent:
                out = await caller.call("0612345678")  # a public number: out via the trunk
                caller.request(
                    "CANCEL", out.ruri, call_id=out.call_id, cseq=out.cseq,
                    from_tag=out.from_tag, to=out.to, branch=out.branch,
                )  # fmt: skip
            source = Endpoint("UDP", "127.0.0.1", caller.port)
            for data in sent:  # both handled before the loop runs the setup task
                server.stack.datagram_received(data, source)
            await out.failed(487)
            await until(lambda: relay_of(server).sessions == 0)
            assert dict(server.b2bua.active) == {}
            assert server.b2bua.stats["trunk_out"] == 0
        finally:
            caller.close()
