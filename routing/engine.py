"""The routing engine: one :class:`RoutingSession` per call to a service number.

Pure: no SIP, no sockets, no clock. The session is driven by its caller (the
B2BUA call core, ``explain``, tests)::

    session = RoutingSession(library, ctx, rng=random.Random(seed), cursors=cursors)
    action = session.start()
    while not is_terminal(action):
        outcome = execute(action)          # the switch: SIP, media, limiter counts
        action = session.resume(outcome)
    cursors = session.cursors              # persist for the next call

Actions say what to do; outcomes are the facts that came back. The engine never
sees a SIP status code: the call core maps 486 to ``Failed(BUSY)``, a timer to
``Failed(NO_ANSWER)``, 404/480/unregistered to ``Failed(UNREACHABLE)``, 603 and
other refusals to ``Failed(REJECTED)``.

Which outcome may follow which action (anything else raises
:class:`OutcomeMismatch`; ``Closed``, the caller hanging up, may follow any
non-terminal action and ends the session with ``Done(reason="caller_left")``)::

    AcquireLimit  -> LimitAcquired | LimitFull
    Play          -> PlayDone
    Dial          -> Answered | Failed
    Voicemail, RunMenu, Reject, Done: terminal, nothing follows

Every action carries ``because``: the path that led to it in the operator's
words (numéro → programme → calendrier → période → GNR → débordement → message),
shown by logs, CDRs, the API and ``aiguilleur explain``.

Session order: the number's plan de secours (if active) replaces its program;
then the number's limiteur, then its ATP (early media), then the program's
steps. Falling off the end of a program releases the call (``normal``).

Termination: a GNR visit is bounded (≤ 10 targets × ≤ 10 rounds); jumps between
programs (``goto``, overflow to a program) are bounded by :data:`MAX_JUMPS`
(the loader already refuses cycles); a session emits at most
:data:`MAX_ACTIONS` actions. A session therefore always ends.

Internally the walk over a program's tree of steps is a generator: each
``yield`` is an action waiting for its outcome, so the control flow reads as the
program does.
"""

from __future__ import annotations

import random
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Literal

from routing import gnr
from routing.callers import CallerInfo, classify_caller, matches_prefix
from routing.limiter import number_key, pool_key
from routing.loader import Library, NumberEntry
from routing.overflow import CAUSE_LABELS, OverflowLevel, fail_to_cause, resolve
from routing.program import (
    CalendarStep,
    CallerBranch,
    CallersStep,
    Cause,
    DialStep,
    EndCause,
    FailCause,
    GnrStep,
    GnrTarget,
    GotoStep,
    HangupStep,
    LimitStep,
    MenuStep,
    OverflowTarget,
    PlayStep,
    Program,
    SplitStep,
    Strategy,
    VoicemailStep,
)

MAX_JUMPS = 16
"""Program changes (goto, overflow to a program) allowed in one session."""

MAX_ACTIONS = 256
"""Actions one session may emit before it gives up and releases the call."""

OVERFLOW_RING_S = 20

Because = tuple[str, ...]


# --- actions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AcquireLimit:
    """Take one slot of limiter ``key`` (at most ``max`` calls); release it at call end."""

    key: str
    max: int
    because: Because


@dataclass(frozen=True, slots=True)
class Play:
    """Play message ``message`` (a library id); ``early``: before answer (183 + media)."""

    message: str
    early: bool
    skippable_with: str | None
    because: Because


@dataclass(frozen=True, slots=True)
class DialTarget:
    """One reception number: E.164 (``+33…``), or an internal extension of ``domain``."""

    number: str
    ring_s: int
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class Dial:
    """Ring ``targets`` together (one target unless the strategy is simultaneous)."""

    targets: tuple[DialTarget, ...]
    strategy: Strategy
    round: int
    rounds: int
    because: Because


@dataclass(frozen=True, slots=True)
class RunMenu:
    """Terminal: hand the call to voice menu ``menu`` (IVR)."""

    menu: str
    because: Because


@dataclass(frozen=True, slots=True)
class Voicemail:
    """Terminal: hand the call to voicemail ``box`` (optional greeting message)."""

    box: str
    greeting: str | None
    because: Because


@dataclass(frozen=True, slots=True)
class Reject:
    """Terminal: play ``message`` if any, then release the call with ``cause``."""

    cause: EndCause
    message: str | None
    because: Because


@dataclass(frozen=True, slots=True)
class Done:
    """Terminal: a target answered (``target``), or the caller left."""

    reason: Literal["answered", "caller_left"]
    target: str | None
    because: Because


Action = AcquireLimit | Play | Dial | RunMenu | Voicemail | Reject | Done
TERMINAL_ACTIONS = (RunMenu, Voicemail, Reject, Done)


def is_terminal(action: Action) -> bool:
    return isinstance(action, TERMINAL_ACTIONS)


# --- outcomes --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LimitAcquired:
    """The limiter slot was taken."""


@dataclass(frozen=True, slots=True)
class LimitFull:
    """The limiter was full: no slot taken."""


@dataclass(frozen=True, slots=True)
class PlayDone:
    """The message ended (``skipped``: the caller pressed the skip key)."""

    skipped: bool = False


@dataclass(frozen=True, slots=True)
class Answered:
    """A dialled target answered (``target``: which one, for simultaneous dials)."""

    target: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The dial failed: every target of the ``Dial`` for ``cause``."""

    cause: FailCause
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Closed:
    """The caller hung up (the A leg closed) while an action was in progress."""


Outcome = LimitAcquired | LimitFull | PlayDone | Answered | Failed | Closed

EXPECTED: dict[type[Action], tuple[type[Outcome], ...]] = {
    AcquireLimit: (LimitAcquired, LimitFull, Closed),
    Play: (PlayDone, Closed),
    Dial: (Answered, Failed, Closed),
}
"""What may follow each non-terminal action (the table of the module docstring)."""


class RoutingError(Exception):
    """Misuse of a session by its driver (a bug in the caller, not in the program)."""


class UnknownNumber(RoutingError, LookupError):
    """The called number is not a service number of the library."""


class OutcomeMismatch(RoutingError):
    """An outcome that cannot follow the pending action."""


# --- context ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoutingContext:
    """What the engine knows about a call when it arrives.

    ``at`` is the tz-aware arrival time (wall clock, passed in: the engine never
    reads a clock). ``caller``/``privacy_id``/``display`` are the From user part
    and privacy as received; ``caller_info`` may be given already classified.
    ``known_busy``: targets the switch knows are busy (presence): a GNR with
    ``skip_known_busy`` does not ring them.
    """

    called: str
    at: datetime
    caller: str | None = None
    privacy_id: bool = False
    display: str | None = None
    caller_info: CallerInfo | None = None
    known_busy: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("RoutingContext.at must be timezone-aware")


class _State(StrEnum):
    NEW = "new"
    WAITING = "waiting"
    ENDED = "ended"


# --- the session -----------------------------------------------------------------


class RoutingSession:
    """One call through the routing program of one service number.

    ``library`` is the version the call started with: a later hot reload does
    not change a running session. ``rng`` draws ``split`` branches and
    ``weighted`` orders; ``cursors`` is the round-robin / least-recent state,
    returned updated in :attr:`cursors`.
    """

    def __init__(
        self,
        library: Library,
        ctx: RoutingContext,
        *,
        rng: random.Random,
        cursors: gnr.Cursors | None = None,
    ) -> None:
        entry = library.find_number(ctx.called)
        if entry is None:
            raise UnknownNumber(f"{ctx.called}: not a service number of this library")
        self.library = library
        self.ctx = ctx
        self.entry: NumberEntry = entry
        self.rng = rng
        self.cursors = cursors if cursors is not None else gnr.Cursors()
        self.actions: list[Action] = []
        self._state = _State.NEW
        self._pending: Action | None = None
        self._caller: CallerInfo | None = ctx.caller_info
        self._jumps = 0
        self._number_level = OverflowLevel(
            f"numéro {entry.national}", entry.service.overflow, is_number=True
        )
        self._number_overflow_used = False
        self._gen = self._run()

    # -- driver API --

    @property
    def finished(self) -> bool:
        return self._state is _State.ENDED

    def start(self) -> Action:
        if self._state is not _State.NEW:
            raise RoutingError("start() called twice")
        return self._step(None)

    def resume(self, outcome: Outcome) -> Action:
        if self._state is not _State.WAITING or self._pending is None:
            raise RoutingError(f"resume() in state {self._state}")
        expected = EXPECTED[type(self._pending)]
        if not isinstance(outcome, expected):
            raise OutcomeMismatch(
                f"{type(outcome).__name__} cannot follow {type(self._pending).__name__}"
            )
        if isinstance(outcome, Closed):
            self._gen.close()
            return self._finish(
                Done("caller_left", None, (*self._pending.because, "l'appelant a raccroché"))
            )
        return self._step(outcome)

    def _step(self, outcome: Outcome | None) -> Action:
        try:
            action = self._gen.send(outcome)  # type: ignore[arg-type]
        except StopIteration as stop:
            result: Action = stop.value
            return self._finish(result)
        if len(self.actions) >= MAX_ACTIONS - 1:
            self._gen.close()
            return self._finish(
                Reject(
                    EndCause.NORMAL,
                    None,
                    (*action.because, f"plus de {MAX_ACTIONS} actions → appel libéré"),
                )
            )
        self.actions.append(action)
        self._pending = action
        self._state = _State.WAITING
        return action

    def _finish(self, action: Action) -> Action:
        self.actions.append(action)
        self._pending = None
        self._state = _State.ENDED
        return action

    # -- the walk --

    def _run(self) -> Generator[Action, Outcome, Action]:
        entry = self.entry
        number = entry.service
        name, program, plan = self.library.program_for(entry)
        shown = entry.national
        if plan is not None:
            trail = [f"numéro {shown} → plan de secours « {plan} » actif → programme « {name} »"]
        else:
            trail = [f"numéro {shown} → programme « {name} »"]

        if number.limit is not None:
            if number.limit_pool is not None:
                key = pool_key(number.limit_pool)
                what = f"limiteur « {number.limit_pool} » : {_calls(number.limit)}"
            else:
                key = number_key(entry.key)
                what = f"limiteur du numéro : {_calls(number.limit)}"
            outcome = yield AcquireLimit(key, number.limit, (*trail, what))
            if isinstance(outcome, LimitFull):
                levels = [
                    OverflowLevel(f"programme « {name} »", program.overflow),
                    self._number_level,
                ]
                return (
                    yield from self._overflow(
                        Cause.LIMIT, levels, [*trail, f"{what} → plein"], name
                    )
                )
        if number.atp is not None:
            atp = number.atp
            yield Play(
                atp.message,
                atp.early,
                atp.skippable_with,
                (*trail, f"ATP « {atp.message} » (annonce tarifaire, gratuite pour l'appelant)"),
            )
        return (yield from self._program(name, program, trail))

    def _program(
        self, name: str, program: Program, trail: list[str]
    ) -> Generator[Action, Outcome, Action]:
        levels = [OverflowLevel(f"programme « {name} »", program.overflow)]
        if not self._number_overflow_used:
            levels.append(self._number_level)
        result = yield from self._block(program.steps, name, "steps", levels, trail)
        if result is not None:
            return result
        return Reject(EndCause.NORMAL, None, (*trail, f"fin du programme « {name} » → raccroché"))

    def _jump(self, target: str, trail: list[str]) -> Generator[Action, Outcome, Action]:
        self._jumps += 1
        if self._jumps > MAX_JUMPS:
            return Reject(
                EndCause.NORMAL,
                None,
                (*trail, f"plus de {MAX_JUMPS} changements de programme → appel libéré"),
            )
        program = self.library.programs[target]
        return (yield from self._program(target, program, trail))

    def _block(
        self,
        steps: Sequence[object],
        program: str,
        path: str,
        levels: list[OverflowLevel],
        trail: list[str],
    ) -> Generator[Action, Outcome, Action | None]:
        """Run ``steps``; return a terminal action, or None to fall through."""
        for index, step in enumerate(steps):
            here = f"{path}[{index}]"
            result = yield from self._one(step, program, here, levels, trail)
            if result is not None:
                return result
        return None

    def _one(
        self,
        step: object,
        program: str,
        here: str,
        levels: list[OverflowLevel],
        trail: list[str],
    ) -> Generator[Action, Outcome, Action | None]:
        if isinstance(step, LimitStep):
            return (yield from self._limit(step, program, levels, trail))
        if isinstance(step, PlayStep):
            yield Play(
                step.message,
                step.early,
                step.skippable_with,
                (*trail, f"message « {step.message} »"),
            )
            if step.then == "hangup":
                return Reject(
                    EndCause.NORMAL,
                    None,
                    (*trail, f"message « {step.message} » puis raccroché"),
                )
            return None
        if isinstance(step, CalendarStep):
            return (yield from self._calendar(step, program, here, levels, trail))
        if isinstance(step, CallersStep):
            return (yield from self._callers(step, program, here, levels, trail))
        if isinstance(step, SplitStep):
            point = self.rng.random() * 100
            upto = 0
            for i, branch in enumerate(step.branches):
                upto += branch.percent
                if point < upto or i == len(step.branches) - 1:
                    line = f"répartition : branche {i + 1} ({branch.percent} %)"
                    return (
                        yield from self._block(
                            branch.steps,
                            program,
                            f"{here}.branches[{i}].steps",
                            levels,
                            [*trail, line],
                        )
                    )
        if isinstance(step, GnrStep):
            return (yield from self._gnr(step, program, here, levels, trail))
        if isinstance(step, GotoStep):
            return (
                yield from self._jump(
                    step.program, [*trail, f"aller au programme « {step.program} »"]
                )
            )
        if isinstance(step, DialStep):
            target = self._target(step.number, step.ring_s)
            line = f"appel {step.number} ({step.ring_s} s)"
            outcome = yield Dial((target,), Strategy.SEQUENTIAL, 1, 1, (*trail, line))
            if isinstance(outcome, Answered):
                return Done("answered", target.number, (*trail, f"{line} → décroché"))
            assert isinstance(outcome, Failed)
            lines = [*trail, f"{line} → {CAUSE_LABELS[outcome.cause.value]}"]
            step_level = OverflowLevel(f"étape {here}", step.overflow)
            return (
                yield from self._overflow(
                    fail_to_cause(outcome.cause), [step_level, *levels], lines, program
                )
            )
        if isinstance(step, VoicemailStep):
            return Voicemail(step.box, step.greeting, (*trail, f"messagerie {step.box}"))
        if isinstance(step, MenuStep):
            return RunMenu(step.menu, (*trail, f"menu « {step.menu} »"))
        if isinstance(step, HangupStep):
            text = f"raccroché ({step.cause.value})"
            if step.message is not None:
                text = f"message « {step.message} » puis raccroché ({step.cause.value})"
            return Reject(step.cause, step.message, (*trail, text))
        raise AssertionError(f"unknown step {step!r}")

    def _limit(
        self, step: LimitStep, program: str, levels: list[OverflowLevel], trail: list[str]
    ) -> Generator[Action, Outcome, Action | None]:
        if step.pool is not None:
            key = pool_key(step.pool)
            what = f"limiteur « {step.pool} » : {_calls(step.max)}"
        else:
            key = number_key(self.entry.key)
            what = f"limiteur : {_calls(step.max)}"
        outcome = yield AcquireLimit(key, step.max, (*trail, what))
        if isinstance(outcome, LimitFull):
            step_level = OverflowLevel("étape limit", step.overflow)
            return (
                yield from self._overflow(
                    Cause.LIMIT, [step_level, *levels], [*trail, f"{what} → plein"], program
                )
            )
        return None

    def _calendar(
        self,
        step: CalendarStep,
        program: str,
        here: str,
        levels: list[OverflowLevel],
        trail: list[str],
    ) -> Generator[Action, Outcome, Action | None]:
        calendar = self.library.calendar_for(step.calendar, self.entry)
        decision = calendar.evaluate(self.ctx.at)
        when = f"{decision.local:%Y-%m-%d %H:%M} {calendar.timezone}"
        step_level = OverflowLevel(f"étape {here}", step.overflow)
        head = f"calendrier « {step.calendar} » → {decision.reason} · {when}"
        if decision.period is None:
            return (
                yield from self._overflow(
                    Cause.CLOSED, [step_level, *levels], [*trail, head], program
                )
            )
        branch = step.branches.get(decision.period)
        if branch is None:
            line = f"{head} : période sans branche → fermé"
            return (
                yield from self._overflow(
                    Cause.CLOSED, [step_level, *levels], [*trail, line], program
                )
            )
        line = head
        return (
            yield from self._block(
                branch, program, f"{here}.branches.{decision.period}", levels, [*trail, line]
            )
        )

    def caller_info(self) -> CallerInfo:
        """The caller's nature (classified once, on first use)."""
        if self._caller is None:
            self._caller = classify_caller(
                self.ctx.caller, privacy_id=self.ctx.privacy_id, display=self.ctx.display
            )
        return self._caller

    def _callers(
        self,
        step: CallersStep,
        program: str,
        here: str,
        levels: list[OverflowLevel],
        trail: list[str],
    ) -> Generator[Action, Outcome, Action | None]:
        info = self.caller_info()
        who = _describe_caller(info)
        for i, branch in enumerate(step.branches):
            matched = self._match(branch, info)
            if matched is not None:
                line = f"{who} → branche {matched}"
                return (
                    yield from self._block(
                        branch.steps, program, f"{here}.branches[{i}].steps", levels, [*trail, line]
                    )
                )
        if step.others is not None:
            line = f"{who} → autres appelants"
            return (
                yield from self._block(
                    step.others, program, f"{here}.others", levels, [*trail, line]
                )
            )
        trail.append(f"{who} → aucune branche, suite du programme")
        return None

    def _match(self, branch: CallerBranch, info: CallerInfo) -> str | None:
        """The branch's description if every criterion it gives matches ``info``."""
        parts: list[str] = []
        if branch.nature is not None:
            if info.nature not in branch.nature:
                return None
            parts.append(f"nature {info.nature}")
        if branch.country is not None:
            if info.country not in branch.country:
                return None
            parts.append(f"pays {info.country}")
        if branch.zone is not None:
            if info.zone not in branch.zone:
                return None
            parts.append(f"zone {info.zone}")
        if branch.in_list is not None:
            callers = self.library.caller_lists[branch.in_list]
            if matches_prefix(info, [*callers.numbers, *callers.prefixes]) is None:
                return None
            parts.append(f"liste « {branch.in_list} »")
        if branch.prefixes is not None:
            prefix = matches_prefix(info, branch.prefixes)
            if prefix is None:
                return None
            parts.append(f"préfixe {prefix}")
        return ", ".join(parts)

    def _gnr(
        self,
        step: GnrStep,
        program: str,
        here: str,
        levels: list[OverflowLevel],
        trail: list[str],
    ) -> Generator[Action, Outcome, Action | None]:
        key = step.cursor or f"{program}/{here}"
        order = gnr.order_targets(step, key, self.cursors, self.rng)
        self.cursors = order.cursors
        head = f"GNR {order.why}"
        attempts: list[FailCause] = []
        busy = self.ctx.known_busy if step.skip_known_busy else frozenset()
        simultaneous = step.strategy is Strategy.SIMULTANEOUS
        groups: list[tuple[GnrTarget, ...]] = (
            [order.targets] if simultaneous else [(t,) for t in order.targets]
        )
        for rnd in range(1, step.rounds + 1):
            history: list[str] = []
            for group in groups:
                ringing = []
                for t in group:
                    if t.number in busy:
                        attempts.append(FailCause.BUSY)
                        history.append(f"{t.number} connu occupé, ignoré")
                    else:
                        ringing.append(self._target(t.number, t.ring_s or step.ring_s))
                if not ringing:
                    continue
                names = " + ".join(f"{d.number} ({d.ring_s} s)" for d in ringing)
                line = f"{head} · tour {rnd}/{step.rounds} → {names}"
                if history:
                    line += f" après {', '.join(history)}"
                outcome = yield Dial(
                    tuple(ringing), step.strategy, rnd, step.rounds, (*trail, line)
                )
                if isinstance(outcome, Answered):
                    who = outcome.target or ringing[0].number
                    self.cursors = self.cursors.answered(key, who)
                    return Done("answered", who, (*trail, f"{line} → {who} a décroché"))
                assert isinstance(outcome, Failed)
                attempts.append(outcome.cause)
                label = CAUSE_LABELS[outcome.cause.value]
                history.append(f"{' + '.join(d.number for d in ringing)} {label}")
        cause = gnr.decide_cause(attempts, step.precedence)
        counts = ", ".join(
            f"{CAUSE_LABELS[c.value]} ×{attempts.count(c)}" for c in FailCause if c in attempts
        )
        summary = f"{head} · {step.rounds} tour(s) sans décroché ({counts}) → cause {cause.value}"
        if len(set(attempts)) > 1:
            ranking = " > ".join(c.value for c in step.precedence)
            summary += f" (précédence {ranking})"
        step_level = OverflowLevel(f"étape {here}", step.overflow)
        return (yield from self._overflow(cause, [step_level, *levels], [*trail, summary], program))

    def _overflow(
        self,
        cause: Cause,
        levels: Sequence[OverflowLevel],
        trail: list[str],
        program: str,
    ) -> Generator[Action, Outcome, Action]:
        resolution = resolve(cause, levels)
        line = resolution.explain()
        end = EndCause(cause.value)
        target: OverflowTarget | None = resolution.target
        if target is None:
            return Reject(end, None, (*trail, line))
        if target.message is not None:
            return Reject(end, target.message, (*trail, f"{line} puis raccroché"))
        if target.program is not None:
            if resolution.level is not None and resolution.level.is_number:
                self._number_overflow_used = True
            return (yield from self._jump(target.program, [*trail, line]))
        assert target.number is not None
        ring_s = target.ring_s or OVERFLOW_RING_S
        dial = self._target(target.number, ring_s)
        outcome = yield Dial((dial,), Strategy.SEQUENTIAL, 1, 1, (*trail, f"{line} ({ring_s} s)"))
        if isinstance(outcome, Answered):
            return Done("answered", dial.number, (*trail, f"{line} → décroché"))
        assert isinstance(outcome, Failed)
        label = CAUSE_LABELS[outcome.cause.value]
        return Reject(
            EndCause(outcome.cause.value),
            None,
            (*trail, f"{line} → {label} → appel libéré"),
        )

    def _target(self, number: str, ring_s: int) -> DialTarget:
        value, internal = _dial_form(number)
        return DialTarget(value, ring_s, self.entry.service.domain if internal else None)


@lru_cache(maxsize=4096)
def _dial_form(number: str) -> tuple[str, bool]:
    """(what to dial, internal?): national and ``+`` forms to E.164; extensions stay."""
    from routing.numbering import normalize

    if number.startswith("+") or (number.startswith("0") and len(number) >= 10):
        parsed = normalize(number)
        if parsed.kind == "e164":
            return parsed.value, False
        return number, False
    return number, True


def _calls(count: int) -> str:
    return (
        f"{count} appel simultané au plus" if count == 1 else f"{count} appels simultanés au plus"
    )


def _describe_caller(info: CallerInfo) -> str:
    """``appelant mobile (06) 0612345678``: the callers module's words and the number."""
    if info.number is None:
        return info.because
    shown = str(info.number) if info.nature == "international" else info.national
    return f"{info.because} {shown}"
