"""Star codes on live calls: the executor of ``routing.starcodes``.

``routing.starcodes`` decides (pure); this module carries it out on one call of
the B2BUA. ``B2bua._setup`` hands every call from an authenticated line to
:func:`intercept` first::

    dialled = await features.intercept(b2bua, running, caller, called)
    if dialled is None:        # a star code: handled here, the call is over or taken
        return
    called, withheld = dialled.number, dialled.withheld   # route it as usual

What each kind of dialled string does:

=====================  =====================================================
``NotAStarCode``       routed as dialled; ``withheld`` is the line's CLIR
                       (``*65*1``)
a setting or a query   ``apply`` on the line's settings, **stored** (the
(``*65*1``, ``**21*…``)  store commits before it returns), then the call is
                       answered, the confirmation tone plays, and the switch
                       hangs up (BYE)
``Invalid``            answered, the *refused* tone, BYE; nothing changes
``*66*<number>``       routed to ``number`` (a speed dial resolves first)
                       withheld, this call only
``700``-``869``        the company directory's number, routed exactly as if
                       the line had dialled it (same profile, same trunk path);
                       ``404`` for a code the directory does not have
``*35*2``              answered, a beep, the caller speaks; ``#`` (RFC 4733 or
                       SIP INFO), 60 s or hanging up ends it; the audio is
                       stored as ``DATA_DIR/pre_answer/<line key>.wav`` and
                       the line's ``pre_answer.message`` set, then the
                       *accepted* tone and BYE
``888``                voicemail is not built yet: ``480`` (cause
                       ``voicemail-unavailable``)
``999``                ``B2bua.call_group`` (the hunt-group executor)
``*8*<ext>``           ``B2bua.pickup``; ``False`` -> ``480``
=====================  =====================================================

Codes never reach a trunk: only ``NotAStarCode``, ``*66*`` and speed dials give
a number back to route, and those are ordinary numbers.

The confirmation tones (``media.tone``, all 440 Hz, told apart by their cadence)
are played after :data:`LEAD_IN_MS` of silence, so that a phone which starts
listening when the 200 arrives does not miss the first beep::

    accepted   3 x (100 ms on, 100 ms off)
    refused    3 x (500 ms on, 500 ms off)
    active     1000 ms on
    inactive   2 x (200 ms on, 200 ms off)

Recorded prompts replace the tones when the IVR comes. A caller without a codec
the switch can play (no PCMU, PCMA or G.722 offered, or no offer) still gets the
change stored; its call is released with ``480`` instead of answered.

The CDR row of a star-code call has the dialled string as ``called``, the cause
``star-code-<reply>`` and the ``because`` trace of the confirmation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import string
import unicodedata
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ivr.announcements import Announcements, tone_frames
from media import g711, tone
from media.codecs import CODEC_RATES, Pcm, encode, g722_decode
from media.dtmf import DtmfError, DtmfReceiver
from media.player import Player
from media.rtp import RtpError, RtpPacket, peek_header
from routing import starcodes
from routing.linesettings import STANDARD_GROUP, LineSettings
from routing.starcodes import (
    CallGroup,
    CallVoicemail,
    Confirmation,
    Invalid,
    NotAStarCode,
    Pickup,
    PlaceCall,
    RecallForward,
    RecordPreAnswer,
    Reply,
    SetForward,
    SettingCommand,
    SpeedDial,
    StarContext,
)
from switch.call import (
    CallCommand,
    CallEnded,
    CallState,
    DigitPressed,
    LocalMedia,
    MediaAnswered,
)
from switch.directory import Company, Line
from switch.sip.headers import unquote
from switch.trunk import ANONYMOUS

if TYPE_CHECKING:
    from switch.b2bua import B2bua, _Running

log = logging.getLogger(__name__)

LEAD_IN_MS = 400
"""Silence before a confirmation tone (the phone's media path settles)."""
TAIL_MS = 200
"""Silence after it, before the BYE."""
PRE_ANSWER_DIR = "pre_answer"
"""Where ``*35*2`` recordings go, under the data directory."""
PRE_ANSWER = "pre_answer"
"""The message id of a line's pre-answer message (CDR ``messages``)."""
MIN_RECORDING_S = 0.5
"""A shorter recording (hung up at once) is not stored."""


@dataclass(frozen=True, slots=True)
class Dialled:
    """What the call goes on to: ``number`` as if the line had dialled it."""

    number: str
    withheld: bool  # the caller's identity is withheld on this call (CLIR)


def phone_from(number: str, display: str | None, withheld: bool, domain: str) -> str:
    """The ``From`` (and ``P-Asserted-Identity``) of a call towards a phone:
    ``"Name" <sip:NUMBER@domain>``, the caller's number at the switch's domain, never
    an IP address (PHONES.md), and ``"Anonymous" <sip:anonymous@anonymous.invalid>``
    when the caller withholds its identity (RFC 3323), has no number, or is
    ``anonymous``.

    ``number`` keeps its ASCII letters, digits and ``+`` (what a phone can dial back).
    ``display`` is plain text, or a display-name as a From carries it (a
    quoted-string is unquoted first); its control characters are dropped and, when
    nothing is left, the number shows instead."""
    user = "".join(c for c in number if c in _USER_CHARS)
    if withheld or not user or user.lower() == "anonymous":
        return ANONYMOUS
    return f"{_quoted(_shown(display) or user)} <sip:{user}@{domain}>"


_USER_CHARS = frozenset(string.ascii_letters + string.digits + "+")


def _shown(display: str | None) -> str:
    """What a phone should show of ``display`` (plain text, or a display-name as
    written in a From: the quoted-string ``"Jean \\"JD\\" Dupont"`` is
    ``Jean "JD" Dupont``): control characters (C0 with tab and line breaks, DEL,
    C1) and invisible format characters dropped, outer white space stripped; ""
    when nothing is left.

    Format characters (Unicode category Cf) include the bidirectional overrides
    and isolates (U+202A-202E, U+2066-2069): a caller's name carrying them could
    make a phone show text in another order than it is written (``"\\u202e1010"``
    shows as ``0101``), the "Trojan Source" trick applied to caller ID. Names in
    right-to-left scripts need none of them (the bidi algorithm orders them);
    the zero-width joiner and non-joiner stay, as Persian and Indic names need
    them."""
    text = unquote((display or "").strip())
    return "".join(c for c in text if _visible(c)).strip()


_JOINERS = frozenset("\u200c\u200d")


def _visible(char: str) -> bool:
    category = unicodedata.category(char)
    return category != "Cc" and (category != "Cf" or char in _JOINERS)


def _quoted(text: str) -> str:
    """``text`` (no control characters: ``_shown``) as a quoted-string display-name::

        quoted-string  =  SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
        qdtext         =  LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
        quoted-pair    =  "\\" (%x00-09 / %x0B-0C / %x0E-7F)

    (RFC 3261 §25.1): ``"`` and ``\\`` are the two characters qdtext excludes that
    text may hold, each escaped as a quoted-pair; anything else, non-ASCII
    included, stands as it is."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def phone_identity(from_: str) -> tuple[tuple[str, str], ...]:
    """``P-Asserted-Identity`` for a phone: the same identity as ``From``; none for an
    anonymous caller (RFC 3325 §7: not passed on when the caller asks for privacy)."""
    if from_ == ANONYMOUS or "sip:anonymous@" in from_.lower():
        return ()
    return (("P-Asserted-Identity", from_),)


def company_of(b2bua: B2bua, caller: Line) -> Company:
    company = b2bua.directory.company(caller.company)
    assert company is not None  # a line always belongs to a company of the directory
    return company


async def intercept(b2bua: B2bua, running: _Running, caller: Line, called: str) -> Dialled | None:
    """The star code in ``called``, if any, carried out; see the module docstring.

    None: the call is handled (answered and confirmed, rejected, or taken by a
    group or a pickup). A ``Dialled``: route that number as usual."""
    command = starcodes.parse(called)
    settings = await b2bua.line_settings.load(caller.key)
    if isinstance(command, NotAStarCode):
        return Dialled(called, settings.clir)
    company = company_of(b2bua, caller)
    call = running.call
    call.because.append(f"code {called}")
    if isinstance(command, PlaceCall):
        target = _speed_dial(company, command.number) or command.number
        call.because.append(f"numéro masqué pour cet appel → {target}")
        return Dialled(target, withheld=True)
    if isinstance(command, SpeedDial):
        number = _speed_dial(company, command.code)
        if number is None:
            call.because.append(f"numéro abrégé {command.code} inconnu")
            b2bua.reject(running, 404, "unknown-speed-dial", "Unknown Speed Dial")
            return None
        call.because.append(f"numéro abrégé {command.code} → {number}")
        return Dialled(number, settings.clir)
    if isinstance(command, CallVoicemail):
        # The voicemail comes with the IVR; until then a clear failure, not a ring.
        log.warning("features.unavailable", extra={"call": call.id, "feature": "voicemail"})
        b2bua.reject(running, 480, "voicemail-unavailable", "Voicemail Not Available")
        return None
    if isinstance(command, CallGroup):
        await b2bua.call_group(running, caller, command.group, withheld=settings.clir)
        return None
    if isinstance(command, Pickup):
        ringing = company.line(command.extension)
        if ringing is None:
            b2bua.reject(running, 404, "pickup-unknown", "Unknown Extension")
        elif not b2bua.pickup(running, ringing):
            b2bua.reject(running, 480, "pickup-nothing", "Nothing To Pick Up")
        return None
    feature = FeatureCall(b2bua, running)
    if isinstance(command, Invalid):
        log.info(
            "features.invalid",
            extra={"call": call.id, "line": caller.key, "dialled": called, "why": command.reason},
        )
        await feature.confirm(Confirmation(Reply.REFUSED, (command.reason, "refusé")))
        return None
    if isinstance(command, RecordPreAnswer):
        await feature.record_pre_answer(caller, command)
        return None
    await feature.setting(caller, company, command)
    return None


async def pre_answer(b2bua: B2bua, running: _Running, callee: Line, settings: LineSettings) -> None:
    """``*35*1``: the callee's recorded pre-answer message (pré-décroché) played to
    the caller as early media (183) before the callee's phone rings; then ringback
    from the switch until a phone answers (the caller's phone no longer plays its
    own after our 183). Nothing when the message is not active or not recorded.
    ``settings``: the callee's, as the caller already loaded them."""
    if b2bua.data_dir is None:
        return
    path = pre_answer_path(b2bua.data_dir, settings)
    if path is None or not settings.pre_answer.plays or not path.is_file():
        return
    await FeatureCall(b2bua, running).pre_answer(path, callee)


def _speed_dial(company: Company, code: str) -> str | None:
    return starcodes.resolve_speed_dial(code, {sd.code: sd.number for sd in company.speed_dials})


async def star_context(
    b2bua: B2bua, caller: Line, company: Company, *, forwards: bool
) -> StarContext:
    """What ``apply`` needs to know about ``caller``'s company. ``forwards``: the
    command sets a forward, so the company's lines' protection is read too."""
    protected: Callable[[str], bool] = _nobody
    if forwards:
        stored = await b2bua.line_settings.all()
        keys = {line.extension: line.key for line in company.lines}

        def protected(extension: str) -> bool:
            found = stored.get(keys.get(extension, ""))
            return found is not None and found.forward_protection

    return StarContext(
        extension=caller.extension,
        forward_profile=caller.restrictions.forwarded,
        direct_number=caller.direct_number,
        voicemail=caller.voicemail.enabled,
        extensions=frozenset(line.extension for line in company.lines),
        groups=frozenset(g.number for g in company.groups) | {STANDARD_GROUP},
        member_of=frozenset(caller.groups),
        speed_dials={sd.code: sd.number for sd in company.speed_dials},
        protected=protected,
        restrictions=company.restriction_table,
    )


def _nobody(_extension: str) -> bool:
    return False


class FeatureCall:
    """One star-code call answered by the switch itself: plays, listens, hangs up."""

    def __init__(self, b2bua: B2bua, running: _Running) -> None:
        self.b2bua = b2bua
        self.running = running
        self.call = running.call
        self.rng = random.Random(os.urandom(8))
        self._waiter: asyncio.Future[str] | None = None
        self._ringing = False
        assert running.watcher is None  # one star code or pre-answer message per call
        running.watcher = self._watch

    # -- what the call tells us ----------------------------------------------------------

    def _watch(self, cmd: CallCommand) -> None:
        if isinstance(cmd, MediaAnswered | CallEnded) and self._ringing:
            self._ringing = False  # our ringback after the pre-answer message
            relay = self.running.session
            if relay is not None and relay.a.playing:
                relay.a.play(None)
        if isinstance(cmd, CallEnded):
            self._resolve("ended")
        elif isinstance(cmd, DigitPressed):
            self._resolve(f"digit:{cmd.digit}")

    def _resolve(self, what: str) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(what)

    def _wait(self) -> asyncio.Future[str]:
        self._waiter = self.b2bua.loop.create_future()
        if self.call.state >= CallState.ENDING:
            self._waiter.set_result("ended")
        return self._waiter

    # -- the codes -------------------------------------------------------------------------

    async def setting(self, caller: Line, company: Company, command: SettingCommand) -> None:
        """Apply ``command`` to the line's settings, stored before it is confirmed."""
        forwards = isinstance(command, SetForward | RecallForward)
        ctx = await star_context(self.b2bua, caller, company, forwards=forwards)
        _, confirmation = await self.b2bua.line_settings.update(
            caller.key, lambda s: starcodes.apply(s, command, ctx)
        )
        log.info(
            "features.applied",
            extra={
                "call": self.call.id,
                "line": caller.key,
                "reply": confirmation.reply.value,
                "because": " / ".join(confirmation.because),
            },
        )
        await self.confirm(confirmation)

    async def confirm(self, confirmation: Confirmation) -> None:
        """Answer, play the confirmation's tone, hang up."""
        self.call.because.extend(confirmation.because)
        local = await self._answer()
        if local is not None:
            await self._play(self._tone(confirmation.reply.value, local.encoding), local)
        self._hang_up(f"star-code-{confirmation.reply.value}")

    async def record_pre_answer(self, caller: Line, command: RecordPreAnswer) -> None:
        """``*35*2``: beep, record until ``#`` / ``max_s`` / hang-up, store, confirm."""
        b2bua, call = self.b2bua, self.call
        folder = b2bua.data_dir / PRE_ANSWER_DIR if b2bua.data_dir is not None else None
        if folder is None:
            await self.confirm(
                Confirmation(Reply.REFUSED, ("pré-décroché : pas de répertoire de données",))
            )
            return
        local = await self._answer()
        relay = self.running.session
        if local is None or relay is None:
            await self.confirm(Confirmation(Reply.REFUSED, ("pré-décroché : pas de média commun",)))
            return
        call.because.append("pré-décroché : enregistrement")
        beep = list(_silence(LEAD_IN_MS, local.encoding)) + list(
            tone_frames("beep", local.encoding)
        )
        if await self._play(beep, local) == "ended":
            return
        recorder = _Recorder(local, b2bua.loop.time)
        relay.a.on_rtp(recorder.receive)
        recorder.on_digit = lambda digit: self._resolve(f"digit:{digit}")
        try:
            ended = await self._until_key(command.end_key, command.max_s)
        finally:
            relay.a.on_rtp(None)
        pcm = recorder.pcm()
        if pcm.duration < MIN_RECORDING_S:
            if not ended:
                await self.confirm(
                    Confirmation(Reply.REFUSED, ("pré-décroché : enregistrement vide",))
                )
            return
        path = folder / f"{caller.key}.wav"
        await asyncio.to_thread(_write_wav, path, pcm)
        ref = f"{PRE_ANSWER_DIR}/{path.name}"
        await b2bua.line_settings.update(
            caller.key, lambda s: (s.with_pre_answer_message(ref), None)
        )
        because = (f"pré-décroché enregistré ({pcm.duration:.1f} s) : {ref}",)
        log.info("features.recorded", extra={"call": call.id, "line": caller.key, "file": ref})
        if ended:
            call.because.extend(because)
            return
        await self.confirm(Confirmation(Reply.ACCEPTED, because))

    async def pre_answer(self, path: Path, callee: Line) -> None:
        b2bua, call = self.b2bua, self.call
        local = call.early_media(b2bua.loop.time())
        b2bua.execute(self.running)
        if local is None:
            return
        try:
            frames = await asyncio.to_thread(
                Announcements({PRE_ANSWER: path}).frames, PRE_ANSWER, local.encoding
            )
        except (KeyError, ValueError, OSError) as exc:
            log.warning(
                "features.pre_answer_failed",
                extra={"call": call.id, "file": str(path), "error": str(exc)},
            )
            return
        call.messages.append(PRE_ANSWER)
        call.because.append(f"pré-décroché de {callee.extension}")
        if await self._play(frames, local) == "ended":
            return
        relay = self.running.session
        if relay is None or call.state >= CallState.CONNECTED:
            return
        ring = tone_frames("ringback", local.encoding)
        repeat = -(-int(b2bua.limits.ring_timeout) * 50 // len(ring)) + 1
        player = Player(
            list(ring) * repeat,
            local.pt,
            self.rng.getrandbits(32),
            self.rng.getrandbits(16),
            self.rng.getrandbits(32),
        )
        self._ringing = True
        relay.a.play(player)

    # -- plumbing ---------------------------------------------------------------------------

    async def _answer(self) -> LocalMedia | None:
        """Open the relay for the call and answer it with the switch's own SDP (200)."""
        b2bua, call = self.b2bua, self.call
        if self.running.session is None and not await b2bua.open_media(self.running, "features"):
            return None
        local = call.answer_locally(b2bua.loop.time())
        b2bua.execute(self.running)
        return local

    def _tone(self, kind: str, codec: str) -> list[bytes]:
        return [
            *_silence(LEAD_IN_MS, codec),
            *tone_frames(kind, codec),
            *_silence(TAIL_MS, codec),
        ]

    async def _play(self, frames: Sequence[bytes], local: LocalMedia) -> str:
        """Play ``frames`` to the caller; "done", or "ended" if the call ended first."""
        relay = self.running.session
        if relay is None or self.call.state >= CallState.ENDING:
            return "ended"
        waiter = self._wait()
        player = Player(
            list(frames),
            local.pt,
            self.rng.getrandbits(32),
            self.rng.getrandbits(16),
            self.rng.getrandbits(32),
        )
        relay.a.play(player, on_done=lambda: self._resolve("done"))
        try:
            while True:
                what = await waiter
                if what in ("done", "ended"):
                    return what
                waiter = self._wait()  # a digit while playing: keep playing
        finally:
            if relay.a.playing:
                relay.a.play(None)

    async def _until_key(self, key: str, max_s: float) -> bool:
        """Until ``key`` is pressed or ``max_s`` passes: False; True when the call ended."""
        loop = self.b2bua.loop
        deadline = loop.time() + max_s
        while True:
            waiter = self._wait()
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                what = await asyncio.wait_for(waiter, left)
            except TimeoutError:
                return False
            if what == "ended":
                return True
            if what == f"digit:{key}":
                return False

    def _hang_up(self, cause: str) -> None:
        b2bua, call = self.b2bua, self.call
        if call.state >= CallState.ENDING:
            return
        if call.state is CallState.CONNECTED:
            call.hang_up(cause, b2bua.loop.time())
            b2bua.execute(self.running)
        else:  # never answered (no relay port, or no offer): a final response instead
            b2bua.reject(self.running, 480, cause)


def _silence(ms: int, codec: str) -> list[bytes]:
    """``ms`` of silence as 20 ms frames of ``codec`` (160 bytes each in every codec)."""
    rate = CODEC_RATES[codec]
    data = encode(codec, Pcm(tone.silence(ms, rate), rate))
    return [data[i : i + 160] for i in range(0, len(data) - 159, 160)]


class _Recorder:
    """The caller's audio (and RFC 4733 digits) from the relay's tap."""

    def __init__(self, local: LocalMedia, clock: Callable[[], float]) -> None:
        self.local = local
        self.clock = clock
        self.payloads: list[bytes] = []
        self.dtmf = DtmfReceiver()
        self.on_digit: Callable[[str], None] | None = None

    def receive(self, packet: bytes) -> None:
        header = peek_header(packet)
        if header is None:
            return
        pt = header[0]
        if pt == self.local.dtmf_pt:
            try:
                self.dtmf.receive(header[2], RtpPacket.parse(packet).payload, self.clock())
            except (RtpError, DtmfError):
                return
            while (event := self.dtmf.next_event()) is not None:
                if self.on_digit is not None:
                    self.on_digit(event.digit)
            return
        if pt != self.local.pt or len(self.payloads) >= 61 * 50:  # at most ~61 s kept
            return
        try:
            self.payloads.append(RtpPacket.parse(packet).payload)
        except RtpError:
            return

    def pcm(self) -> Pcm:
        data = b"".join(self.payloads)
        codec = self.local.encoding
        if codec == "G722":
            return Pcm(g722_decode(data), CODEC_RATES[codec])
        return Pcm(g711.decode(codec, data), CODEC_RATES[codec])


def _write_wav(path: Path, pcm: Pcm) -> None:
    """16-bit mono WAV, written to a temporary name then renamed (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".wav.part")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(pcm.rate)
        out.writeframes(pcm.data)
    partial.replace(path)


def pre_answer_path(data_dir: Path, settings: LineSettings) -> Path | None:
    """The WAV file of a line's recorded pre-answer message, if it has one."""
    message = settings.pre_answer.message
    return None if message is None else data_dir / message


__all__ = [
    "LEAD_IN_MS",
    "PRE_ANSWER_DIR",
    "Dialled",
    "FeatureCall",
    "intercept",
    "phone_from",
    "phone_identity",
    "pre_answer",
    "pre_answer_path",
    "star_context",
]
