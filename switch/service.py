"""Calls to service numbers: a ``routing.engine.RoutingSession`` executed on a live call.

The engine is pure and says what to do; this module does it, on one call of the
B2BUA, and feeds back what happened::

    AcquireLimit -> the node's Limiter (slot held by the call until it ends)
    Play         -> 183 + our SDP (early) or 200 (after answer), the message as
                    RTP from the relay towards the caller; ``#`` (RFC 4733 or
                    SIP INFO) skips it when the program allows
    Dial         -> one B leg per registered contact of each target (extensions,
                    direct numbers, else out through a trunk); the call core
                    reports ``TargetAnswered`` or ``DialFailed``, mapped to
                    ``Answered`` / ``Failed(cause)`` by ``FAIL_CAUSES`` below
    Reject       -> the message as early media if any, then the final status of
                    ``REJECT_STATUS`` (486 for a full limiter)
    Done         -> nothing: the call is bridged, or the caller has left

Outcomes never carry SIP codes: ``switch.call.FAILURE_TABLE`` maps SIP to call
outcomes, and ``FAIL_CAUSES`` call outcomes to routing causes, both pure tables.

The caller hanging up at any point resolves the pending action with ``Closed``.
Every action's ``because`` goes into the call's trace (the CDR ``because``
column), with one line per dial result.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from ivr.announcements import tone_frames
from media.dtmf import DtmfError, DtmfReceiver
from media.player import Player
from media.rtp import RtpError, RtpPacket, peek_header
from routing.engine import (
    AcquireLimit,
    Action,
    Answered,
    Closed,
    Dial,
    Done,
    Failed,
    LimitAcquired,
    LimitFull,
    Outcome,
    Play,
    PlayDone,
    Reject,
    RoutingContext,
    RoutingError,
    RoutingSession,
    RunMenu,
    Voicemail,
    is_terminal,
)
from routing.loader import Library, NumberEntry
from routing.overflow import CAUSE_LABELS
from routing.program import EndCause, FailCause
from switch.call import (
    CallState,
    DialFailed,
    DigitPressed,
    LocalMedia,
    Target,
    TargetAnswered,
)
from switch.call import Outcome as CallOutcome
from switch.features import phone_from

if TYPE_CHECKING:
    from switch.b2bua import B2bua, _Running

log = logging.getLogger(__name__)

T = TypeVar("T")

# Call-core outcomes of a failed dial -> the routing engine's causes.
FAIL_CAUSES: dict[CallOutcome, FailCause] = {
    CallOutcome.BUSY: FailCause.BUSY,
    CallOutcome.NO_ANSWER: FailCause.NO_ANSWER,
    CallOutcome.UNREACHABLE: FailCause.UNREACHABLE,
    CallOutcome.REJECTED: FailCause.REJECTED,
}

# What the caller gets when routing releases the call (before any answer).
REJECT_STATUS: dict[EndCause, int] = {
    EndCause.NORMAL: 480,
    EndCause.REFUSED: 603,
    EndCause.BUSY: 486,
    EndCause.NO_ANSWER: 480,
    EndCause.UNREACHABLE: 480,
    EndCause.REJECTED: 603,
    EndCause.LIMIT: 486,
    EndCause.CLOSED: 480,
    EndCause.ALL_FAILED: 480,
}
# Causes that mean the program overflowed (statistics).
OVERFLOW_CAUSES = frozenset(c for c in EndCause if c not in (EndCause.NORMAL, EndCause.REFUSED))


class Pending(Generic[T]):
    """The one outcome the driver of a routed call waits for (a dial, a message),
    resolved from the call's commands; once ``close``d (the call is over) every wait
    gets ``closed`` at once. Shared by ``ServiceCall`` and ``switch.line_call``."""

    __slots__ = ("_closed_value", "_loop", "_waiter", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop, closed: T) -> None:
        self._loop = loop
        self._closed_value = closed
        self._waiter: asyncio.Future[T] | None = None
        self.closed = False

    def wait(self) -> asyncio.Future[T]:
        self._waiter = self._loop.create_future()
        if self.closed:
            self._waiter.set_result(self._closed_value)
        return self._waiter

    def resolve(self, outcome: T) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(outcome)

    def close(self) -> None:
        self.closed = True
        self.resolve(self._closed_value)


class Trace:
    """A call's ``because`` trace: each line of the successive action paths once
    (paths share their prefixes)."""

    __slots__ = ("_seen", "lines")

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self._seen: set[str] = set()

    def add(self, because: Iterable[str]) -> None:
        for line in because:
            if line not in self._seen:
                self._seen.add(line)
                self.lines.append(line)


def dial_failed(cmd: DialFailed, because: list[str]) -> Failed:
    """The routing outcome of a failed dial, traced in ``because`` (one line per dial
    result). Shared by ``ServiceCall`` and ``switch.line_call``."""
    cause = FAIL_CAUSES.get(cmd.outcome, FailCause.UNREACHABLE)
    because.append(f"→ {CAUSE_LABELS[cause]} ({cmd.cause})")
    return Failed(cause)


async def dial_and_wait(
    b2bua: B2bua, running: _Running, pending: Pending[T], targets: Sequence[Target], ring_s: float
) -> T:
    """Ring ``targets`` as B legs of the routed call ``running`` for at most ``ring_s``
    seconds, and return the outcome its commands resolve ``pending`` with (what
    ``closed`` holds, at once, when the call is already over). Shared by
    ``ServiceCall`` and ``switch.line_call``."""
    waiter = pending.wait()
    running.call.dial(targets, b2bua.loop.time(), ring_timeout=ring_s)
    b2bua.execute(running)
    return await waiter


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls, as the service sees it: From user, privacy, display name, and the
    domain of the From its targets' phones show (``switch.features.phone_from``)."""

    user: str
    privacy_id: bool
    display: str | None
    domain: str


class ServiceCall:
    """One call through one service number's routing program; see the module docstring."""

    def __init__(
        self,
        b2bua: B2bua,
        running: _Running,
        library: Library,
        entry: NumberEntry,
        caller: Caller,
        *,
        rng: random.Random,
    ) -> None:
        self.b2bua = b2bua
        self.running = running
        self.call = running.call
        self.library = library
        self.entry = entry
        self.number = entry.national
        self.caller = caller
        self.rng = rng
        self._pending: Pending[Outcome] = Pending(b2bua.loop, Closed())
        self._skip: str | None = None  # the key that skips the message playing now
        self._dtmf: DtmfReceiver | None = None
        self._dtmf_pt: int | None = None
        self._answered_at: float | None = None
        self._finished_by_routing = False  # a terminal action was reached
        self._traced = Trace(self.call.because)
        self.session: RoutingSession | None = None

    # -- what the B2BUA tells us -------------------------------------------------------

    def on_command(self, cmd: DialFailed | TargetAnswered | DigitPressed) -> None:
        if isinstance(cmd, DialFailed):
            self._resolve(dial_failed(cmd, self.call.because))
        elif isinstance(cmd, TargetAnswered):
            self._answered_at = self.b2bua.loop.time()
            self._resolve(Answered(cmd.label))
        else:
            self._digit(cmd.digit)

    def on_ended(self, answered: bool, talk: float) -> None:
        """The call is over (any path): the pending action gets ``Closed``."""
        if self._ended:
            return
        self._pending.close()
        metrics = self.b2bua.metrics
        if metrics is not None and self.session is not None:  # counted as offered
            metrics.active(self.number, -1)
            if answered:
                metrics.ended(self.number, talk)
            elif not self._finished_by_routing:
                metrics.abandoned(self.number)

    # -- the walk ----------------------------------------------------------------------

    async def run(self) -> None:
        b2bua, call = self.b2bua, self.call
        call.routed = True
        ctx = RoutingContext(
            called=self.entry.national,
            at=datetime.fromtimestamp(b2bua.wall(), UTC),
            caller=self.caller.user or None,
            privacy_id=self.caller.privacy_id,
            display=self.caller.display,
        )
        base = b2bua.cursors.current
        try:
            session = RoutingSession(self.library, ctx, rng=self.rng, cursors=base)
        except RoutingError:
            log.exception("service.start_failed", extra={"call": call.id})
            b2bua.reject(self.running, 500, "routing-error")
            return
        self.session = session
        if b2bua.metrics is not None:
            b2bua.metrics.offered(self.number)
            b2bua.metrics.active(self.number, +1)
        if not await b2bua.open_media(self.running, f"service:{self.entry.key}"):
            return  # the caller left meanwhile: on_ended has run
        action = session.start()
        try:
            while True:
                self._trace(action)
                base = b2bua.cursors.update(base, session.cursors)
                if is_terminal(action):
                    break
                if self._ended:
                    outcome: Outcome = Closed()
                else:
                    outcome = await self._do(action)
                action = session.resume(outcome)
            self._finished_by_routing = True
            await self._terminal(action)
        except RoutingError:
            log.exception("service.routing_failed", extra={"call": call.id})
            b2bua.reject(self.running, 500, "routing-error")

    async def _do(self, action: Action) -> Outcome:
        if isinstance(action, AcquireLimit):
            return self._limit(action)
        if isinstance(action, Play):
            return await self._play(action.message, early=action.early, skip=action.skippable_with)
        if isinstance(action, Dial):
            return await self._dial(action)
        raise RoutingError(f"not an action to execute: {type(action).__name__}")

    def _limit(self, action: AcquireLimit) -> Outcome:
        if self.b2bua.limiter.acquire(action.key, action.max, self.call.id):
            return LimitAcquired()
        if self.b2bua.metrics is not None:
            self.b2bua.metrics.limiter_rejected(self.number)
        log.info(
            "service.limit_full",
            extra={"call": self.call.id, "number": self.number, "limit": action.max},
        )
        return LimitFull()

    async def _terminal(self, action: Action) -> None:
        b2bua, call = self.b2bua, self.call
        metrics = b2bua.metrics
        if isinstance(action, Done):
            return
        if isinstance(action, Reject):
            if metrics is not None and action.cause in OVERFLOW_CAUSES:
                metrics.overflowed(self.number, action.cause.value)
            if action.message is not None:
                played = await self._play(action.message, early=True, skip=None)
                if isinstance(played, Closed):
                    return
            if call.state is CallState.CONNECTED:
                call.hang_up(f"routing-{action.cause.value}", b2bua.loop.time())
                b2bua.execute(self.running)
            else:
                b2bua.reject(self.running, REJECT_STATUS[action.cause], action.cause.value)
            return
        if isinstance(action, Voicemail | RunMenu):
            # Voice menus and voicemail come with the IVR; until then the caller is
            # told the service is unavailable rather than left ringing.
            what = "voicemail" if isinstance(action, Voicemail) else "menu"
            log.warning("service.unavailable", extra={"call": call.id, "feature": what})
            b2bua.reject(self.running, 480, f"{what}-unavailable")

    # -- playing -------------------------------------------------------------------------

    async def _play(self, message: str, *, early: bool, skip: str | None) -> Outcome:
        b2bua, call = self.b2bua, self.call
        now = b2bua.loop.time()
        local = call.early_media(now) if early else call.answer_locally(now)
        b2bua.execute(self.running)
        if self._ended or call.state >= CallState.ENDING:
            return Closed()
        relay = self.running.session
        announcements = b2bua.announcements_for(self.library)
        if local is None or relay is None:
            call.because.append(f"message « {message} » non joué (pas de média commun)")
            return PlayDone()
        atp = self.entry.service.atp
        beep = atp is not None and atp.message == message
        try:
            player = announcements.player(
                message,
                local.encoding,
                local.pt,
                ssrc=self.rng.getrandbits(32),
                seq0=self.rng.getrandbits(16),
                ts0=self.rng.getrandbits(32),
                beep=beep,
            )
        except (KeyError, ValueError, OSError) as exc:
            log.warning(
                "service.message_failed",
                extra={"call": call.id, "message": message, "error": str(exc)},
            )
            call.because.append(f"message « {message} » illisible")
            return PlayDone()
        call.messages.append(message)
        if b2bua.metrics is not None:
            b2bua.metrics.message_played(self.number, message)
        waiter = self._wait()
        self._skip = skip
        self._listen_dtmf(local)
        relay.a.play(player, on_done=lambda: self._resolve(PlayDone()))
        try:
            outcome = await waiter
        finally:
            self._skip = None
            relay.a.on_rtp(None)
            if relay.a.playing:
                relay.a.play(None)
        return outcome

    def _listen_dtmf(self, local: LocalMedia) -> None:
        relay = self.running.session
        if self._skip is None or local.dtmf_pt is None or relay is None:
            return
        if self._dtmf is None:
            self._dtmf = DtmfReceiver()
        self._dtmf_pt = local.dtmf_pt
        relay.a.on_rtp(self._on_rtp)

    def _on_rtp(self, packet: bytes) -> None:
        header = peek_header(packet)
        if header is None or header[0] != self._dtmf_pt or self._dtmf is None:
            return
        try:
            payload = RtpPacket.parse(packet).payload
            self._dtmf.receive(header[2], payload, self.b2bua.loop.time())
        except (RtpError, DtmfError):
            return
        while (event := self._dtmf.next_event()) is not None:
            self._digit(event.digit)

    def _digit(self, digit: str) -> None:
        if self._skip is not None and digit == self._skip:
            self.call.because.append(f"message interrompu par « {digit} »")
            self._resolve(PlayDone(skipped=True))

    # -- dialling --------------------------------------------------------------------------

    async def _dial(self, action: Dial) -> Outcome:
        b2bua, call = self.b2bua, self.call
        caller = self.caller
        from_ = phone_from(caller.user, caller.display, caller.privacy_id, caller.domain)
        targets: list[Target] = []
        busy = 0
        for target in action.targets:
            found = await b2bua.service_targets(self.running, target, from_)
            if found is None:
                busy += 1
            else:
                targets.extend(found)
        if self._ended or call.state >= CallState.ENDING:
            return Closed()
        if not targets:
            cause = FailCause.BUSY if busy else FailCause.UNREACHABLE
            names = " + ".join(t.number for t in action.targets)
            call.because.append(f"→ {names} {CAUSE_LABELS[cause]} (aucun poste à faire sonner)")
            return Failed(cause)
        ring = max(t.ring_s for t in action.targets)
        self._ringback(ring)
        try:
            outcome = await dial_and_wait(b2bua, self.running, self._pending, targets, float(ring))
        finally:
            relay = self.running.session
            if relay is not None and relay.a.playing:  # our ringback
                relay.a.play(None)
        if isinstance(outcome, Answered):
            call.because.append(f"→ {outcome.target} a décroché")
            if b2bua.metrics is not None and self._answered_at is not None:
                b2bua.metrics.answered(self.number, self._answered_at - call.started)
        return outcome

    def _ringback(self, seconds: int) -> None:
        """Once the caller has our early media, it hears ringback from us while
        targets ring (its phone no longer plays its own after our 183)."""
        local = self.call.local_media
        relay = self.running.session
        if local is None or relay is None or self.call.state is CallState.CONNECTED:
            return
        frames = tone_frames("ringback", local.encoding)
        repeat = -(-seconds * 50 // len(frames)) + 1
        relay.a.play(
            Player(
                list(frames) * repeat,
                local.pt,
                self.rng.getrandbits(32),
                self.rng.getrandbits(16),
                self.rng.getrandbits(32),
            )
        )

    # -- plumbing -------------------------------------------------------------------------

    @property
    def _ended(self) -> bool:
        return self._pending.closed

    def _trace(self, action: Action) -> None:
        self._traced.add(action.because)

    def _wait(self) -> asyncio.Future[Outcome]:
        return self._pending.wait()

    def _resolve(self, outcome: Outcome) -> None:
        self._pending.resolve(outcome)


__all__ = [
    "FAIL_CAUSES",
    "OVERFLOW_CAUSES",
    "REJECT_STATUS",
    "Caller",
    "Pending",
    "ServiceCall",
    "Trace",
    "dial_and_wait",
    "dial_failed",
]
