"""Star codes on live calls, in-process with raw SIP UAs over UDP.

Every code of STAR-CODES.md is dialled on a running switch: the call is
answered, the confirmation tone that arrives in the caller's RTP is named by its
cadence (``tests.features_support.confirmation``), the switch hangs up (BYE),
and the line's settings in the store are what the code says, stored before the
confirmation was heard (read while the switch still runs). Malformed codes get
the refused tone and change nothing. Speed dials and ``*66*`` go out through a
trunk (a raw UA on a free port, named as the trunk in switch.yaml): what it
receives is checked there.
"""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from media.g711 import ulaw_decode, ulaw_encode
from media.tone import detect, dominant_frequency, sine
from routing.linesettings import LineSettings, VoicePresentation
from switch.app import Server
from switch.line_settings import SqliteLineSettingsStore, line_settings_db_path
from switch.sip.message import Request
from tests.adapter.raw_ua import RawUa, running_switch, sdp, sdp_port
from tests.adapter.test_call_lifecycle import cdr, settings, until
from tests.adapter.test_service import Rtp, rtp_socket
from tests.features_support import confirmation
from tests.sip_support import free_port

Check = Callable[[LineSettings], bool]


def stored(server: Server, key: str) -> LineSettings:
    """The line's settings as the store file holds them (another connection)."""
    store = SqliteLineSettingsStore(line_settings_db_path(server.data_dir))
    try:
        return store.load(key)
    finally:
        store.close()


async def dial_code(ua: RawUa, code: str) -> tuple[str | None, int]:
    """Dial ``code``; the confirmation heard and the number of RTP packets."""
    rtp: Rtp = await rtp_socket()
    try:
        out = await ua.call(code.replace("#", "%23"), rtp_port=rtp.port)
        await out.answered()
        await out.bye_received()
        return confirmation(rtp.audio(), 8000), len(rtp.packets)
    finally:
        assert rtp.transport is not None
        rtp.transport.close()


def fw(**expected: object) -> Check:
    def check(s: LineSettings) -> bool:
        return all(getattr(s.forwarding, k) == v for k, v in expected.items())

    return check


def unchanged(s: LineSettings) -> bool:
    return s == LineSettings()


# (code, confirmation, check of the stored settings after it), in order, per line.
SEQUENCES: dict[str, list[tuple[str, str, Check]]] = {
    "401": [
        ("**65", "inactive", lambda s: not s.clir),
        ("*65*1", "accepted", lambda s: s.clir),
        ("**65", "active", lambda s: s.clir),
        ("*65*1#", "accepted", lambda s: s.clir),  # twice: accepted twice
        ("*65*0", "accepted", lambda s: not s.clir),
        ("*35*1", "refused", lambda s: not s.pre_answer.active),  # nothing recorded
        ("*35*0", "accepted", lambda s: not s.pre_answer.active),
        ("**35", "inactive", lambda s: not s.pre_answer.plays),
        ("*89*1", "accepted", lambda s: s.forward_protection),
        ("**89", "active", lambda s: s.forward_protection),
        ("*89*0", "accepted", lambda s: not s.forward_protection),
        ("**89", "inactive", lambda s: not s.forward_protection),
    ],
    "402": [
        ("**24", "inactive", fw(unreachable=None)),
        ("*24", "refused", fw(unreachable=None)),  # no last destination yet
        ("*24*0612345678", "accepted", fw(unreachable="+33612345678")),
        ("**24", "active", fw(unreachable="+33612345678")),
        ("*24*0", "accepted", fw(unreachable=None, last_destination="+33612345678")),
        ("*24", "accepted", fw(unreachable="+33612345678")),
        ("*24*0", "accepted", fw(unreachable=None)),
        ("*27*403", "accepted", fw(unreachable="403", no_answer="403")),
        ("**27", "active", fw(unreachable="403", no_answer="403")),
        ("*27*0", "accepted", fw(unreachable=None, no_answer=None)),
        ("**27", "inactive", fw(unreachable=None, no_answer=None)),
        ("*27", "accepted", fw(unreachable="403", no_answer="403")),
        ("*27*0", "accepted", fw(unreachable=None, no_answer=None)),
        ("*24*402", "refused", fw(unreachable=None)),  # itself
        ("*30*500", "accepted", lambda s: s.left_groups == {"500"}),
        ("*31*500", "accepted", lambda s: s.left_groups == frozenset()),
        ("*30", "accepted", lambda s: s.left_groups == {"500", "999"}),
        ("*31", "accepted", lambda s: s.left_groups == frozenset()),
        ("*30*501", "refused", lambda s: s.left_groups == frozenset()),  # unknown group
    ],
    "403": [
        ("**21*0612345678#", "accepted", fw(unconditional="+33612345678")),
        ("*#21#", "active", fw(unconditional="+33612345678")),
        ("##21#", "accepted", fw(unconditional=None)),
        ("*#21#", "inactive", fw(unconditional=None)),
        ("**61*0612345678*30#", "accepted", fw(no_answer="+33612345678", ring_s=30)),
        ("*#61#", "active", fw(no_answer="+33612345678")),
        ("##61#", "accepted", fw(no_answer=None)),
        ("**62*405#", "accepted", fw(unreachable="405")),
        ("*#62#", "active", fw(unreachable="405")),
        ("##62#", "accepted", fw(unreachable=None)),
        ("**67*405#", "accepted", fw(busy="405")),
        ("*#67#", "active", fw(busy="405")),
        ("##67#", "accepted", fw(busy=None)),
        ("**67*405#", "accepted", fw(busy="405")),
        ("**62*405#", "accepted", fw(busy="405", unreachable="405")),
        ("##004#", "accepted", fw(busy=None, unreachable=None)),
        ("**21*405#", "accepted", fw(unconditional="405")),
        ("**67*405#", "accepted", fw(busy="405")),
        ("##002#", "accepted", fw(unconditional=None, busy=None)),
    ],
    "404": [
        *(
            (f"*33*{n}", "accepted", lambda s, n=n: s.voice_presentation == VoicePresentation(n))
            for n in (1, 2, 3, 4, 5)
        ),
        ("**33", "active", lambda s: s.voice_presentation == VoicePresentation.ALL),
        ("*33*0", "accepted", lambda s: s.voice_presentation == VoicePresentation.OFF),
        ("**33", "inactive", lambda s: s.voice_presentation == VoicePresentation.OFF),
    ],
}


async def run_sequence(server: Server, port: int, line: str) -> list[str]:
    """Dial the line's codes in order; the mismatches, as readable lines."""
    ua = await RawUa.open(line, f"secret{line}", port)
    problems = []
    try:
        for code, expected, check in SEQUENCES[line]:
            heard, packets = await dial_code(ua, code)
            settings_now = stored(server, f"{line}@pbx.test")
            if heard != expected:
                problems.append(f"{line} {code}: heard {heard} ({packets} packets), not {expected}")
            if not check(settings_now):
                problems.append(f"{line} {code}: stored {settings_now}")
    finally:
        ua.close()
    return problems


async def test_every_code_confirms_and_stores_its_effect(tmp_path: Path) -> None:
    async with running_switch(tmp_path, settings()) as (server, port):
        results = await asyncio.gather(*(run_sequence(server, port, line) for line in SEQUENCES))
        problems = [p for result in results for p in result]
        assert problems == []
        # The CDR: one row per code, the dialled string, the cause and the trace.
        await until(lambda: len(cdr(server)) == sum(map(len, SEQUENCES.values())))
        row = next(r for r in cdr(server) if r["called"] == "*65*1")
        assert row["cause"] == "star-code-accepted"
        because = row["because"]
        assert isinstance(because, list)
        assert "numéro masqué sur tous les appels" in because


@pytest.mark.parametrize("code", ["*65*2", "*24*06", "*99", "#12#", "*31*5000"])
async def test_a_malformed_code_gets_the_refused_tone_and_changes_nothing(
    tmp_path: Path, code: str
) -> None:
    async with running_switch(tmp_path, settings()) as (server, port):
        ua = await RawUa.open("401", "secret401", port)
        try:
            heard, _ = await dial_code(ua, code)
        finally:
            ua.close()
        assert heard == "refused"
        assert stored(server, "401@pbx.test") == LineSettings()
        assert server.b2bua is not None
        assert server.b2bua.stats["trunk_out"] == 0  # never sent to a trunk


def trunk_settings(trunk_port: int) -> str:
    return settings() + (
        "trunks:\n"
        "  - name: carrier\n"
        f"    address: {{host: 127.0.0.1, port: {trunk_port}}}\n"
        "    transport: udp\n"
        "    number_format: e164\n"
    )


async def open_trunk(port: int, sip_port: int) -> RawUa:
    """A raw UA on ``port`` playing the trunk: answers every INVITE 486."""
    loop = asyncio.get_running_loop()
    _, trunk = await loop.create_datagram_endpoint(
        lambda: RawUa("carrier", "", sip_port), local_addr=("127.0.0.1", port)
    )
    trunk.answer = 486
    return trunk


async def test_voicemail_group_and_pickup_are_released_with_a_clear_cause(
    tmp_path: Path,
) -> None:
    async with running_switch(tmp_path, settings()) as (server, port):
        ua = await RawUa.open("401", "secret401", port)
        try:
            for code, status in (("888", 480), ("999", 480), ("*8*402", 480), ("*8*499", 404)):
                out = await ua.call(code)
                response = await out.failed(status)
                assert response.reason, code
        finally:
            ua.close()
        await until(lambda: len(cdr(server)) == 4)
        causes = {str(r["called"]): r["cause"] for r in cdr(server)}
        assert causes == {
            "888": "voicemail-unavailable",
            "999": "unreachable",  # the Standard: no other phone is registered
            "*8*402": "pickup-nothing",
            "*8*499": "pickup-unknown",
        }


async def test_speed_dial_goes_out_as_if_dialled_and_unknown_code_is_404(tmp_path: Path) -> None:
    trunk_port = free_port()
    async with running_switch(tmp_path, trunk_settings(trunk_port)) as (_, port):
        trunk = await open_trunk(trunk_port, port)
        ua = await RawUa.open("401", "secret401", port)
        try:
            out = await ua.call("701")  # directory: 701 -> 06 39 98 12 34 (Mayotte)
            await out.failed(486)
            (invite,) = (c.invite for c in trunk.incoming.values())
            assert str(invite.uri).startswith("sip:+262639981234@127.0.0.1")
            unknown = await ua.call("702")
            await unknown.failed(404)
            assert len(trunk.incoming) == 1
        finally:
            ua.close()
            trunk.close()
        # The restriction profile applies to the number behind the code: 601 has
        # profile 1 (emergency and free numbers), so a mobile is barred.
        ua = await RawUa.open("601", "secret601", port)
        try:
            barred = await ua.call("701")
            response = await barred.failed(403)
            assert response.reason
        finally:
            ua.close()


def rtp_audio(seq: int, payload: bytes) -> bytes:
    header = bytes([0x80, 0x00]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big")
    return header + b"\x00\x00\xab\xcd" + payload


async def speak(rtp: Rtp, relay: tuple[str, int], freq: int, duration_ms: int) -> None:
    """The caller's voice (a ``freq`` Hz tone) to ``relay``, paced as a phone sends it
    (one 20 ms PCMU packet every 20 ms)."""
    voice = ulaw_encode(sine(freq, duration_ms))
    assert rtp.transport is not None
    for i in range(duration_ms // 20):
        rtp.transport.sendto(rtp_audio(i + 1, voice[i * 160 : (i + 1) * 160]), relay)
        await asyncio.sleep(0.02)


async def test_record_pre_answer_with_hash_then_activate_it(tmp_path: Path) -> None:
    """``*35*2``: a beep, the caller's audio until ``#`` stored as a WAV in the data
    directory, the accepted tone; then ``*35*1`` is accepted and ``**35`` active."""
    async with running_switch(tmp_path, settings()) as (server, port):
        ua = await RawUa.open("402", "secret402", port)
        rtp = await rtp_socket()
        try:
            out = await ua.call("*35*2", rtp_port=rtp.port)
            ok = await out.answered()
            relay = ("127.0.0.1", sdp_port(ok.body))
            await until(lambda: detect(rtp.audio(), 8000, 1000) > 0.3)  # the beep
            await until(lambda: len(rtp.packets) >= 33)  # 400 ms silence + 250 ms beep
            await speak(rtp, relay, 800, 1500)
            before = len(rtp.packets)
            rtp.send_dtmf(11, relay)  # '#'
            await out.bye_received()
            after = b"".join(p for t, _, p in rtp.packets[before:] if t == 0)
            assert confirmation(ulaw_decode(after), 8000) == "accepted"
        finally:
            ua.close()
            assert rtp.transport is not None
            rtp.transport.close()
        line = stored(server, "402@pbx.test")
        assert line.pre_answer.message == "pre_answer/402@pbx.test.wav"
        assert not line.pre_answer.active  # recording does not activate it
        with wave.open(str(server.data_dir / line.pre_answer.message)) as wav:
            pcm = wav.readframes(wav.getnframes())
            assert wav.getframerate() == 8000
        assert 1.2 <= len(pcm) / 16000 <= 1.6
        assert dominant_frequency(pcm, 8000, [440, 800, 1000]) == 800
        ua = await RawUa.open("402", "secret402", port)
        try:
            assert (await dial_code(ua, "*35*1"))[0] == "accepted"
            assert (await dial_code(ua, "**35"))[0] == "active"
        finally:
            ua.close()
        assert stored(server, "402@pbx.test").pre_answer.plays


async def test_clir_permanent_and_per_call_towards_the_trunk(tmp_path: Path) -> None:
    """``*65*1``: every call out is anonymous with ``Privacy: id`` and the real number
    in ``P-Asserted-Identity``; ``*65*0`` presents again; ``*66*<number>`` withholds
    that one call only."""
    trunk_port = free_port()
    async with running_switch(tmp_path, trunk_settings(trunk_port)) as (_, port):
        trunk = await open_trunk(trunk_port, port)
        ua = await RawUa.open("402", "secret402", port)
        try:

            async def call_out(dialled: str) -> Request:
                before = set(trunk.incoming)
                out = await ua.call(dialled)
                await out.failed(486)
                (new,) = set(trunk.incoming) - before
                return trunk.incoming[new].invite

            presented = await call_out("0612345678")
            assert presented.headers.get("From") or "".startswith("<sip:+33140000402@pbx.test>")
            assert presented.headers.get("P-Asserted-Identity") == (
                "<sip:+33140000402@pbx.test;user=phone>"
            )
            assert presented.headers.get("Privacy") is None

            assert (await dial_code(ua, "*65*1"))[0] == "accepted"
            for _ in range(2):  # permanent: every call
                withheld = await call_out("0612345678")
                assert withheld.headers.get("From") or "".startswith(
                    '"Anonymous" <sip:anonymous@anonymous.invalid>'
                )
                assert withheld.headers.get("Privacy") == "id"
                assert withheld.headers.get("P-Asserted-Identity") == (
                    "<sip:+33140000402@pbx.test;user=phone>"
                )
            assert (await dial_code(ua, "*65*0"))[0] == "accepted"

            once = await call_out("*66*0612345678")
            assert str(once.uri).startswith("sip:+33612345678@")
            assert once.headers.get("Privacy") == "id"
            assert "anonymous.invalid" in (once.headers.get("From") or "")
            after = await call_out("0612345678")
            assert after.headers.get("Privacy") is None
            assert (after.headers.get("From") or "").startswith("<sip:+33140000402@pbx.test>")
        finally:
            ua.close()
            trunk.close()


async def test_clir_towards_a_phone_is_anonymous_without_pai(tmp_path: Path) -> None:
    async with running_switch(tmp_path, settings()) as (_, port):
        callee = await RawUa.open("403", "secret403", port)
        callee.answer = 486
        await callee.register()
        ua = await RawUa.open("402", "secret402", port)
        try:
            await (await ua.call("403")).failed(486)
            await (await ua.call("*66*403")).failed(486)
            shown, hidden = (c.invite for c in callee.incoming.values())
            assert (shown.headers.get("From") or "").startswith('"Bruno Durand" <sip:402@pbx.test>')
            assert shown.headers.get("P-Asserted-Identity") == '"Bruno Durand" <sip:402@pbx.test>'
            assert (hidden.headers.get("From") or "").startswith(
                '"Anonymous" <sip:anonymous@anonymous.invalid>'
            )
            assert hidden.headers.get("P-Asserted-Identity") is None
            for invite in (shown, hidden):
                assert "127.0.0.1" not in (invite.headers.get("From") or "")
        finally:
            ua.close()
            callee.close()


async def test_active_pre_answer_message_is_early_media_before_the_phone_rings(
    tmp_path: Path,
) -> None:
    """``*35*1`` with a recorded message: the caller gets 183 and the message's audio,
    and only then does the callee's phone get its INVITE; the answer connects."""
    async with running_switch(tmp_path, settings()) as (server, port):
        folder = server.data_dir / "pre_answer"
        folder.mkdir()
        with wave.open(str(folder / "402@pbx.test.wav"), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(sine(700, 800))
        assert server.b2bua is not None
        await server.b2bua.line_settings.save(
            "402@pbx.test", LineSettings().with_pre_answer_message("pre_answer/402@pbx.test.wav")
        )
        callee = await RawUa.open("402", "secret402", port)
        callee.answer = 180
        await callee.register()
        caller = await RawUa.open("401", "secret401", port)
        rtp = await rtp_socket()
        try:
            assert (await dial_code(callee, "*35*1"))[0] == "accepted"
            call = await caller.call("402", rtp_port=rtp.port)
            await caller.expect(call.call_id, status=183)
            await until(lambda: len(callee.incoming) == 1, within=5)
            # The message (40 frames) reached the caller before the phone rang
            # (``until`` polls every 20 ms: a frame or two may come in meanwhile).
            assert len(rtp.packets) >= 38
            heard = ulaw_decode(b"".join(p for t, _, p in rtp.packets[:40] if t == 0))
            assert detect(heard, 8000, 700) > 0.5
            incoming = next(iter(callee.incoming.values()))
            callee.reply(incoming.invite, 200, tag=incoming.tag, body=sdp(4300))
            await call.answered()
            await call.bye()
        finally:
            caller.close()
            callee.close()
            assert rtp.transport is not None
            rtp.transport.close()
        await until(lambda: any(r["called"] == "402" for r in cdr(server)))
        row = next(r for r in cdr(server) if r["called"] == "402")
        assert row["messages"] == ["pre_answer"]
        assert row["outcome"] == "answered"


async def test_record_pre_answer_ended_by_sip_info(tmp_path: Path) -> None:
    """``#`` sent as SIP INFO (``application/dtmf-relay``) ends the recording too."""
    async with running_switch(tmp_path, settings()) as (server, port):
        ua = await RawUa.open("403", "secret403", port)
        rtp = await rtp_socket()
        try:
            out = await ua.call("*35*2", rtp_port=rtp.port)
            ok = await out.answered()
            relay = ("127.0.0.1", sdp_port(ok.body))
            await until(lambda: len(rtp.packets) >= 33)  # 400 ms silence + 250 ms beep
            await speak(rtp, relay, 600, 1000)
            body = "Signal=#\r\nDuration=160\r\n"
            out.cseq += 1
            ua.send(
                f"INFO {out.contact} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{ua.port};branch=z9hG4bK-info{out.cseq};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:403@pbx.test>;tag={out.from_tag}\r\n"
                f"To: <sip:*35*2@pbx.test>;tag={out.to_tag}\r\n"
                f"Call-ID: {out.call_id}\r\n"
                f"CSeq: {out.cseq} INFO\r\n"
                "Content-Type: application/dtmf-relay\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}"
            )
            await out.bye_received()
        finally:
            ua.close()
            assert rtp.transport is not None
            rtp.transport.close()
        message = stored(server, "403@pbx.test").pre_answer.message
        assert message == "pre_answer/403@pbx.test.wav", [r["because"] for r in cdr(server)]
        with wave.open(str(server.data_dir / message)) as wav:
            pcm = wav.readframes(wav.getnframes())
        assert dominant_frequency(pcm, 8000, [440, 600, 1000]) == 600
