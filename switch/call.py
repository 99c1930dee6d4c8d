"""The B2BUA call core: one call = an A leg (caller side) and its B legs (callee side).

Pure, like the legs it drives (``switch.sip.invite.InviteSession``): layer events
and time in; commands out. ``switch.b2bua`` executes the commands (SIP through
the stack, media through the relay, the CDR row through ``switch.cdr``)::

    call = Call(a_leg, a_dest=source, ids=ids, media=None, now=t, started_at=at, ...)
    call.media = MediaPlan(...)               # once the relay session is open
    call.dial([Target(...), ...], now)        # or call.reject(status, now)
    call.handle(layer_event, now) -> bool     # False: not this call's
    call.handle_timer(now)                    # when call.get_timer() is due
    call.media_timeout(reason, now)           # the relay saw no RTP for too long
    for cmd in call.commands(): ...           # LegSend / MediaUpdate / MediaAnswered / CallEnded

Call states (monotone)::

    TRYING -1xx relayed-> RINGING -B answered-> CONNECTED -BYE/limit-> ENDING -> ENDED
       |                     |                                          ^
       +-- every B leg failed / ring timeout / CANCEL from A -----------+

A B-leg failure is a *routing outcome*, never a SIP code: ``FAILURE_TABLE``
below is the only place that maps one to the other, and ``OUTCOME_STATUS`` the
only place that says what the caller then hears.

Media: every SDP that crosses the switch is rewritten by ``media.sdp.anchor`` to
the relay's ports of the leg it is sent on (the A side's ports in what goes to
the caller, the B side's in what goes to the callee), ``o=`` owned per leg.
Each phone's own SDP tells the relay where that phone listens and which way it
wants media (both hold styles: ``a=sendonly``/``inactive`` and ``c=0.0.0.0``).

SDES-SRTP (RFC 4568) is terminated at the relay, per leg, when the shell gives
the call key material (``srtp_keys``, fresh random bytes per side): a phone whose
SDP is ``RTP/SAVP`` with an ``a=crypto`` of a suite in ``SRTP_SUITES`` makes its
leg *secure*. Every SDP the switch sends on a secure leg carries the switch's own
``a=crypto`` (same suite, the phone's tag), every SDP on a plain leg is plain
``RTP/AVP`` without ``a=crypto``; ``MediaUpdate.srtp`` gives the relay the
phone's key (to decrypt) and the switch's (to encrypt). B legs are offered
what their ``Target.srtp`` says (the callee's declared phone): ``off`` plain
RTP/AVP; ``offer`` RTP/AVP with the switch's ``a=crypto`` for each of
``SRTP_SUITES`` (best effort: an answer with ``a=crypto`` makes the leg secure,
one without leaves it plain); ``require`` the same as RTP/SAVP, where an answer
without a usable ``a=crypto`` fails that B leg (488, ``srtp-refused``). Without
``srtp_keys`` SDES lines cross the switch untouched.

Transfers and pickups (``docs/transfer.md``; ``switch.transfer`` decides which
calls): the two bridged parties are ``a`` and ``winner`` (relay sides a and b),
not necessarily the first caller and callee. A REFER from a bridged party is a
``TransferRequested``; the shell answers ``accept_transfer`` (202, NOTIFY 100) or
``refuse_transfer``, reports the attempt (``transfer_progress``,
``transfer_failed``) and on success takes the transferee out (``hand_over``: final
NOTIFY, the referrer's BYE, this call ends ``transferred``) into another call
(``adopt``: a re-INVITE with the new peer's codecs in use). ``adopt_new`` lets an
INVITE with Replaces take a bridged party's place; ``pickup`` answers a ringing
call with a new INVITE. Replaced parties are *retired*: only wound down.
"""

from __future__ import annotations

import base64
import contextlib
import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from media.dtmf import DtmfError, parse_info
from media.sdp import (
    SRTP_KEY_LENGTHS,
    TELEPHONE_EVENT,
    Codec,
    Connection,
    Crypto,
    Direction,
    Media,
    SdpError,
    SessionDescription,
    add_crypto,
    anchor,
    codecs,
    direction,
    negotiate,
    select_crypto,
    set_direction,
    set_secure,
    strip_crypto,
)
from media.sdp import replace as sdp_replace
from switch.sip.dialog import Dialog
from switch.sip.dialog_events import (
    CallAnswered,
    CallCancelled,
    CallConfirmed,
    CallFailed,
    InDialogRequestReceived,
    InDialogResponseReceived,
    ProvisionalReceived,
    Sdp,
    SessionEnded,
    SessionEvent,
)
from switch.sip.endpoint import Endpoint
from switch.sip.errors import SipError
from switch.sip.events import Event
from switch.sip.invite import (
    CallState as LegState,
)
from switch.sip.invite import (
    Command,
    InviteSession,
    LocalOrigin,
    Role,
    SessionConfig,
    SessionIds,
)
from switch.sip.message import Request
from switch.sip.prack import requires_100rel, supports_100rel
from switch.sip.refer import (
    SIPFRAG,
    ReferTo,
    Replaces,
    SipFrag,
    names_dialog,
    refer_to_of,
    subscription_state,
)
from switch.sip.uri import Uri

# ------------------------------------------------------------------ outcomes


class Outcome(enum.StrEnum):
    """How a call ended, in call-control words (what routing ``resume`` gets)."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNREACHABLE = "unreachable"
    REJECTED = "rejected"
    CANCELLED = "cancelled"  # the caller gave up before an answer


# The one table from B-leg failures to outcomes. Keys are final statuses, or the
# causes that have no status of their own.
FAILURE_TABLE: dict[int | str, Outcome] = {
    486: Outcome.BUSY,
    600: Outcome.BUSY,
    408: Outcome.NO_ANSWER,  # a 408 *response*: the phone rang out
    480: Outcome.NO_ANSWER,
    "ring-timeout": Outcome.NO_ANSWER,
    404: Outcome.UNREACHABLE,
    410: Outcome.UNREACHABLE,
    484: Outcome.UNREACHABLE,
    "unregistered": Outcome.UNREACHABLE,
    "transaction-timeout": Outcome.UNREACHABLE,  # no response at all (Timer B)
    "transport-error": Outcome.UNREACHABLE,
    403: Outcome.REJECTED,
    603: Outcome.REJECTED,
}
# Statuses not in the table, by class.
_BY_CLASS = {4: Outcome.REJECTED, 5: Outcome.UNREACHABLE, 6: Outcome.REJECTED}
# When several B legs fail, the most telling outcome wins (RFC 3261 §16.7 in spirit:
# a decline or busy says more than silence).
_PRECEDENCE = (Outcome.REJECTED, Outcome.BUSY, Outcome.NO_ANSWER, Outcome.UNREACHABLE)
# What the caller hears for each failure outcome.
OUTCOME_STATUS: dict[Outcome, int] = {
    Outcome.BUSY: 486,
    Outcome.NO_ANSWER: 480,
    Outcome.UNREACHABLE: 480,
    Outcome.REJECTED: 603,
}


def failure_outcome(status: int | None, cause: str | None = None) -> Outcome:
    """The outcome of a B-leg failure: ``cause`` when there was no response
    (``transaction-timeout``, ``transport-error``, ``ring-timeout``, ``unregistered``),
    else the final ``status``."""
    if cause is not None and cause in FAILURE_TABLE:
        return FAILURE_TABLE[cause]
    if status is None:
        return Outcome.UNREACHABLE
    found = FAILURE_TABLE.get(status)
    if found is not None:
        return found
    return _BY_CLASS.get(status // 100, Outcome.REJECTED)


def _failure_cause(event: CallFailed) -> tuple[int, str | None]:
    if event.response is None:
        return event.status, "transaction-timeout" if event.status == 408 else "transport-error"
    return event.status, None


# ------------------------------------------------------------------- commands


@dataclass(slots=True)
class LegSend:
    """A leg's SIP command, to execute towards ``dest`` (where that phone is)."""

    leg: InviteSession
    command: Command
    dest: Endpoint


@dataclass(slots=True)
class MediaUpdate:
    """What the phone on ``side`` ("a" or "b") said in its SDP: where it listens
    (None: nowhere, e.g. ``c=0.0.0.0``) and its direction as seen from the phone
    (``a=sendonly``: sends, does not receive), as ``RelayLeg.set_direction`` takes it."""

    side: str
    rtp: tuple[str, int] | None
    rtcp: tuple[str, int] | None
    sends: bool  # the phone sends media
    receives: bool  # the phone wants media
    # SRTP terminated on this leg: (suite, the phone's key||salt, the switch's key||salt);
    # None: plain RTP on this leg.
    srtp: tuple[str, bytes, bytes] | None = None


@dataclass(slots=True)
class MediaAnswered:
    """The call is answered: RTP timeouts apply from now on."""


@dataclass(frozen=True, slots=True)
class LegRecord:
    role: str  # "a" | "b"
    call_id: str
    target: str
    final_status: int | None


@dataclass(frozen=True, slots=True)
class CdrRecord:
    """One call, as ``switch.cdr`` stores it."""

    id: str
    call_id: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    caller: str
    called: str
    outcome: Outcome
    cause: str
    legs: tuple[LegRecord, ...]
    codecs: tuple[str, ...]
    because: tuple[str, ...] = ()  # the routing trace, when routing ran
    messages: tuple[str, ...] = ()  # the messages the caller heard, in order

    @property
    def duration(self) -> float:
        """Seconds of conversation (0 for an unanswered call)."""
        if self.answered_at is None:
            return 0.0
        return (self.ended_at - self.answered_at).total_seconds()


@dataclass(slots=True)
class CallEnded:
    """The call is over: release the media, write the CDR. The legs may still
    finish their exchanges (ACKs, BYE responses) until ``Call.finished``."""

    record: CdrRecord


@dataclass(slots=True)
class DialFailed:
    """Routed calls: every B leg of the current ``dial`` failed (or rang out); the
    caller is still there, waiting for what routing decides next."""

    outcome: Outcome
    cause: str  # the status ("486") or the cause without one ("ring-timeout")


@dataclass(slots=True)
class TargetAnswered:
    """Routed calls: the B leg dialled for ``label`` answered (the call is connected)."""

    label: str


@dataclass(slots=True)
class DigitPressed:
    """The caller sent a DTMF digit by SIP INFO while no B leg is connected (RFC 4733
    digits arrive in the media, seen by the relay instead)."""

    digit: str


@dataclass(frozen=True, slots=True)
class TransferRequested:
    """``referrer``, bridged to ``transferee``, sent a REFER (RFC 3515) naming
    ``refer_to``: the shell authorises it, then answers with ``accept_transfer``
    or ``refuse_transfer`` (see ``switch.transfer``)."""

    referrer: Party
    transferee: Party
    request: Request
    refer_to: ReferTo


@dataclass(frozen=True, slots=True)
class TransferAbandoned:
    """The call ended while the transfer it accepted was still being set up: the
    shell drops the attempt (hangs up the new call towards the target)."""


CallCommand = (
    LegSend
    | MediaUpdate
    | MediaAnswered
    | CallEnded
    | DialFailed
    | TargetAnswered
    | DigitPressed
    | TransferRequested
    | TransferAbandoned
)


# --------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class MediaPlan:
    """The relay's address and RTP ports for each side (RTCP = RTP + 1)."""

    address: str
    a_port: int
    b_port: int


@dataclass(frozen=True, slots=True)
class Limits:
    ring_timeout: float = 60.0  # unanswered B legs are cancelled: no_answer
    max_duration: float = 4 * 3600.0  # answered calls are hung up: safeguard


# What a B leg's INVITE offers (``switch.directory.Device.srtp``, the module docstring).
SrtpOffer = Literal["off", "offer", "require"]


@dataclass(frozen=True, slots=True)
class Target:
    """One B leg to start: the callee's contact and where to send."""

    request_uri: Uri
    dest: Endpoint
    config: SessionConfig
    from_: str
    to: str
    route: tuple[str, ...] = ()
    label: str = ""  # for the CDR: the line or contact called
    extra: tuple[tuple[str, str], ...] = ()  # more INVITE headers (PAI, Diversion, History-Info)
    line: str = ""  # the line (or trunk) key the leg counts against, if known
    srtp: SrtpOffer = "off"  # SDES-SRTP offered to the callee


# Transfers: the referrer gets its BYE when its final NOTIFY is answered, or after
# this many seconds; a re-offer that meets another offer in progress is retried.
BYE_AFTER_NOTIFY = 4.0
REOFFER_DELAY = 0.5
REOFFER_TRIES = 8
# RFC 3326: the CANCEL of a phone whose ringing call was picked up elsewhere.
COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'

# The SDES crypto-suites the relay terminates (``media.relay.SRTP_PROFILES``).
SRTP_SUITES = (
    "AES_CM_128_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
)
SRTP_KEY_MATERIAL = max(SRTP_KEY_LENGTHS[suite] for suite in SRTP_SUITES)


# What the switch can play itself (``ivr.announcements.CODECS``): when it answers the
# caller (early media, a local answer), the caller's first offered one of these.
PLAYABLE = (Codec("PCMU"), Codec("PCMA"), Codec("G722"))
_PLAYABLE_KEYS = {codec.key for codec in PLAYABLE}


@dataclass(frozen=True, slots=True)
class LocalMedia:
    """The caller's media once the switch has answered it itself (183 or 200 with our
    SDP): the codec to play announcements in and the RFC 4733 payload type, if any.
    From then on B legs are offered this codec only (no transcoding)."""

    encoding: str  # "PCMU" | "PCMA" | "G722"
    pt: int
    dtmf_pt: int | None


class CallState(enum.IntEnum):
    TRYING = 0
    RINGING = 1
    CONNECTED = 2
    ENDING = 3
    ENDED = 4


# ----------------------------------------------------------------------- call


@dataclass(slots=True, eq=False)  # parties are compared by identity
class Party:
    """One leg of a call and what the call knows of the phone behind it. A party
    may move to another call (a transfer, a pickup): ``Call.adopt``."""

    leg: InviteSession
    side: str  # "a" | "b": the relay side it is on
    dest: Endpoint
    label: str = ""
    sent: SessionDescription | None = None  # the last SDP we sent on this leg
    final_status: int | None = None
    failure: tuple[int, str | None] | None = None
    crypto: Crypto | None = None  # the phone's accepted a=crypto: SRTP terminated here
    line: str = ""  # the line (or trunk) key the leg counts against, if known
    heard: SessionDescription | None = None  # the last SDP the phone sent
    srtp: SrtpOffer = "off"  # B legs: SDES-SRTP offered in our INVITE (``Target.srtp``)


@dataclass(slots=True)
class _Forward:
    """A request relayed to the other leg, waiting for its answer; ``origin`` None:
    our own re-offer (a party joined by a transfer gets its new media)."""

    origin: Party | None
    request: Request | None


@dataclass(slots=True)
class _Transfer:
    """A REFER this call accepted (202 sent), its implicit subscription (RFC 3515
    §2.4.4) reported by NOTIFYs on the referrer's dialog."""

    referrer: Party
    transferee: Party
    request: Request
    gone: bool = False  # the referrer hung up meanwhile (a blind transfer's habit)
    final: bool = False  # the final NOTIFY is sent


class Call:
    """One B2BUA call; see the module docstring."""

    def __init__(
        self,
        a_leg: InviteSession,
        *,
        a_dest: Endpoint,
        ids: SessionIds,
        media: MediaPlan | None,
        now: float,
        started_at: datetime,
        caller: str,
        called: str,
        id: str = "",
        limits: Limits = Limits(),
        srtp_keys: tuple[bytes, bytes] | None = None,
        line: str = "",
    ) -> None:
        assert a_leg.invite is not None
        if srtp_keys is not None and min(map(len, srtp_keys)) < SRTP_KEY_MATERIAL:
            raise ValueError(f"srtp_keys need {SRTP_KEY_MATERIAL} bytes per side")
        self._srtp_keys = srtp_keys  # (A side, B side): the switch's own SRTP keys
        self.id = id or a_leg.call_id
        # ``a`` and ``winner`` are the parties bridged through the relay's sides a
        # and b: at first the caller and the B leg that answered; a transfer or a
        # pickup may put another party (from another call) in either place.
        self.a = Party(a_leg, "a", a_dest, label=caller, line=line)
        self.b: list[Party] = []
        self.winner: Party | None = None
        self._all: list[Party] = [self.a]  # every party this call drives
        self._retired: list[Party] = []  # replaced or transferred away: only wound down
        self._moved: list[Party] = []  # handed over to another call (kept for the CDR)
        self._a_call_id = a_leg.call_id
        # Headers every B leg's INVITE carries (Referred-By, on a transfer's call).
        self.leg_headers: tuple[tuple[str, str], ...] = ()
        self._transfer: _Transfer | None = None
        # The referrer of a transfer done, and when it gets its BYE at the latest
        # (before, once its final NOTIFY is answered).
        self._bye_after_notify: tuple[Party, float] | None = None
        self._reoffers: dict[int, tuple[Party, float, int]] = {}  # id(party): (party, at, tries)
        self.ids = ids
        self.media = media
        self.limits = limits
        self.caller = caller
        self.called = called
        self.state = CallState.TRYING
        self.outcome: Outcome | None = None
        self.cause = ""
        self._t0 = now
        self._started_at = started_at
        self._answered: float | None = None
        self._ended: float | None = None
        self._ring_deadline: float | None = None
        self._end_deadline: float | None = None
        self._session_id = ids.rng.randrange(1, 2**31)
        self._offer: SessionDescription | None = None  # A's initial offer
        self._codecs: tuple[str, ...] = ()
        self._forwards: dict[tuple[int, str], _Forward] = {}  # (id(target leg), method)
        self._late_offer: Party | None = None  # B's 2xx offered; A's ACK answers
        self._commands: list[CallCommand] = []
        self._last_provisional = 0
        # Routed calls (a routing program decides): a failed dial is reported
        # (``DialFailed``) instead of ending the call, and the next ``dial`` may follow.
        self.routed = False
        self.because: list[str] = []  # the routing trace, for the CDR
        self.messages: list[str] = []  # messages the caller heard, for the CDR
        self._attempt: list[Party] = []  # the B legs of the current dial
        # Our own answer to A's offer, once given (a 183 or a 200 carried it).
        self._local: LocalMedia | None = None
        sdp = a_leg.initial_sdp
        if sdp is not None:
            self._offer = self._parse(sdp)
            if self._offer is not None and not isinstance(a_leg, LocalOrigin):
                self._media_from(self.a, self._offer)

    # ----------------------------------------------------------------- outputs

    def commands(self) -> list[CallCommand]:
        self._drain()
        out, self._commands = self._commands, []
        return out

    def get_timer(self) -> float | None:
        deadlines = [t for p in self._all if (t := p.leg.get_timer()) is not None]
        deadlines.extend(t for t in (self._ring_deadline, self._end_deadline) if t is not None)
        if self._bye_after_notify is not None:
            deadlines.append(self._bye_after_notify[1])
        deadlines.extend(at for _, at, _ in self._reoffers.values())
        return min(deadlines) if deadlines else None

    @property
    def started(self) -> float:
        """When the INVITE arrived (monotonic seconds, as ``now``)."""
        return self._t0

    @property
    def local_media(self) -> LocalMedia | None:
        """The caller's media when the switch answered it itself (``early_media``)."""
        return self._local

    @property
    def finished(self) -> bool:
        """Ended, and no leg has anything left to do: forget the call."""
        return (
            self.state is CallState.ENDED
            and self._bye_after_notify is None
            and all(p.leg.terminated and p.leg.get_timer() is None for p in self._all)
        )

    # ------------------------------------------------------------------ inputs

    def dial(
        self, targets: Sequence[Target], now: float, *, ring_timeout: float | None = None
    ) -> None:
        """Start one B leg per target, in parallel (the first to answer wins), ringing
        for ``ring_timeout`` seconds (default: ``limits.ring_timeout``)."""
        if self.state >= CallState.ENDING:
            return
        if not targets:
            if self.routed:
                self._commands.append(DialFailed(Outcome.UNREACHABLE, "unregistered"))
            else:
                self.reject(480, now, cause="unregistered")
            return
        if self.media is None:
            raise ValueError("dial needs the media plan (relay ports) first")
        offer = self._offer
        if offer is not None and self._local is not None:
            offer = _only_formats(offer, self._local)
        attempt = []
        # RFC 3262 end to end: B legs are offered 100rel when the caller supports it,
        # and their reliable provisionals reach the caller reliably.
        a_100rel = self._a_100rel()
        for target in targets:
            sent = None
            if offer is not None:
                sent = self._b_offer(offer, target.srtp)
            config = target.config
            if a_100rel and not config.use_100rel:
                config = replace(config, use_100rel=True)
            leg = InviteSession.uac(
                config,
                self.ids,
                from_=target.from_,
                to=target.to,
                request_uri=target.request_uri,
                now=now,
                body=_body(sent),
                route=target.route,
                extra=target.extra + self.leg_headers,
            )
            label = target.label or str(target.request_uri)
            party = Party(leg, "b", target.dest, label=label, sent=sent, line=target.line)
            party.srtp = target.srtp if self._srtp_keys is not None else "off"
            attempt.append(party)
        self.b.extend(attempt)
        self._all.extend(attempt)
        self._attempt = attempt
        self._ring_deadline = now + (ring_timeout or self.limits.ring_timeout)
        self._drain()

    def extend_dial(self, targets: Sequence[Target], now: float) -> None:
        """Add B legs to the dial in progress (same ring deadline): a mobile rung after
        the desk phone. Ignored when no dial is in progress (answered, failed, over)."""
        if not targets or not self._attempt or self.winner is not None:
            return
        if self.state >= CallState.ENDING or self._ring_deadline is None:
            return
        deadline = self._ring_deadline
        attempt = self._attempt
        self.dial(targets, now)
        self._attempt = attempt + self._attempt
        self._ring_deadline = deadline

    def early_media(self, now: float) -> LocalMedia | None:
        """Answer the caller's offer with the switch's own SDP in a ``183`` (early
        media: an ATP, a message before release); None when impossible (no offer,
        no playable codec, or the call is over)."""
        if self.state >= CallState.ENDING:
            return None
        first = self._local is None
        local = self._answer_offer()
        if local is None:
            return None
        if first and self.state < CallState.CONNECTED:
            assert self.a.sent is not None
            assert self.a.leg.invite is not None
            try:
                self.a.leg.respond(
                    183,
                    now=now,
                    body=self.a.sent.serialize(),
                    reliable=requires_100rel(self.a.leg.invite),
                )
            except SipError:
                return None
            if self.state is CallState.TRYING:
                self.state = CallState.RINGING
            self._drain(now)
        return local

    def answer_locally(self, now: float) -> LocalMedia | None:
        """Answer the caller with the switch's own SDP (``200``): a message after
        answer, a menu, a star code. None when impossible (as ``early_media``)."""
        if self.state >= CallState.ENDING:
            return None
        local = self._answer_offer()
        if local is None or self.state is CallState.CONNECTED:
            return local
        assert self.a.sent is not None
        try:
            self.a.leg.respond(200, now=now, body=self.a.sent.serialize())
        except SipError:
            return None
        self.a.final_status = 200
        self._codecs = (local.encoding,)
        self._connected(now)
        self._drain(now)
        return local

    def _answer_offer(self) -> LocalMedia | None:
        """Our answer to A's offer, once (then fixed): the first codec of the offer we
        can play, with telephone-event when offered."""
        if self._local is not None:
            return self._local
        offer = self._offer
        if offer is None or self.media is None:
            return None
        media = next((m for m in offer.media if m.kind == "audio" and not m.rejected), None)
        if media is None:
            return None
        offered = codecs(media)
        chosen = next(((pt, c) for pt, c in offered if c.key in _PLAYABLE_KEYS), None)
        if chosen is None:
            return None
        dtmf = next(
            (
                pt
                for pt, c in offered
                if c.encoding.lower() == TELEPHONE_EVENT and c.clock_rate == 8000
            ),
            None,
        )
        caps = [chosen[1]] + ([Codec(TELEPHONE_EVENT)] if dtmf is not None else [])
        try:
            template = negotiate(offer, caps)
        except SdpError:
            return None
        self._anchored(self.a, template)
        self._local = LocalMedia(chosen[1].encoding.upper(), chosen[0], dtmf)
        return self._local

    def reject(
        self, status: int, now: float, *, cause: str = "", reason: str | None = None
    ) -> None:
        """Refuse the call before any B leg answered (``status`` and ``reason`` to the caller)."""
        if self.state >= CallState.ENDING:
            return
        outcome = failure_outcome(status, cause or None)
        self.a.leg.hang_up(now, status=status, reason=reason)
        self._finish(outcome, cause or str(status), now)

    def handle(self, event: Event, now: float) -> bool:
        for party in self._all:
            if party.leg.handle(event, now):
                self._drain(now)
                return True
        return False

    def handle_timer(self, now: float) -> None:
        for party in self._all:
            party.leg.handle_timer(now)
        for key, (party, at, tries) in list(self._reoffers.items()):
            if now >= at:
                del self._reoffers[key]
                self._reoffer(party, now, tries=tries + 1)
        if self._bye_after_notify is not None and now >= self._bye_after_notify[1]:
            self._bye_referrer(now)
        if self._ring_deadline is not None and now >= self._ring_deadline:
            self._ring_deadline = None
            if self.routed and self.winner is None and self.state < CallState.ENDING:
                self._dial_failed(Outcome.NO_ANSWER, "ring-timeout", now)
            elif self.state < CallState.CONNECTED:
                self._fail_call(Outcome.NO_ANSWER, "ring-timeout", now)
        if self._end_deadline is not None and now >= self._end_deadline:
            self._end_deadline = None
            self.hang_up("max_duration", now)
        self._drain(now)

    def media_timeout(self, reason: str, now: float) -> None:
        """The relay heard nothing for too long: BYE both legs."""
        self.hang_up(reason or "rtp_timeout", now)

    def hang_up(self, cause: str, now: float) -> None:
        """End the call from the switch's side (shutdown, safeguard, media loss)."""
        if self.state >= CallState.ENDING:
            return
        for party in self._all:
            party.leg.hang_up(now, status=480)
        outcome = Outcome.ANSWERED if self.state is CallState.CONNECTED else Outcome.CANCELLED
        self._finish(outcome, cause, now)
        self._drain(now)

    # ----------------------------------------------------------------- internals

    def _peer(self, party: Party) -> Party | None:
        if party is self.a:
            return self.winner
        return self.a if party is self.winner else None

    def _drain(self, now: float | None = None) -> None:
        """Pump every leg's events into the call, their commands out (bounded)."""
        when = self._t0 if now is None else now
        for _ in range(1000):
            progress = False
            for party in list(self._all):  # a copy: an event may add or drop parties
                while (event := party.leg.next_event()) is not None:
                    progress = True
                    self._on_leg_event(party, event, when)
                for cmd in party.leg.commands():
                    progress = True
                    self._commands.append(LegSend(party.leg, cmd, party.dest))
            if not progress:
                return

    def _on_leg_event(self, party: Party, event: SessionEvent, now: float) -> None:
        xfer = self._transfer
        if (
            isinstance(event, SessionEnded)
            and xfer is not None
            and party is xfer.referrer
            and not xfer.final
        ):
            # RFC 3515 leaves the referrer free to leave once the REFER is accepted
            # (a blind transfer): the transferee stays for the attempt's outcome.
            xfer.gone = True
            party.final_status = party.final_status or event.status
            return
        if party in self._retired:
            self._on_retired_event(party, event, now)
        elif party is self.a:
            self._on_a_event(event, now)
        else:
            self._on_b_event(party, event, now)

    # A leg (the caller) ---------------------------------------------------------------

    def _on_a_event(self, event: SessionEvent, now: float) -> None:
        if isinstance(event, CallCancelled):
            if self.state < CallState.CONNECTED:
                for b in self.b:
                    b.leg.hang_up(now)
                self._finish(Outcome.CANCELLED, "caller-cancelled", now)
        elif isinstance(event, CallConfirmed):
            late = self._late_offer
            if late is not None and event.sdp is not None:
                self._late_offer = None
                sdp = self._parse(event.sdp)
                if sdp is not None:
                    self._media_from(self.a, sdp)
                    late.leg.ack(self._anchored(late, sdp), now)
        elif isinstance(event, InDialogRequestReceived):
            self._on_in_dialog_request(self.a, event, now)
        elif isinstance(event, InDialogResponseReceived):
            self._on_in_dialog_response(self.a, event, now)
        elif isinstance(event, SessionEnded):
            if self.a.final_status is None:
                self.a.final_status = event.status
            if self.state < CallState.ENDING:
                winner = self.winner
                if winner is not None:
                    winner.leg.hang_up(now)
                else:
                    for b in self.b:
                        b.leg.hang_up(now)
                outcome = (
                    Outcome.ANSWERED if self.state is CallState.CONNECTED else Outcome.CANCELLED
                )
                self._finish(outcome, f"caller-{event.reason}", now)

    # B legs (the callee side) ------------------------------------------------------

    def _on_b_event(self, party: Party, event: SessionEvent, now: float) -> None:
        if isinstance(event, ProvisionalReceived):
            self._on_provisional(party, event, now)
        elif isinstance(event, CallAnswered):
            self._on_answered(party, event, now)
        elif isinstance(event, CallFailed):
            party.final_status = event.status
            party.failure = _failure_cause(event)
            self._b_failed(party, now)
        elif isinstance(event, InDialogRequestReceived):
            self._on_in_dialog_request(party, event, now)
        elif isinstance(event, InDialogResponseReceived):
            self._on_in_dialog_response(party, event, now)
        elif (
            isinstance(event, SessionEnded)
            and party is self.winner
            and self.state < CallState.ENDING
        ):
            self.a.leg.hang_up(now)
            self._finish(Outcome.ANSWERED, f"callee-{event.reason}", now)

    def _b_failed(self, party: Party, now: float) -> None:
        """``party`` (a B leg) has failed: once every leg of the dial has, so has the dial."""
        if party not in self._attempt:
            return  # a leg of an earlier dial, already given up
        settled = all(b.failure is not None for b in self._attempt)
        if settled and self.winner is None and self.state < CallState.ENDING:
            failures = [b.failure for b in self._attempt if b.failure is not None]
            ranked = [(failure_outcome(*f), f) for f in failures]
            best, (status, cause) = min(ranked, key=lambda r: _PRECEDENCE.index(r[0]))
            if self.routed:
                self._dial_failed(best, cause or str(status), now)
            elif self.state < CallState.CONNECTED:
                self._fail_call(best, cause or str(status), now)

    def _on_provisional(self, party: Party, event: ProvisionalReceived, now: float) -> None:
        status = event.response.status
        if status == 100 or self.state >= CallState.CONNECTED:
            return
        if party not in self._attempt:
            return
        body = b""
        if event.sdp is not None and event.sdp.kind == "answer":
            sdp = self._parse(event.sdp)
            if sdp is not None and not self._refuses_srtp(party, sdp):
                self._media_from(party, sdp)
                if self._local is None:
                    body = self._anchored(self.a, sdp)
        if self._local is not None:
            return  # the caller has our early media already: nothing more to say
        if not body and status == self._last_provisional:
            return
        self._last_provisional = status
        invite = self.a.leg.invite
        assert invite is not None
        # RFC 3262 §3: a caller that requires 100rel gets only reliable 1xx; one that
        # supports it, those the callee sent reliably.
        reliable = requires_100rel(invite) or (event.reliable and self._a_100rel())
        try:
            self.a.leg.respond(status, now=now, body=body, reliable=reliable)
        except SipError:
            return
        if self.state is CallState.TRYING:
            self.state = CallState.RINGING

    def _on_answered(self, party: Party, event: CallAnswered, now: float) -> None:
        party.final_status = event.response.status
        if self.winner is not None or self.state >= CallState.ENDING or party not in self._attempt:
            party.leg.bye(now)  # another B leg answered first, or the caller left
            return
        sdp = self._parse(event.sdp) if event.sdp is not None else None
        if not event.awaiting_answer and sdp is not None and self._refuses_srtp(party, sdp):
            # Our RTP/SAVP offer answered without SRTP: no session to keep (the ACK
            # is sent, then a BYE); the leg fails like a 488 would have.
            party.leg.bye(now)
            party.failure = (488, "srtp-refused")
            self._b_failed(party, now)
            return
        self.winner = party
        self._ring_deadline = None
        for other in self._attempt:
            if other is not party:
                other.leg.hang_up(now)
        if self.routed:
            self._commands.append(TargetAnswered(party.label))
        if sdp is not None:
            self._media_from(party, sdp)
            self._codecs = _codec_names(sdp)
        if self.state is not CallState.CONNECTED and not _awaits_answer(self.a.leg):
            # The caller was replaced while it rang by a party already in a call (a
            # transfer naming a ringing consultation): it gets the answer as a re-offer.
            if event.awaiting_answer:
                party.leg.ack(b"", now)  # we made an offer: a 2xx offer is not expected
            self._connected(now)
            self._reoffer(self.a, now)
            return
        body = b""
        if sdp is not None:
            if self._local is not None:
                # The caller has our answer already (RFC 3261 §13.2.1: it ignores
                # any later one): the same SDP again; B was offered its codec only.
                assert self.a.sent is not None
                body = self.a.sent.serialize()
            else:
                body = self._anchored(self.a, sdp)
                if event.awaiting_answer:
                    self._late_offer = party  # A's ACK carries the answer
        if self.state is CallState.CONNECTED:
            return  # answered locally before (a message after answer): now bridged
        try:
            self.a.leg.respond(200, now=now, body=body)
        except SipError:
            party.leg.bye(now)
            return
        self.a.final_status = 200
        self._connected(now)

    def _a_100rel(self) -> bool:
        leg = self.a.leg
        return (
            not isinstance(leg, LocalOrigin)
            and _awaits_answer(leg)
            and leg.invite is not None
            and supports_100rel(leg.invite)
        )

    def _connected(self, now: float) -> None:
        self.state = CallState.CONNECTED
        self._answered = now
        self._end_deadline = now + self.limits.max_duration
        self._commands.append(MediaAnswered())

    def _dial_failed(self, outcome: Outcome, cause: str, now: float) -> None:
        """Routed calls: the current dial is over, the caller stays for what follows."""
        for b in self._attempt:
            b.leg.hang_up(now)
        self._attempt = []
        self._ring_deadline = None
        self._commands.append(DialFailed(outcome, cause))

    def _fail_call(self, outcome: Outcome, cause: str, now: float) -> None:
        for b in self.b:
            b.leg.hang_up(now)
        status = OUTCOME_STATUS.get(outcome, 480)
        if self.a.leg.state < LegState.ANSWERED:
            self.a.leg.hang_up(now, status=status)
            self.a.final_status = status
        else:
            self.a.leg.hang_up(now)  # a transferee that waited in a ringing call
        self._finish(outcome, cause, now)

    # re-INVITE / UPDATE / INFO, either way ---------------------------------------------

    def _on_in_dialog_request(
        self, party: Party, event: InDialogRequestReceived, now: float
    ) -> None:
        request = event.request
        method = request.method
        peer = self._peer(party)
        if method in ("INVITE", "UPDATE") and event.sdp is not None and peer is not None:
            sdp = self._parse(event.sdp)
            if sdp is None:
                party.leg.respond_to(request, 488, now=now)
                return
            self._media_from(party, sdp)
            body = self._anchored(peer, sdp)
            try:
                if method == "INVITE":
                    out = peer.leg.reinvite(body, now)
                else:
                    out = peer.leg.update(body, now)
            except SipError:
                party.leg.respond_to(request, 500, now=now, extra=[("Retry-After", "1")])
                return
            self._forwards[(id(peer.leg), method)] = _Forward(party, request)
            del out
            return
        if method == "INVITE":
            # No offer: a session refresh, or a request for our offer; give our last SDP.
            party.leg.respond_to(request, 200, now=now, body=_body(party.sent))
        elif method == "UPDATE":
            party.leg.respond_to(request, 200, now=now)
        elif method == "INFO" and peer is None and party is self.a:
            party.leg.respond_to(request, 200, now=now)
            with contextlib.suppress(DtmfError):
                info = parse_info(request.headers.get("Content-Type") or "", request.body)
                self._commands.append(DigitPressed(info.digit))
        elif method == "INFO" and peer is not None:
            party.leg.respond_to(request, 200, now=now)
            with contextlib.suppress(SipError):
                peer.leg.request(
                    "INFO",
                    now,
                    body=request.body,
                    content_type=request.headers.get("Content-Type"),
                )
        elif method == "REFER":
            self._on_refer(party, request, now)
        elif method in ("OPTIONS", "INFO", "NOTIFY"):
            party.leg.respond_to(request, 200, now=now)
        else:
            party.leg.respond_to(request, 501, now=now)

    def _on_in_dialog_response(
        self, party: Party, event: InDialogResponseReceived, now: float
    ) -> None:
        method = event.request.method
        if method == "NOTIFY":
            return  # the REFER's subscription (the referrer is retired once it is over)
        forward = self._forwards.pop((id(party.leg), method), None)
        if forward is None:
            return
        status = event.response.status
        origin, request = forward.origin, forward.request
        if origin is None or request is None:
            self._reoffer_answered(party, event, now)
            return
        body = b""
        if 200 <= status < 300:
            sdp = self._parse(event.sdp) if event.sdp is not None else None
            if sdp is not None:
                self._media_from(party, sdp)
                self._codecs = _codec_names(sdp) or self._codecs
                body = self._anchored(origin, sdp)
            elif request.method == "INVITE":
                body = _body(origin.sent)
        elif status in (408, 481):
            status = 500
        if request is origin.leg.invite and _awaits_answer(origin.leg):
            # The INVITE with Replaces of a party that took a bridged phone's place:
            # its offer went to the peer as a re-INVITE, whose answer answers it.
            with contextlib.suppress(SipError):
                origin.leg.respond(status, now=now, body=body)
            origin.final_status = status
            if status >= 300:
                self.hang_up("replace-failed", now)
            return
        with contextlib.suppress(SipError):
            origin.leg.respond_to(request, status, now=now, body=body)

    def _on_retired_event(self, party: Party, event: SessionEvent, now: float) -> None:
        """A party no longer bridged (replaced, or a referrer whose call was handed
        over): its leg is only wound down."""
        if isinstance(event, InDialogRequestReceived):
            status = 481 if event.request.method in ("INVITE", "UPDATE", "REFER") else 200
            with contextlib.suppress(SipError):
                party.leg.respond_to(event.request, status, now=now)
        elif isinstance(event, InDialogResponseReceived):
            bye = self._bye_after_notify
            if (
                event.request.method == "NOTIFY"
                and bye is not None
                and party is bye[0]
                and event.response.status >= 200
            ):
                self._bye_referrer(now)
        elif isinstance(event, CallAnswered):
            party.final_status = event.response.status
            party.leg.bye(now)  # answered across our CANCEL
        elif isinstance(event, CallFailed | SessionEnded) and party.final_status is None:
            party.final_status = event.status

    # transfers (REFER, RFC 3515) and replacements (Replaces, RFC 3891) --------------------

    def _on_refer(self, party: Party, request: Request, now: float) -> None:
        """RFC 3515 §2.4.2: a REFER is accepted (202) or refused; here only a bridged
        party may hand its peer over, one transfer at a time, and the shell decides
        (``TransferRequested``) whether the Refer-To may be called for it."""
        peer = self._peer(party)
        if self.state is not CallState.CONNECTED or peer is None:
            party.leg.respond_to(request, 403, now=now, reason="No call to transfer")
            return
        if self._transfer is not None:
            party.leg.respond_to(request, 491, now=now)
            return
        try:
            target = refer_to_of(request)
            target.replaces  # noqa: B018 - parsed now, to answer 400 if malformed
        except SipError as err:
            party.leg.respond_to(request, err.status_code, now=now, reason=err.reason)
            return
        self._commands.append(TransferRequested(party, peer, request, target))

    def refuse_transfer(
        self, requested: TransferRequested, status: int, now: float, *, reason: str | None = None
    ) -> None:
        """Answer the REFER of ``requested`` with ``status`` (403: not allowed)."""
        with contextlib.suppress(SipError):
            requested.referrer.leg.respond_to(requested.request, status, now=now, reason=reason)
        self._drain(now)

    def accept_transfer(self, requested: TransferRequested, now: float) -> bool:
        """Answer the REFER of ``requested`` 202 and open its implicit subscription
        with a first NOTIFY, ``SIP/2.0 100 Trying`` (RFC 3515 §2.4.4-5). The call
        stays bridged until ``hand_over`` (or ``transfer_failed``)."""
        referrer = requested.referrer
        if (
            self._transfer is not None
            or self.state is not CallState.CONNECTED
            or self._peer(referrer) is not requested.transferee
        ):
            self.refuse_transfer(requested, 491, now)
            return False
        try:
            referrer.leg.respond_to(requested.request, 202, now=now)
        except SipError:
            return False
        self._transfer = _Transfer(referrer, requested.transferee, requested.request)
        self._notify(SipFrag(100, "Trying"), now)
        self._drain(now)
        return True

    @property
    def transferring(self) -> bool:
        """A REFER was accepted and its outcome is not known yet."""
        return self._transfer is not None

    def transfer_offer(self) -> bytes:
        """What the transferee's phone sends and receives now (its codecs in use),
        as an offer for the transfer's target (not anchored: the new call does)."""
        xfer = self._transfer
        if xfer is None or xfer.transferee.heard is None:
            return b""
        return _active(_in_use(xfer.transferee)).serialize()

    def transfer_progress(self, status: int, reason: str, now: float) -> None:
        """The attempt towards the target got a provisional ``status``: a NOTIFY."""
        if self._transfer is not None and 100 < status < 200:
            self._notify(SipFrag(status, reason), now)
            self._drain(now)

    def transfer_failed(self, status: int, reason: str, now: float) -> None:
        """The attempt failed (``status`` as the target, or routing, answered): the
        final NOTIFY says so and the call stays as it was, the referrer may take it
        back (RFC 5589 §6); if the referrer has left, the transferee is released."""
        xfer = self._transfer
        if xfer is None:
            return
        self._notify(SipFrag(status, reason or "Failed"), now)
        self._transfer = None
        if xfer.gone:
            self.hang_up("transfer-failed", now)
        self._drain(now)

    def hand_over(self, now: float) -> Party:
        """The transfer succeeded: final NOTIFY (200), the transferee leaves this call
        for another (``Call.adopt``), the referrer gets its BYE once the NOTIFY is
        answered (it may hang up itself first), and this call ends: ``transferred``."""
        xfer = self._transfer
        if xfer is None:
            raise ValueError("no transfer was accepted")
        self._notify(SipFrag(200, "OK"), now)
        self._transfer = None
        transferee = self._detach(xfer.transferee, now)
        referrer = xfer.referrer
        if referrer not in self._retired:
            self._retired.append(referrer)
        if not xfer.gone and referrer.leg.state < LegState.TERMINATING:
            self._bye_after_notify = (referrer, now + BYE_AFTER_NOTIFY)
        self._finish(Outcome.ANSWERED, "transferred", now)
        return transferee

    def release_a(self, cause: str, now: float) -> Party:
        """Give up the caller's leg to another call (a star-code pickup: the picker's
        INVITE answers the ringing call instead); this call ends, the leg untouched."""
        party = self._detach(self.a, now)
        for b in self.b:
            b.leg.hang_up(now)
        self._finish(Outcome.ANSWERED, cause, now)
        return party

    def _notify(self, frag: SipFrag, now: float) -> None:
        """A NOTIFY of the REFER's subscription to the referrer (RFC 3515 §2.4.5)."""
        xfer = self._transfer
        if xfer is None or xfer.gone or xfer.final:
            return
        extra = [("Event", "refer"), ("Subscription-State", subscription_state(frag))]
        with contextlib.suppress(SipError):
            xfer.referrer.leg.request(
                "NOTIFY", now, body=frag.to_bytes(), content_type=SIPFRAG, extra=extra
            )
        xfer.final = frag.final

    def _bye_referrer(self, now: float) -> None:
        bye, self._bye_after_notify = self._bye_after_notify, None
        if bye is not None:
            bye[0].leg.bye(now)

    def _detach(self, party: Party, now: float) -> Party:
        """Take ``party`` out of this call (its leg stays as it is): what was being
        relayed from or to it is refused, so the leg is free for its next call."""
        self._drop_forwards(party, now, own=491, relayed=487)
        if party in self._all:
            self._all.remove(party)
        self._moved.append(party)
        self._drain(now)
        return party

    def party_named(self, replaces: Replaces) -> tuple[Party, Dialog] | None:
        """The party whose leg holds the dialog ``replaces`` names, seen from here
        or from the phone (``names_dialog``, ``either_way``); retired legs excluded."""
        for party in self._all:
            if party in self._retired:
                continue
            for dialog in party.leg.dialogs.values():
                if names_dialog(replaces, dialog, either_way=True):
                    return party, dialog
        return None

    def bridged(self, party: Party) -> bool:
        """``party`` is one of the two phones talking through the relay."""
        return self.state is CallState.CONNECTED and (party is self.a or party is self.winner)

    def ringing(self, party: Party) -> bool:
        """``party`` is a B leg of the current dial, not answered (yet)."""
        return (
            self.winner is None
            and self.state < CallState.CONNECTED
            and party in self._attempt
            and party.leg.state < LegState.ANSWERED
        )

    def ringing_line(self, line: str) -> Party | None:
        """A B leg of the current dial ringing a phone of ``line`` (a line key)."""
        return next((p for p in self._attempt if p.line == line and self.ringing(p)), None)

    def adopt(self, party: Party, replacing: Party, now: float) -> bool:
        """Put ``party``, a leg already in a dialog (moved from another call), in the
        place of ``replacing``, the caller or the answered callee, which is released
        (BYE, or 487 if it was still ringing). A bridged call gets ``party`` its new
        media at once (a re-INVITE with the peer's SDP); a call still ringing, when
        the callee answers. False if ``replacing`` is not the caller or callee."""
        if self.state >= CallState.ENDING or not (replacing is self.a or replacing is self.winner):
            return False
        party.side = replacing.side
        self._swap(replacing, party, now)
        if self.state is CallState.CONNECTED:
            self._reoffer(party, now)
        self._drain(now)
        return True

    def adopt_new(self, party: Party, replacing: Party, now: float) -> bool:
        """An INVITE with Replaces (RFC 3891) naming a bridged party: ``party`` (a new
        UAS leg with an offer) takes its place, the offer goes to the peer as a
        re-INVITE and its answer answers the INVITE. False (nothing changed) when
        the offer is unusable or the peer is busy with another offer."""
        peer = self._peer(replacing)
        if (
            not self.bridged(replacing)
            or peer is None
            or party.leg.initial_sdp is None
            or not _awaits_answer(party.leg)
        ):
            return False
        offer = self._parse(party.leg.initial_sdp)
        if offer is None:
            return False
        party.side = replacing.side
        sent = self._anchor_sdp(peer.side, offer, peer.sent, peer.crypto)
        try:
            peer.leg.reinvite(sent.serialize(), now)
        except SipError:
            return False
        peer.sent = sent
        self._forwards[(id(peer.leg), "INVITE")] = _Forward(party, party.leg.invite)
        self._media_from(party, offer)
        self._swap(replacing, party, now)
        self._drain(now)
        return True

    def pickup(self, party: Party, now: float) -> bool:
        """Answer this ringing call with ``party``, a new leg whose INVITE (with its
        offer) is not answered yet: the ringing B legs are cancelled ("Call completed
        elsewhere", RFC 3326), and both INVITEs are answered by the switch, on one
        codec both offered. False (nothing changed) if the call is not ringing, or
        no codec is common."""
        if not self._pickable() or not _awaits_answer(party.leg) or party.leg.initial_sdp is None:
            return False
        offer = self._parse(party.leg.initial_sdp)
        if offer is None:
            return False
        assert self._offer is not None
        caps = _pickup_codecs(self._offer, offer, self._local)
        if caps is None:
            return False
        try:
            answer = negotiate(offer, caps)
            to_a = negotiate(self._offer, caps) if self._local is None else None
        except SdpError:
            return False
        for b in self._attempt:
            if b.leg.role is Role.UAC and b.leg.state < LegState.ANSWERED:
                b.leg.cancel(now, reason=COMPLETED_ELSEWHERE)
        self._attempt = []
        self._ring_deadline = None
        party.side = "b"
        self.b.append(party)
        self._all.append(party)
        self.winner = party
        self._media_from(party, offer)
        party.leg.respond(200, now=now, body=self._anchored(party, answer))
        party.final_status = 200
        self._codecs = tuple(c.encoding for c in caps if c.encoding != TELEPHONE_EVENT)
        if self.routed:
            self._commands.append(TargetAnswered(party.label))
        if to_a is not None:
            self.a.leg.respond(200, now=now, body=self._anchored(self.a, to_a))
        elif self.a.sent is not None and self.state is not CallState.CONNECTED:
            self.a.leg.respond(200, now=now, body=self.a.sent.serialize())
        if self.state is not CallState.CONNECTED:
            self.a.final_status = 200
            self._connected(now)
        self._drain(now)
        return True

    def can_pick_up(self, offer: bytes) -> bool:
        """Whether ``pickup`` would take this call for an INVITE offering ``offer``."""
        if not self._pickable() or self._offer is None:
            return False
        try:
            sdp = SessionDescription.parse(offer)
        except (SdpError, ValueError):
            return False
        return _pickup_codecs(self._offer, sdp, self._local) is not None

    def _pickable(self) -> bool:
        return (
            self.state < CallState.CONNECTED
            and self.winner is None
            and any(self.ringing(p) for p in self._attempt)
            and self.media is not None
            and self._offer is not None
            and _awaits_answer(self.a.leg)
        )

    def _swap(self, old: Party, new: Party, now: float) -> None:
        """``new`` takes ``old``'s place on its relay side; ``old`` is released."""
        if old is self.a:
            self.a = new
        elif old is self.winner:
            self.winner = new
        if new not in self._all:
            self._all.append(new)
        self._drop_forwards(old, now, own=None, relayed=491)  # its BYE answers its own
        self._retired.append(old)
        old.leg.hang_up(now, status=487)

    def _drop_forwards(self, party: Party, now: float, *, own: int | None, relayed: int) -> None:
        """Forget what was being relayed from or to ``party`` and its pending
        re-offer: its own requests are answered ``own`` (None: left unanswered),
        those relayed to it are answered ``relayed`` to whoever sent them."""
        for key, forward in list(self._forwards.items()):
            if forward.origin is party:
                del self._forwards[key]
                if own is not None and forward.request is not None:
                    with contextlib.suppress(SipError):
                        party.leg.respond_to(forward.request, own, now=now)
            elif key[0] == id(party.leg):
                del self._forwards[key]
                if forward.origin is not None and forward.request is not None:
                    with contextlib.suppress(SipError):
                        forward.origin.leg.respond_to(forward.request, relayed, now=now)
        self._reoffers.pop(id(party), None)

    def _reoffer(self, party: Party, now: float, *, tries: int = 0) -> None:
        """Give ``party``, newly bridged to its peer by a transfer, the peer's media:
        a re-INVITE (RFC 3261 §14.1) offering the codecs the peer uses now, both
        ways (a transfer ends any hold). Retried while the leg is busy with another
        offer; our own, so its answer only updates the relay (``_reoffer_answered``)."""
        peer = self._peer(party)
        if (
            peer is None
            or peer.heard is None
            or self.state >= CallState.ENDING
            or party.leg.state is not LegState.CONFIRMED
        ):
            return
        body = self._anchored(party, _active(_in_use(peer)))
        try:
            party.leg.reinvite(body, now)
        except SipError:
            if tries >= REOFFER_TRIES:
                self.hang_up("join-failed", now)
            else:
                self._reoffers[id(party)] = (party, now + REOFFER_DELAY, tries)
            return
        self._forwards[(id(party.leg), "INVITE")] = _Forward(None, None)

    def _reoffer_answered(self, party: Party, event: InDialogResponseReceived, now: float) -> None:
        status = event.response.status
        if not 200 <= status < 300:
            # The phone refused the media of its new peer (488...), or its dialog is
            # gone: the join failed, and the call with it.
            self.hang_up("join-failed", now)
            return
        sdp = self._parse(event.sdp) if event.sdp is not None else None
        if sdp is None:
            return
        self._media_from(party, sdp)
        self._codecs = _codec_names(sdp) or self._codecs
        peer = self._peer(party)
        if peer is not None and peer.sent is not None and _held(peer.sent):
            # The peer was on hold (put there by the party that left): resume it.
            self._reoffer(peer, now)

    # media ---------------------------------------------------------------------------

    @staticmethod
    def _parse(sdp: Sdp) -> SessionDescription | None:
        try:
            return SessionDescription.parse(sdp.body)
        except (SdpError, ValueError):
            return None

    def _anchor_sdp(
        self,
        side: str,
        sdp: SessionDescription,
        previous: SessionDescription | None,
        crypto: Crypto | None,
        *,
        secure: bool = True,
    ) -> SessionDescription:
        """``sdp`` (from the other side) rewritten for the leg on ``side``: the
        first audio stream at that side's relay port, any other stream refused;
        with SRTP termination, the switch's ``a=crypto`` when ``crypto`` (the
        phone's) is given, on RTP/SAVP (RTP/AVP when not ``secure``: best-effort
        SRTP agreed that way), else plain RTP."""
        assert self.media is not None
        port = self.media.a_port if side == "a" else self.media.b_port
        first = next(
            (i for i, m in enumerate(sdp.media) if m.kind == "audio" and not m.rejected), None
        )
        if self._srtp_keys is not None and first is not None:
            media = strip_crypto(sdp.media[first])
            if crypto is not None:
                key = base64.b64encode(self._own_key(side, crypto.suite)).decode()
                media = set_secure(add_crypto(media, crypto.suite, key, tag=crypto.tag), secure)
            sdp = sdp_replace(sdp, media=(*sdp.media[:first], media, *sdp.media[first + 1 :]))
        ports = [port if i == first else 0 for i in range(len(sdp.media))]
        return anchor(
            sdp,
            address=self.media.address,
            ports=ports,
            session_id=self._session_id + (0 if side == "a" else 1),
            previous=previous,
        )

    def _anchored(self, party: Party, sdp: SessionDescription) -> bytes:
        """``sdp`` (from the other side) rewritten for ``party``'s leg, remembered."""
        party.sent = self._anchor_sdp(
            party.side,
            sdp,
            party.sent,
            party.crypto,
            secure=party.srtp != "offer" or _savp(party.heard),
        )
        return party.sent.serialize()

    def _b_offer(self, offer: SessionDescription, srtp: SrtpOffer) -> SessionDescription:
        """A's offer as a B leg's INVITE offers it: anchored on side b and, when the
        callee's phone wants SDES-SRTP, with the switch's ``a=crypto`` for each of
        ``SRTP_SUITES`` (tags 1, 2...: RFC 4568 §9.1, in order of preference) on
        RTP/SAVP (``require``) or RTP/AVP (``offer``, best effort)."""
        sent = self._anchor_sdp("b", offer, None, None)
        if srtp == "off" or self._srtp_keys is None:
            return sent
        first = _first_audio(sent)
        if first is None:
            return sent
        media = sent.media[first]  # its a=crypto stripped by _anchor_sdp
        for tag, suite in enumerate(SRTP_SUITES, start=1):
            key = base64.b64encode(self._own_key("b", suite)).decode()
            media = add_crypto(media, suite, key, tag=tag)
        media = set_secure(media, srtp == "require")
        return sdp_replace(sent, media=(*sent.media[:first], media, *sent.media[first + 1 :]))

    def _refuses_srtp(self, party: Party, answer: SessionDescription) -> bool:
        """``answer`` does not take up the RTP/SAVP we offered ``party``. RFC 3264 §6:
        the answer's stream uses the offered transport; RFC 4568 §7.1.3: without a
        valid ``a=crypto`` for one we offered, the SRTP negotiation has failed."""
        if party.srtp != "require" or party.sent is None:
            return False
        first = _first_audio(answer)
        if first is None or "SAVP" not in answer.media[first].proto:
            return True
        try:
            crypto = select_crypto(answer.media[first], SRTP_SUITES)
            return crypto is None or not crypto.key()
        except SdpError:
            return True

    def _own_key(self, side: str, suite: str) -> bytes:
        """The switch's SRTP key||salt for the leg on ``side``, sized for ``suite``."""
        assert self._srtp_keys is not None
        material = self._srtp_keys[0] if side == "a" else self._srtp_keys[1]
        return material[: SRTP_KEY_LENGTHS[suite]]

    def _srtp_from(self, party: Party, media: Media) -> tuple[str, bytes, bytes] | None:
        """Whether ``party``'s phone uses SDES-SRTP in ``media`` (then terminated here)."""
        party.crypto = None
        # Best-effort SRTP (``offer``) is agreed on RTP/AVP with a=crypto.
        if self._srtp_keys is None or ("SAVP" not in media.proto and party.srtp != "offer"):
            return None
        try:
            crypto = select_crypto(media, SRTP_SUITES)
            key = crypto.key() if crypto is not None else None
        except SdpError:
            return None
        if crypto is None or key is None:
            return None
        party.crypto = crypto
        return crypto.suite, key, self._own_key(party.side, crypto.suite)

    def _media_from(self, party: Party, sdp: SessionDescription) -> None:
        """Tell the relay what ``party``'s phone said in ``sdp``."""
        party.heard = sdp
        media = next((m for m in sdp.media if m.kind == "audio" and not m.rejected), None)
        if media is None:
            self._commands.append(MediaUpdate(party.side, None, None, False, False))
            return
        conn = media.connection or sdp.connection
        host = conn.address.split("/", 1)[0] if conn is not None else ""
        held = direction(media, sdp)
        rtp: tuple[str, int] | None = None
        rtcp: tuple[str, int] | None = None
        if host and host not in ("0.0.0.0", "::"):
            rtp = (host, media.port)
            if media.has_attribute("rtcp-mux"):
                rtcp = rtp
            else:
                rtcp_port = media.port + 1
                value = media.attribute("rtcp")
                if value:
                    head = value.split()
                    if head and head[0].isdigit():
                        rtcp_port = int(head[0])
                    if len(head) == 4:
                        rtcp = (head[3], rtcp_port)
                rtcp = rtcp or (host, rtcp_port)
        srtp = self._srtp_from(party, media)
        self._commands.append(
            MediaUpdate(party.side, rtp, rtcp, sends=held.sends, receives=held.receives, srtp=srtp)
        )

    # end -------------------------------------------------------------------------------

    def _finish(self, outcome: Outcome, cause: str, now: float) -> None:
        if self.state >= CallState.ENDING:
            return
        if self._transfer is not None:
            self._transfer = None
            self._commands.append(TransferAbandoned())
        self.state = CallState.ENDING
        self.outcome = outcome
        self.cause = cause
        self._ended = now
        self._ring_deadline = self._end_deadline = None
        self._drain(now)
        self.state = CallState.ENDED
        self._commands.append(CallEnded(self.record()))

    def _at(self, t: float) -> datetime:
        return self._started_at + timedelta(seconds=t - self._t0)

    def record(self) -> CdrRecord:
        end = self._ended if self._ended is not None else self._t0
        return CdrRecord(
            id=self.id,
            call_id=self._a_call_id,
            started_at=self._started_at,
            answered_at=None if self._answered is None else self._at(self._answered),
            ended_at=self._at(end),
            caller=self.caller,
            called=self.called,
            outcome=self.outcome or Outcome.CANCELLED,
            cause=self.cause,
            legs=tuple(
                LegRecord(p.side, p.leg.call_id, p.label, p.final_status)
                for p in (*self._all, *self._moved)
                if not isinstance(p.leg, LocalOrigin)
            ),
            codecs=self._codecs,
            because=tuple(self.because),
            messages=tuple(self.messages),
        )


def _awaits_answer(leg: InviteSession) -> bool:
    """The leg's own INVITE (ours to answer) is not answered yet."""
    return leg.role is Role.UAS and leg.state < LegState.ANSWERED


def _savp(sdp: SessionDescription | None) -> bool:
    """The first audio stream of ``sdp`` is on a secure profile (RTP/SAVP, RTP/SAVPF)."""
    first = None if sdp is None else _first_audio(sdp)
    return sdp is not None and first is not None and "SAVP" in sdp.media[first].proto


def _first_audio(sdp: SessionDescription) -> int | None:
    return next((i for i, m in enumerate(sdp.media) if m.kind == "audio" and not m.rejected), None)


def _in_use(party: Party) -> SessionDescription:
    """What ``party``'s phone said last, its first audio stream reduced to the codecs
    of the last exchange (those in both its SDP and ours): a new peer must get
    exactly what the phone sends and expects, the relay does not transcode."""
    assert party.heard is not None
    heard, sent = party.heard, party.sent
    first = _first_audio(heard)
    if sent is None or first is None:
        return heard
    theirs = _first_audio(sent)
    if theirs is None:
        return heard
    keys = {codec.key for _, codec in codecs(sent.media[theirs])}
    media = heard.media[first]
    kept = {str(pt) for pt, codec in codecs(media) if codec.key in keys}
    if not any(c.encoding.lower() != TELEPHONE_EVENT for pt, c in codecs(media) if str(pt) in kept):
        return heard  # nothing in common (should not be): leave it to the phones
    return _keep_formats(heard, first, kept)


def _keep_formats(sdp: SessionDescription, index: int, kept: set[str]) -> SessionDescription:
    """``sdp`` with stream ``index`` reduced to the payload types in ``kept`` (with
    their rtpmap and fmtp lines)."""
    media = sdp.media[index]
    attributes = tuple(
        a
        for a in media.attributes
        if a.name not in ("rtpmap", "fmtp") or (a.value or "").split(" ", 1)[0] in kept
    )
    formats = tuple(f for f in media.formats if f in kept)
    media = sdp_replace(media, formats=formats, attributes=attributes)
    return sdp_replace(sdp, media=(*sdp.media[:index], media, *sdp.media[index + 1 :]))


def _active(sdp: SessionDescription) -> SessionDescription:
    """``sdp`` with its first audio stream sendrecv, whichever hold style it had."""
    first = _first_audio(sdp)
    if first is None:
        return sdp
    media = set_direction(sdp.media[first], Direction.SENDRECV)
    placeholder = Connection("IN", sdp.origin.addrtype, "192.0.2.1")  # anchor replaces it
    if media.connection is not None and media.connection.address.startswith(_ZERO):
        media = sdp_replace(media, connection=placeholder)
    connection = sdp.connection
    if connection is not None and connection.address.startswith(_ZERO):
        connection = placeholder
    attributes = tuple(a for a in sdp.attributes if not (a.value is None and a.name in _DIRECTIONS))
    return sdp_replace(
        sdp,
        connection=connection,
        attributes=attributes,
        media=(*sdp.media[:first], media, *sdp.media[first + 1 :]),
    )


_ZERO = ("0.0.0.0", "::")
_DIRECTIONS = frozenset(d.value for d in Direction)


def _held(sdp: SessionDescription) -> bool:
    """Our last SDP on a leg did not ask for media both ways (the leg is on hold)."""
    first = _first_audio(sdp)
    return first is not None and direction(sdp.media[first], sdp) is not Direction.SENDRECV


def _pickup_codecs(
    ringing: SessionDescription, picker: SessionDescription, local: LocalMedia | None
) -> list[Codec] | None:
    """The one codec a pickup answers both offers with: the caller's first that the
    picker offered too (the one the caller was answered with already, if any),
    plus telephone-event when both offered it. None: nothing in common."""
    first_a, first_p = _first_audio(ringing), _first_audio(picker)
    if first_a is None or first_p is None:
        return None
    theirs = {codec.key for _, codec in codecs(picker.media[first_p])}
    offered = [c for _, c in codecs(ringing.media[first_a])]
    usable = [
        c
        for c in offered
        if c.key in theirs
        and c.encoding.lower() not in (TELEPHONE_EVENT, "cn")
        and (local is None or c.encoding.upper() == local.encoding)
    ]
    if not usable:
        return None
    event = Codec(TELEPHONE_EVENT)
    both = event.key in theirs and any(c.key == event.key for c in offered)
    return [usable[0], *([event] if both else [])]


def _only_formats(sdp: SessionDescription, local: LocalMedia) -> SessionDescription:
    """``sdp`` (A's offer) with its first audio stream reduced to the codec the caller
    was answered with (and telephone-event): what B legs are offered then."""
    first = _first_audio(sdp)
    if first is None:
        return sdp
    keep = {str(local.pt)} | ({str(local.dtmf_pt)} if local.dtmf_pt is not None else set())
    return _keep_formats(sdp, first, keep)


def _body(sdp: SessionDescription | None) -> bytes:
    return b"" if sdp is None else sdp.serialize()


def _codec_names(sdp: SessionDescription) -> tuple[str, ...]:
    for media in sdp.media:
        if media.kind == "audio" and not media.rejected:
            return tuple(codec.encoding for _, codec in codecs(media))
    return ()


__all__ = [
    "FAILURE_TABLE",
    "OUTCOME_STATUS",
    "PLAYABLE",
    "SRTP_SUITES",
    "Call",
    "CallCommand",
    "CallEnded",
    "CallState",
    "CdrRecord",
    "DialFailed",
    "DigitPressed",
    "LegRecord",
    "LegSend",
    "Limits",
    "LocalMedia",
    "MediaAnswered",
    "MediaPlan",
    "MediaUpdate",
    "Outcome",
    "SrtpOffer",
    "Target",
    "TargetAnswered",
    "failure_outcome",
]
