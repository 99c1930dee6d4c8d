"""Service numbers on live calls, in-process with raw SIP UAs over UDP.

The routing program of ``0800100100`` runs on real calls: limiter counted from
routing start to call end (full: the message as early media, then 486), a GNR
walked over two rounds with the causes in the CDR trace, the ATP played as
early media and skipped with ``#`` (RFC 4733), no 200 before a target answers.
Messages are tones written by the tests, so the audio that arrives is checked.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from media.g711 import ulaw_decode
from media.rtp import peek_header
from media.tone import detect, dominant_frequency, sine
from routing.limiter import number_key
from switch.app import Server, injected_clock
from tests.adapter.raw_ua import OutCall, RawUa, running_switch, sdp, wait_done
from tests.adapter.test_call_lifecycle import cdr, relay_idle, relay_of, settings, until

NUMBER = "0800100100"
ATP_NUMBER = "0891100100"

ROUTING = """\
messages:
  plein: {file: plein.wav}
  attente: {file: attente.wav}
  atp: {file: atp.wav}
programs:
  centre:
    steps:
      - type: gnr
        strategy: sequential
        targets: ["402", "403"]
        ring_s: 1
        rounds: 2
    overflow:
      busy: {message: plein}
      no_answer: {message: plein}
      limit: {message: plein}
  vers-402:
    steps:
      - {type: dial, number: "402", ring_s: 20}
numbers:
  "0800100100":
    program: %(program)s
    limit: 2
    domain: pbx.test
    overflow:
      limit: {message: plein}
  "0891100100":
    program: vers-402
    domain: pbx.test
    atp: {message: atp, skippable_with: "#", early: true}
"""


def tone_wav(path: Path, freq: float, ms: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(sine(freq, ms))


def write_routing(config: Path, program: str = "centre") -> None:
    routing = config / "routing"
    shutil.rmtree(routing)
    routing.mkdir()
    (routing / "test.yaml").write_text(ROUTING % {"program": program}, encoding="utf-8")
    messages = config / "messages"
    tone_wav(messages / "plein.wav", 1000, 1200)
    tone_wav(messages / "attente.wav", 1500, 600)
    tone_wav(messages / "atp.wav", 600, 12000)


@asynccontextmanager
async def service_switch(
    tmp_path: Path, program: str = "centre"
) -> AsyncIterator[tuple[Server, int]]:
    """The example config, its routing replaced by ``ROUTING`` (before the start)."""

    def prepare(config: Path) -> None:
        write_routing(config, program)

    async with running_switch(tmp_path, settings(), prepare=prepare) as running:
        yield running


class Rtp(asyncio.DatagramProtocol):
    """A caller's RTP socket: keeps what arrives (header fields and payload)."""

    def __init__(self) -> None:
        self.packets: list[tuple[int, int, bytes]] = []  # (pt, marker, payload)
        self.first = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        header = peek_header(data)
        if header is None:
            return
        self.packets.append((header[0], int(header[4]), data[12:]))
        self.first.set()

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def audio(self, pt: int = 0) -> bytes:
        return ulaw_decode(b"".join(p for t, _, p in self.packets if t == pt))

    def send_dtmf(self, digit_event: int, to: tuple[str, int]) -> None:
        """An RFC 4733 event (three end packets, as phones send them)."""
        assert self.transport is not None
        for seq, end in ((1, 0), (2, 0), (3, 0x80), (4, 0x80), (5, 0x80)):
            header = struct.pack("!BBHII", 0x80, 101, seq, 16000, 0x1234)
            payload = struct.pack("!BBH", digit_event, end | 10, 160 * seq)
            self.transport.sendto(header + payload, to)


async def rtp_socket() -> Rtp:
    loop = asyncio.get_running_loop()
    _, rtp = await loop.create_datagram_endpoint(Rtp, local_addr=("127.0.0.1", 0))
    return rtp


def finals(ua: RawUa, call_id: str) -> list[int]:
    """Final statuses ``ua`` received so far on ``call_id``, but the digest challenge."""
    return [s for s in ua.statuses.get(call_id, []) if s >= 200 and s != 407]


async def test_limiter_full_hears_the_message_then_486_and_counts_return_to_zero(
    tmp_path: Path,
) -> None:
    async with service_switch(tmp_path, "vers-402") as (server, port):
        callee = await RawUa.open("402", "secret402", port)
        await callee.register()
        caller = await RawUa.open("401", "secret401", port)
        first = await caller.call(NUMBER, rtp_port=4100)
        await first.answered()
        second = await caller.call(NUMBER, rtp_port=4102)
        await second.answered()
        b2bua = server.b2bua
        assert b2bua is not None
        key = number_key("+33800100100")
        assert b2bua.limiter.count(key) == 2

        # The third caller: 183 with our SDP, the message's audio, then 486.
        rtp = await rtp_socket()
        third_ua = await RawUa.open("403", "secret403", port)
        third = await third_ua.call(NUMBER, rtp_port=rtp.port)
        early = await third_ua.expect(third.call_id, status=183)
        assert b"m=audio " in early.body
        await asyncio.wait_for(rtp.first.wait(), 5)
        assert not [s for s in finals(third_ua, third.call_id) if s >= 200]
        await third.failed(486)
        assert detect(rtp.audio(), 8000, 1000) > 0.5  # the "plein" message
        assert b2bua.limiter.count(key) == 2

        # One call ends: the next call connects.
        await first.bye()
        await until(lambda: b2bua.limiter.count(key) == 1)
        fourth = await third_ua.call(NUMBER, rtp_port=4104)
        await fourth.answered()
        await second.bye()
        await fourth.bye()
        await until(lambda: b2bua.limiter.counts() == {})
        await relay_idle(relay_of(server))
        refused = [r for r in cdr(server) if r["cause"] == "limit"]
        assert len(refused) == 1
        assert refused[0]["messages"] == ["plein"]
        because = refused[0]["because"]
        assert isinstance(because, list)
        assert any("limiteur" in line and "plein" in line for line in because)
        for ua in (callee, caller, third_ua):
            ua.close()
        rtp.transport.close()  # type: ignore[union-attr]


async def test_limiter_slot_is_freed_by_cancel(tmp_path: Path) -> None:
    async with service_switch(tmp_path, "vers-402") as (server, port):
        callee = await RawUa.open("402", "secret402", port)
        callee.answer = 180
        await callee.register()
        caller = await RawUa.open("401", "secret401", port)
        call = await caller.call(NUMBER)
        await call.ringing()
        b2bua = server.b2bua
        assert b2bua is not None
        assert b2bua.limiter.count(number_key("+33800100100")) == 1
        await call.cancel()
        await until(lambda: b2bua.limiter.counts() == {})
        caller.close()
        callee.close()


async def test_gnr_rings_each_target_for_two_rounds_then_overflows_with_the_trace(
    tmp_path: Path,
) -> None:
    async with service_switch(tmp_path) as (server, port):
        busy = await RawUa.open("402", "secret402", port)
        busy.answer = 486
        await busy.register()
        silent = await RawUa.open("403", "secret403", port)
        silent.answer = 180
        await silent.register()
        caller = await RawUa.open("401", "secret401", port)
        rtp = await rtp_socket()
        call = await caller.call(NUMBER, rtp_port=rtp.port)
        await call.failed(486)  # busy ranks first (default precedence), after "plein"
        assert detect(rtp.audio(), 8000, 1000) > 0.5
        # 402 then 403, twice: two INVITEs each, in that order.
        assert len(busy.incoming) == 2
        assert len(silent.incoming) == 2
        await wait_done(silent, 2)
        assert all("cancel" in c.events for c in silent.incoming.values())
        row = next(r for r in cdr(server) if r["called"] == NUMBER)
        assert row["cause"] == "busy"
        because = row["because"]
        assert isinstance(because, list)
        trace = "\n".join(because)
        for expected in (
            "tour 1/2 → 402",
            "→ occupé (486)",
            "tour 1/2 → 403",
            "→ sans réponse (ring-timeout)",
            "tour 2/2 → 402",
            "tour 2/2 → 403",
        ):
            assert expected in trace, trace
        legs = row["legs"]
        assert isinstance(legs, list)
        targets = [leg["target"] for leg in legs if leg["role"] == "b"]
        assert targets == ["402", "403", "402", "403"]
        for ua in (busy, silent, caller):
            ua.close()
        rtp.transport.close()  # type: ignore[union-attr]


async def test_atp_is_early_media_skippable_with_hash_and_no_200_before_answer(
    tmp_path: Path,
) -> None:
    async with service_switch(tmp_path) as (server, port):
        callee = await RawUa.open("402", "secret402", port)
        callee.answer = 180
        await callee.register()
        caller = await RawUa.open("401", "secret401", port)
        rtp = await rtp_socket()
        call: OutCall = await caller.call(ATP_NUMBER, rtp_port=rtp.port)
        early = await caller.expect(call.call_id, status=183)
        relay_port = int(early.body.split(b"m=audio ")[1].split(b" ")[0])
        await asyncio.wait_for(rtp.first.wait(), 5)
        # The ATP (600 Hz) plays; the target is not rung yet.
        await until(lambda: len(rtp.packets) >= 25)
        assert detect(rtp.audio(), 8000, 600) > 0.5
        assert callee.incoming == {}
        rtp.send_dtmf(11, ("127.0.0.1", relay_port))  # '#'
        await until(lambda: len(callee.incoming) == 1)
        assert not [s for s in finals(caller, call.call_id) if s >= 200]
        # The target answers: now the caller gets its 200.
        incoming = next(iter(callee.incoming.values()))
        # The target's phone shows the caller as on any call (switch.features.phone_from).
        shown = incoming.invite.from_
        assert (shown.display, str(shown.uri)) == ('"Accueil"', "sip:+33140000401@pbx.test")
        callee.reply(incoming.invite, 200, tag=incoming.tag, body=sdp(4300))
        await call.answered()
        await call.bye()
        await until(lambda: bool(cdr(server)))
        row = cdr(server)[0]
        assert row["messages"] == ["atp"]
        because = row["because"]
        assert isinstance(because, list)
        assert "message interrompu par « # »" in because
        caller.close()
        callee.close()
        rtp.transport.close()  # type: ignore[union-attr]


async def test_ascension_day_gets_the_closed_message(tmp_path: Path) -> None:
    """config/example as is: ``centre-appels`` is closed on public holidays."""
    ascension = injected_clock(datetime(2026, 5, 14, 10, 0, tzinfo=ZoneInfo("Europe/Paris")))
    async with running_switch(tmp_path, settings(), wall=ascension) as (server, port):
        caller = await RawUa.open("401", "secret401", port)
        rtp = await rtp_socket()
        call = await caller.call(NUMBER, rtp_port=rtp.port)
        await caller.expect(call.call_id, status=183)
        await call.failed(480)
        # fermeture.wav: 440 Hz (not the network message's 425 Hz)
        assert dominant_frequency(rtp.audio(), 8000, [425, 440, 600, 1000]) == 440
        await until(lambda: bool(cdr(server)))
        row = cdr(server)[0]
        assert row["cause"] == "closed"
        assert row["messages"] == ["fermeture"]
        because = row["because"]
        assert isinstance(because, list)
        assert any("Ascension" in line for line in because), because
        caller.close()
        assert rtp.transport is not None
        rtp.transport.close()
