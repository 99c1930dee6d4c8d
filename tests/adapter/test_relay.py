"""The media relay on real UDP sockets (127.0.0.1): audio checked by frequency.

Fake phones are asyncio datagram endpoints. They send G.711 μ-law frames of a
sine through a relay session; the far phone decodes what arrives and
``tone.dominant_frequency`` says which tone crossed. No sleep synchronises
anything: tests await packets with a timeout, or the relay's tap (``accepted``);
a packet the relay should drop is followed by one it relays, whose arrival
proves the first was handled (one socket to one socket keeps the order).
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import pylibsrtp
import pytest
import uvloop

from media.g711 import ulaw_decode, ulaw_encode
from media.latching import LatchConfig
from media.player import Player
from media.ports import PortAllocator
from media.relay import MediaRelay, RelayLeg, RelaySession, SrtpKeys, SrtpKeysError
from media.rtp import RtpPacket, pack_header, peek_header
from media.tone import dominant_frequency, sine

TIMEOUT = 2.0
FRAME = 160  # 20 ms of PCMU at 8 kHz
CANDIDATES = (440.0, 1000.0, 2000.0)
PORTS = (46000, 47999)


def tone_frames(freq: float, n: int) -> list[bytes]:
    payload = ulaw_encode(sine(freq, 20 * n))
    return [payload[i * FRAME : (i + 1) * FRAME] for i in range(n)]


def heard(packets: list[bytes]) -> float | None:
    """The tone in a list of RTP packets (put in sequence order first)."""
    parsed = sorted((RtpPacket.parse(p) for p in packets), key=lambda p: p.sequence_number)
    pcm = ulaw_decode(b"".join(p.payload for p in parsed))
    return dominant_frequency(pcm, 8000, CANDIDATES)


class Phone(asyncio.DatagramProtocol):
    """One UDP socket of a fake phone; what arrives lands in a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.seq = 1000
        self.ts = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        return host, port

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, ("127.0.0.1", port))

    def send_rtp(
        self,
        frames: list[bytes],
        port: int,
        ssrc: int,
        *,
        protect: Callable[[bytes], bytes] | None = None,
    ) -> list[bytes]:
        sent = []
        for frame in frames:
            packet = pack_header(0, self.seq, self.ts, ssrc, False) + frame
            self.seq += 1
            self.ts += FRAME
            sent.append(packet)
            self.send(protect(packet) if protect else packet, port)
        return sent

    async def recv(self, n: int = 1) -> list[bytes]:
        out = []
        for _ in range(n):
            data, _ = await asyncio.wait_for(self.queue.get(), TIMEOUT)
            out.append(data)
        return out

    def pending(self) -> list[bytes]:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait()[0])
        return out


def accepted(leg: RelayLeg, n: int) -> asyncio.Future[None]:
    """Done when the relay has accepted ``n`` RTP packets from ``leg``'s phone.

    Counted by the leg's tap, which runs as the relay takes a packet in, before
    it relays it: call this before sending, await it with a timeout.
    """
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    count = 0

    def tap(_packet: bytes) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set_result(None)

    leg.on_rtp(tap)
    return done


@pytest.fixture
async def phones() -> AsyncIterator[Callable[[], Any]]:
    loop = asyncio.get_running_loop()
    made: list[asyncio.DatagramTransport] = []

    async def make() -> Phone:
        transport, protocol = await loop.create_datagram_endpoint(
            Phone, local_addr=("127.0.0.1", 0)
        )
        made.append(transport)
        return protocol

    yield make
    for transport in made:
        transport.close()


@pytest.fixture
async def relay() -> AsyncIterator[MediaRelay]:
    relay = MediaRelay(ports=PortAllocator(*PORTS), rtp_timeout=30.0)
    yield relay
    await relay.close()
    assert relay.ports.in_use == 0


async def bridged(
    relay: MediaRelay, phones: Callable[[], Any]
) -> tuple[RelaySession, Phone, Phone]:
    session = await relay.open_session("call")
    a, b = await phones(), await phones()
    session.a.set_remote(a.address)
    session.b.set_remote(b.address)
    return session, a, b


async def test_tones_cross_both_ways(relay: MediaRelay, phones: Callable[[], Any]) -> None:
    session, a, b = await bridged(relay, phones)
    sent_a = a.send_rtp(tone_frames(1000, 25), session.a.rtp_port, ssrc=0xA)
    b.send_rtp(tone_frames(2000, 25), session.b.rtp_port, ssrc=0xB)
    at_b, at_a = await b.recv(25), await a.recv(25)
    assert heard(at_b) == 1000.0
    assert heard(at_a) == 2000.0
    # Bridging passes packets through unchanged: SSRC, sequence, timestamp, payload.
    assert at_b == sent_a
    stats = session.stats()
    assert stats["a_packets_in"] == stats["b_packets_out"] == 25
    assert stats["b_packets_in"] == stats["a_packets_out"] == 25
    assert stats["a_bytes_in"] == 25 * (12 + FRAME)
    assert stats["dropped"] == 0


async def test_latches_to_the_nat_source_and_ignores_injection(
    phones: Callable[[], Any],
) -> None:
    relay = MediaRelay(ports=PortAllocator(*PORTS), latch=LatchConfig(packets=3, quiet=30.0))
    try:
        session = await relay.open_session("nat")
        private, nated, b, intruder = [await phones() for _ in range(4)]
        session.a.set_remote(private.address)  # what A's SDP says
        session.b.set_remote(b.address)
        # A speaks from its NAT mapping: probation drops 2 packets, the 3rd latches.
        a_frames = tone_frames(1000, 25)
        nated.send_rtp(a_frames, session.a.rtp_port, ssrc=0xA)
        at_b = await b.recv(23)
        assert heard(at_b) == 1000.0
        assert session.a.latched == nated.address
        # B's audio now goes to the NAT mapping, not to the SDP address.
        b.send_rtp(tone_frames(2000, 25), session.b.rtp_port, ssrc=0xB)
        assert heard(await nated.recv(25)) == 2000.0
        assert private.pending() == []
        # A third address injects a clean stream: dropped. Then A speaks again.
        intruder.send_rtp(tone_frames(440, 10), session.a.rtp_port, ssrc=0xE)
        nated.send_rtp(tone_frames(1000, 1), session.a.rtp_port, ssrc=0xA)
        (packet,) = await b.recv(1)
        assert peek_header(packet)[3] == 0xA  # type: ignore[index]
        assert b.pending() == []
        stats = session.stats()
        assert stats["dropped"] == 2 + 10
        assert stats["a_latches"] == 1
        assert session.a.latched == nated.address
    finally:
        await relay.close()


async def test_hold_sends_nothing_then_resume(relay: MediaRelay, phones: Callable[[], Any]) -> None:
    session, a, b = await bridged(relay, phones)
    session.b.set_remote(None)  # B's re-INVITE with c=0.0.0.0
    taken = accepted(session.a, 5)
    a.send_rtp(tone_frames(1000, 5), session.a.rtp_port, ssrc=0xA)
    await asyncio.wait_for(taken, TIMEOUT)
    session.b.set_remote(("0.0.0.0", b.address[1]))
    taken = accepted(session.a, 5)
    a.send_rtp(tone_frames(1000, 5), session.a.rtp_port, ssrc=0xA)
    await asyncio.wait_for(taken, TIMEOUT)
    assert b.pending() == []
    assert session.stats()["a_packets_in"] == 10
    assert session.stats()["b_packets_out"] == 0
    session.b.set_remote(b.address)  # resume
    a.send_rtp(tone_frames(1000, 25), session.a.rtp_port, ssrc=0xA)
    assert heard(await b.recv(25)) == 1000.0


async def test_direction_sendonly_and_inactive(
    relay: MediaRelay, phones: Callable[[], Any]
) -> None:
    session, a, b = await bridged(relay, phones)
    session.a.set_direction(sends=True, receives=False)  # A holds with a=sendonly (MOH)
    session.b.set_direction(sends=False, receives=True)
    taken = accepted(session.b, 5)
    b.send_rtp(tone_frames(2000, 5), session.b.rtp_port, ssrc=0xB)
    a.send_rtp(tone_frames(440, 25), session.a.rtp_port, ssrc=0xA)
    assert heard(await b.recv(25)) == 440.0
    await asyncio.wait_for(taken, TIMEOUT)
    assert a.pending() == []
    assert session.stats()["a_packets_out"] == 0


@pytest.mark.parametrize("suite", ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"])
async def test_srtp_on_leg_a_only(relay: MediaRelay, phones: Callable[[], Any], suite: str) -> None:
    session, a, b = await bridged(relay, phones)
    phone_key, relay_key = bytes(range(30)), bytes(range(100, 130))
    session.a.set_srtp(inbound=SrtpKeys(suite, phone_key), outbound=SrtpKeys(suite, relay_key))
    profile = {
        "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    }[suite]
    a_tx = pylibsrtp.Session(
        pylibsrtp.Policy(phone_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
    )
    a_rx = pylibsrtp.Session(
        pylibsrtp.Policy(relay_key, pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
    )
    sent = a.send_rtp(tone_frames(1000, 25), session.a.rtp_port, ssrc=0xA, protect=a_tx.protect)
    at_b = await b.recv(25)
    assert at_b == sent  # decrypted to the very packets A encrypted
    assert heard(at_b) == 1000.0

    b_sent = b.send_rtp(tone_frames(2000, 25), session.b.rtp_port, ssrc=0xB)
    at_a = await a.recv(25)
    assert all(len(p) > 12 + FRAME for p in at_a)  # auth tag: really SRTP
    plain = [a_rx.unprotect(p) for p in at_a]
    assert plain == b_sent
    assert heard(plain) == 2000.0

    # SRTCP from A arrives at B as plain RTCP; a forged SRTP packet is dropped.
    rtcp_a, rtcp_b = await phones(), await phones()
    session.a.set_remote(a.address, rtcp_a.address)
    session.b.set_remote(b.address, rtcp_b.address)
    report = bytes([0x81, 201, 0, 1]) + (0xA).to_bytes(4, "big")
    rtcp_a.send(a_tx.protect_rtcp(report), session.a.rtcp_port)
    assert await rtcp_b.recv(1) == [report]
    a.send(pack_header(0, 5000, 0, 0xA, False) + bytes(FRAME + 10), session.a.rtp_port)
    after = a.send_rtp(tone_frames(1000, 1), session.a.rtp_port, ssrc=0xA, protect=a_tx.protect)
    assert await b.recv(1) == after
    assert session.stats()["srtp_errors"] == 1


def test_srtp_keys_are_checked() -> None:
    with pytest.raises(SrtpKeysError, match="unsupported"):
        SrtpKeys("F8_128_HMAC_SHA1_80", bytes(30))
    with pytest.raises(SrtpKeysError, match="30 bytes"):
        SrtpKeys("AES_CM_128_HMAC_SHA1_80", bytes(16))


async def test_player_then_bridging_with_marker(
    relay: MediaRelay, phones: Callable[[], Any]
) -> None:
    session, a, b = await bridged(relay, phones)
    done = asyncio.get_running_loop().create_future()
    player = Player(tone_frames(440, 15), pt=0, ssrc=0x5EED, seq0=7, ts0=0)
    session.b.play(player, on_done=lambda: done.set_result(True))
    assert session.b.playing
    # While the announcement plays, what A says does not reach B.
    a.send_rtp(tone_frames(1000, 5), session.a.rtp_port, ssrc=0xA)
    await asyncio.wait_for(done, TIMEOUT)
    played = await b.recv(15)
    assert {peek_header(p)[3] for p in played} == {0x5EED}  # type: ignore[index]
    assert [peek_header(p)[1] for p in played] == list(range(7, 22))  # type: ignore[index]
    assert heard(played) == 440.0
    assert b.pending() == []
    # Bridging again: A's stream, the first packet with the marker bit.
    a.send_rtp(tone_frames(1000, 25), session.a.rtp_port, ssrc=0xA)
    bridged_packets = await b.recv(25)
    headers = [peek_header(p) for p in bridged_packets]
    assert [h[4] for h in headers] == [True] + [False] * 24  # type: ignore[index]
    assert {h[3] for h in headers} == {0xA}  # type: ignore[index]
    assert heard(bridged_packets) == 1000.0


async def test_play_none_stops_early_and_bridges(
    relay: MediaRelay, phones: Callable[[], Any]
) -> None:
    session, a, b = await bridged(relay, phones)
    session.b.play(Player(tone_frames(440, 500), pt=0, ssrc=0x5EED, seq0=0, ts0=0))
    await b.recv(1)
    session.b.play(None)
    assert not session.b.playing
    a.send_rtp(tone_frames(1000, 2), session.a.rtp_port, ssrc=0xA)
    # Player packets sent before play(None) may still be on their way: not A's.
    headers: list[tuple[int, int, int, int, bool]] = []
    while len(headers) < 2:
        (packet,) = await b.recv(1)
        header = peek_header(packet)
        assert header is not None
        if header[3] != 0x5EED:
            headers.append(header)
    assert [(h[3], h[4]) for h in headers] == [(0xA, True), (0xA, False)]  # SSRC, marker


class CountingPlayer(Player):
    """A player that counts how often the relay asks it for packets."""

    asked = 0

    def due(self, now: float) -> list[bytes]:
        self.asked += 1
        return super().due(now)


def test_player_on_uvloop_wakes_once_per_frame() -> None:
    """uvloop's clock counts whole milliseconds and it rounds a timer's delay to the
    nearest one, so it runs a timer up to 0.5 ms before its deadline. The relay takes
    the loop's word for it: one wake-up per frame, not a busy loop until the clock
    ticks over (the production loop is uvloop: ``switch.app``)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        relay = MediaRelay(ports=PortAllocator(*PORTS))
        transport, b = await loop.create_datagram_endpoint(Phone, local_addr=("127.0.0.1", 0))
        try:
            session = await relay.open_session("uvloop")
            session.b.set_remote(b.address)
            done = loop.create_future()
            # Every deadline 0.4 ms past a whole millisecond: uvloop runs each timer early.
            start = loop.time() + 0.0104
            player = CountingPlayer(tone_frames(440, 25), pt=0, ssrc=1, seq0=0, ts0=0, start=start)
            session.b.play(player, on_done=lambda: done.set_result(None))
            await asyncio.wait_for(done, TIMEOUT)
            assert heard(await b.recv(25)) == 440.0
            assert player.asked <= 1 + 25  # play() itself, then at most once per frame
        finally:
            transport.close()
            await relay.close()
        assert relay.ports.in_use == 0

    uvloop.run(main())


async def test_rtp_timeout_fires_once_and_only_when_answered(phones: Callable[[], Any]) -> None:
    relay = MediaRelay(ports=PortAllocator(*PORTS), rtp_timeout=0.2)
    try:
        session, _, _ = await bridged(relay, phones)
        fired: list[tuple[RelaySession, str]] = []
        event = asyncio.Event()

        def on_timeout(s: RelaySession, reason: str) -> None:
            fired.append((s, reason))
            event.set()

        session.on_timeout(on_timeout)
        with pytest.raises(TimeoutError):  # ringing: silence is normal
            await asyncio.wait_for(event.wait(), 0.4)
        session.set_answered(True)
        loop = asyncio.get_running_loop()
        answered_at = loop.time()
        await asyncio.wait_for(event.wait(), TIMEOUT)
        assert loop.time() - answered_at >= 0.2
        assert fired == [(session, "rtp_timeout")]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 0.3)
        assert len(fired) == 1
    finally:
        await relay.close()


async def test_rtp_keeps_an_answered_call_alive(phones: Callable[[], Any]) -> None:
    relay = MediaRelay(ports=PortAllocator(*PORTS), rtp_timeout=0.15)
    try:
        session, a, b = await bridged(relay, phones)
        fired: list[str] = []
        session.on_timeout(lambda s, reason: fired.append(reason))
        session.set_answered(True)
        frames = tone_frames(1000, 25)
        for frame in frames:  # 0.5 s of real-time audio both ways
            a.send_rtp([frame], session.a.rtp_port, ssrc=0xA)
            b.send_rtp([frame], session.b.rtp_port, ssrc=0xB)
            await b.recv(1)
            await a.recv(1)
            await asyncio.sleep(0.02)  # pacing the phones, not synchronising
        assert fired == []
    finally:
        await relay.close()


async def test_rtcp_relayed_both_ways(relay: MediaRelay, phones: Callable[[], Any]) -> None:
    session = await relay.open_session("rtcp")
    a, a_rtcp, b, b_rtcp = [await phones() for _ in range(4)]
    session.a.set_remote(a.address, a_rtcp.address)
    session.b.set_remote(b.address, b_rtcp.address)
    rr_a = bytes([0x81, 201, 0, 7]) + (0xA).to_bytes(4, "big") + bytes(24)
    rr_b = bytes([0x81, 201, 0, 7]) + (0xB).to_bytes(4, "big") + bytes(24)
    a_rtcp.send(rr_a, session.a.rtcp_port)
    b_rtcp.send(rr_b, session.b.rtcp_port)
    assert await b_rtcp.recv(1) == [rr_a]
    assert await a_rtcp.recv(1) == [rr_b]
    # Not RTCP on the RTCP port: dropped (the report behind it crosses alone).
    a_rtcp.send(b"\x80\x00" + bytes(20), session.a.rtcp_port)
    a_rtcp.send(rr_a, session.a.rtcp_port)
    assert await b_rtcp.recv(1) == [rr_a]
    stats = session.stats()
    assert stats["dropped"] == 1
    assert (stats["a_rtcp_in"], stats["b_rtcp_out"]) == (2, 2)
    assert (stats["b_rtcp_in"], stats["a_rtcp_out"]) == (1, 1)


def _clear(data: bytes) -> bytes:
    return data


@pytest.mark.parametrize("srtp", [False, True], ids=["rtp", "srtp"])
async def test_rtcp_mux_on_one_leg(
    relay: MediaRelay, phones: Callable[[], Any], srtp: bool
) -> None:
    """RFC 5761: A multiplexes RTCP on its RTP port (SDP rtcp = rtp) behind a NAT; B does not."""
    session = await relay.open_session("mux")
    private, a, b, b_rtcp = [await phones() for _ in range(4)]
    session.a.set_remote(private.address, private.address)  # A's SDP: one address for both
    session.b.set_remote(b.address, b_rtcp.address)
    protect: Callable[[bytes], bytes] = _clear
    protect_rtcp: Callable[[bytes], bytes] = _clear
    unprotect_rtcp: Callable[[bytes], bytes] = _clear
    if srtp:
        phone_key, relay_key = bytes(range(30)), bytes(range(100, 130))
        suite = "AES_CM_128_HMAC_SHA1_80"
        session.a.set_srtp(SrtpKeys(suite, phone_key), SrtpKeys(suite, relay_key))
        profile = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
        a_tx = pylibsrtp.Session(
            pylibsrtp.Policy(phone_key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
        )
        a_rx = pylibsrtp.Session(
            pylibsrtp.Policy(relay_key, pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
        )
        protect, protect_rtcp, unprotect_rtcp = a_tx.protect, a_tx.protect_rtcp, a_rx.unprotect_rtcp
    rr_a = bytes([0x81, 201, 0, 7]) + (0xA).to_bytes(4, "big") + bytes(24)
    rr_b = bytes([0x81, 201, 0, 7]) + (0xB).to_bytes(4, "big") + bytes(24)
    # A speaks from its NAT mapping: probation drops 2 packets, the 3rd latches.
    sent = a.send_rtp(tone_frames(1000, 5), session.a.rtp_port, ssrc=0xA, protect=protect)
    assert await b.recv(3) == sent[2:]
    # B's RTCP reaches A's one port (the latched mapping, not port + 1), from the
    # relay port A sends to.
    b_rtcp.send(rr_b, session.b.rtcp_port)
    data, source = await asyncio.wait_for(a.queue.get(), TIMEOUT)
    assert source == ("127.0.0.1", session.a.rtp_port)
    assert unprotect_rtcp(data) == rr_b
    # A's RTCP on the RTP port is told apart and leaves on B's RTCP port.
    a.send(protect_rtcp(rr_a), session.a.rtp_port)
    assert await b_rtcp.recv(1) == [rr_a]
    assert b.pending() == []
    assert private.pending() == []
    stats = session.stats()
    assert (stats["a_packets_in"], stats["a_rtcp_in"], stats["b_rtcp_out"]) == (3, 1, 1)
    assert (stats["b_rtcp_in"], stats["a_rtcp_out"]) == (1, 1)
    assert (stats["dropped"], stats["srtp_errors"]) == (2, 0)


def _open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue  # the listing's own fd, gone already
    return count


async def test_thousand_sessions_leave_no_port_and_no_socket() -> None:
    ports = PortAllocator(*PORTS)
    relay = MediaRelay(ports=ports)
    baseline = _open_sockets()
    for batch in range(20):
        sessions = await asyncio.gather(*(relay.open_session(f"s{batch}-{i}") for i in range(50)))
        assert relay.sessions == 50
        assert _open_sockets() == baseline + 50 * 4
        for session in sessions:
            session.close()
            session.close()  # idempotent
        assert ports.in_use == 0
        await asyncio.gather(*(s.wait_closed() for s in sessions))
    await relay.close()
    assert relay.sessions == 0
    assert ports.in_use == 0
    assert _open_sockets() == baseline


async def test_busy_port_is_skipped(phones: Callable[[], Any]) -> None:
    squatter = await phones()
    port = squatter.address[1] & ~1
    # A range whose first pair is taken by someone else.
    relay = MediaRelay(ports=PortAllocator(port, port + 9))
    try:
        session = await relay.open_session("x")
        assert port not in (session.a.rtp_port, session.b.rtp_port)
    finally:
        await relay.close()
    assert relay.ports.in_use == 0


def held_like_a_call(session: RelaySession) -> dict[str, RelaySession]:
    """As the B2BUA holds a session: its call refers to the session, and the
    session's timeout callback refers back to the call."""
    call = {"session": session}
    session.on_timeout(lambda _s, _reason: call.clear())
    return call


async def test_a_closed_session_is_freed_without_the_cycle_collector(
    relay: MediaRelay, phones: Callable[[], Any]
) -> None:
    """A finished call's session, legs and timeout callback form no reference cycle:
    reference counting frees them as soon as the sockets are closed, so a busy
    switch does not pay cyclic-GC passes per call."""
    session, a, b = await bridged(relay, phones)
    call = held_like_a_call(session)
    a.send_rtp(tone_frames(1000, 3), session.a.rtp_port, ssrc=0xA)
    await b.recv(3)
    gone = weakref.ref(session)
    legs = weakref.ref(session.a), weakref.ref(session.b)
    gc.disable()
    try:
        session.close()
        await session.wait_closed()
        del session, call
        assert gone() is None
        assert [leg() for leg in legs] == [None, None]
    finally:
        gc.enable()


async def test_pool_reuses_the_sockets_of_finished_sessions(phones: Callable[[], Any]) -> None:
    ports = PortAllocator(*PORTS)
    relay = MediaRelay(ports=ports, pool=4, quarantine=0.0)
    a, b = await phones(), await phones()
    baseline = _open_sockets()
    first = await relay.open_session("first")
    used = {first.a.rtp_port, first.b.rtp_port}
    first.close()
    # Parked: bound still, yet in no session and not in use.
    assert ports.in_use == 0
    assert ports.parked == 2
    assert _open_sockets() == baseline + 4
    await first.wait_closed()  # its sockets are the pool's now: nothing to wait for
    second = await relay.open_session("second")
    assert {second.a.rtp_port, second.b.rtp_port} == used
    assert _open_sockets() == baseline + 4
    assert ports.parked == 0
    # The new session's legs relay (the old ones no longer do).
    second.a.set_remote(a.address)
    second.b.set_remote(b.address)
    a.send_rtp(tone_frames(1000, 25), second.a.rtp_port, ssrc=0xA)
    assert heard(await b.recv(25)) == 1000.0
    assert first.stats()["a_packets_in"] == 0
    second.close()
    await relay.close()
    assert ports.in_use == ports.parked == 0
    assert _open_sockets() == baseline


async def test_parked_pair_drops_what_arrives_and_waits_its_quarantine(
    phones: Callable[[], Any],
) -> None:
    ports = PortAllocator(*PORTS)
    relay = MediaRelay(ports=ports, pool=4, quarantine=30.0)
    try:
        first = await relay.open_session("first")
        old = first.a.rtp_port
        first.close()
        stray = await phones()
        stray.send_rtp(tone_frames(440, 3), old, ssrc=1)  # late packets of that call
        # Within its quarantine a parked pair is not handed out while ports are free.
        second = await relay.open_session("second")
        assert old not in (second.a.rtp_port, second.b.rtp_port)
        assert ports.parked == 2
        second.close()
    finally:
        await relay.close()
    assert ports.in_use == ports.parked == 0


async def test_pool_is_bounded_and_a_full_range_takes_from_it() -> None:
    baseline = _open_sockets()
    # Two pairs in the range, a pool of one: the other pair closes.
    ports = PortAllocator(PORTS[0], PORTS[0] + 3)
    relay = MediaRelay(ports=ports, pool=1, quarantine=30.0)
    try:
        first = await relay.open_session("first")
        first.close()
        await first.wait_closed()
        assert ports.parked == 1
        assert _open_sockets() == baseline + 2
    finally:
        await relay.close()
    assert _open_sockets() == baseline
    # A pool of two: with no port free, parked pairs are handed out in quarantine.
    relay = MediaRelay(ports=ports, pool=2, quarantine=30.0)
    try:
        first = await relay.open_session("first")
        used = {first.a.rtp_port, first.b.rtp_port}
        first.close()
        assert ports.available == 0
        second = await relay.open_session("second")
        assert {second.a.rtp_port, second.b.rtp_port} == used
        second.close()
    finally:
        await relay.close()
    assert ports.in_use == ports.parked == 0
    assert _open_sockets() == baseline


async def test_pool_closes_pairs_parked_longer_than_linger() -> None:
    ports = PortAllocator(*PORTS)
    relay = MediaRelay(ports=ports, pool=4, quarantine=0.0, linger=0.05)
    baseline = _open_sockets()
    try:
        session = await relay.open_session("first")
        session.close()
        assert ports.parked == 2
        for _ in range(int(TIMEOUT / 0.01)):  # until the timer closed the pair
            if not ports.parked and _open_sockets() == baseline:
                break
            await asyncio.sleep(0.01)
        assert ports.parked == 0
        assert ports.available == ports.capacity
        assert _open_sockets() == baseline
    finally:
        await relay.close()


async def test_busy_free_ports_fall_back_to_pairs_in_quarantine() -> None:
    """The pool holds the range but for one free pair that another socket keeps:
    a new session takes the parked pairs, quarantine or not, rather than fail."""
    ports = PortAllocator(PORTS[0], PORTS[0] + 5)  # three pairs
    relay = MediaRelay(ports=ports, pool=2, quarantine=30.0)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        first = await relay.open_session("first")
        used = {first.a.rtp_port, first.b.rtp_port}
        (free,) = {PORTS[0], PORTS[0] + 2, PORTS[0] + 4} - used
        squatter.bind(("127.0.0.1", free))
        first.close()
        assert (ports.parked, ports.available) == (2, 1)
        second = await relay.open_session("second")
        assert {second.a.rtp_port, second.b.rtp_port} == used
        second.close()
    finally:
        squatter.close()
        await relay.close()
    assert ports.in_use == ports.parked == 0
