"""Calls to a line or a hunt group: forwards, groups, the Standard, a mobile.

The pure parts decide (``routing.forwarding.ForwardingSession``: forward chains,
loops, ``*89``, headers; ``routing.groups``: members, order, day/night); this module
executes them on one routed call of the B2BUA (``Call.routed``: a failed dial is a
``DialFailed`` and the caller stays), like ``switch.service`` does for service numbers::

    Ring(extension, ring_s)  -> one B leg per binding of the line (Diversion and
                                History-Info on each), plus its mobile through the
                                trunk at once or after ``rings`` × RING_S seconds
    Dial(number)             -> out through the trunk (the forward profile was checked
                                by the session), the presented number of the leg
    DialGroup(group)         -> the group's hunt (below)
    Voicemail(box, ...)      -> 486 (busy) or 480 ``voicemail-unavailable`` (voicemail
                                comes with the IVR), except on a call to the company's main number
                                whose main phone did not answer: the Standard (999)
    Fail(reason)             -> its status (486, 480, 482 for a loop)

A group's hunt: night (override, else calendar) -> its night destination; else its
current members (never the caller), all at once or one after another, each step
ringing ``ring_s``; then its ``overflow`` destination, else a failure with the most
telling cause seen.

Facts: the called line's forward chain is followed before the session starts
(breadth-first over the destinations of each line's stored forwards, at most
``MAX_LINES`` lines): each line's stored settings, registration, call count.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from routing.calendar import evaluate
from routing.engine import Answered, Closed, Failed
from routing.forwarding import (
    Caller,
    Dial,
    DialGroup,
    Done,
    Fail,
    ForwardingSession,
    GroupTarget,
    Leg,
    LineFacts,
    Outcome,
    Ring,
    Voicemail,
)
from routing.groups import MemberFacts, current_members, group_mode, hunt_steps
from routing.linesettings import (
    ALL_CONDITIONS,
    ForwardCondition,
    GroupSettings,
    LineSettings,
    is_internal_number,
)
from routing.program import FailCause
from switch.call import CallState, DialFailed, DigitPressed, Target, TargetAnswered
from switch.directory import STANDARD_GROUP, Company, Group, Line
from switch.line_settings import LineSettingsStoreError, group_key
from switch.service import Pending, Trace, dial_and_wait, dial_failed
from switch.trunk import Refusal

if TYPE_CHECKING:
    from switch.b2bua import B2bua, _Running

log = logging.getLogger(__name__)

MAX_LINES = 32  # lines looked at for one forward chain
MAX_GROUP_DEPTH = 3  # a group's night/overflow destination that is a group, and so on

# What the caller hears when a hunt or a forward chain ends without an answer.
_CAUSE_STATUS: dict[FailCause, int] = {
    FailCause.BUSY: 486,
    FailCause.NO_ANSWER: 480,
    FailCause.UNREACHABLE: 480,
    FailCause.REJECTED: 603,
}
# Which failure says most when several steps failed (as ``switch.call``'s precedence).
_PRECEDENCE = (FailCause.REJECTED, FailCause.BUSY, FailCause.NO_ANSWER, FailCause.UNREACHABLE)


def needs_driver(settings: LineSettings, line: Line, *, main_number: bool) -> bool:
    """False: a plain call to the line (no forward set, no mobile, not the main
    number) runs exactly as before this module existed."""
    forwarding = settings.forwarding
    return (
        main_number
        or line.mobile is not None
        or any(forwarding.is_set(condition) for condition in ALL_CONDITIONS)
    )


class LineCall:
    """One call to a line or a group of ``company``; see the module docstring."""

    def __init__(
        self,
        b2bua: B2bua,
        running: _Running,
        company: Company,
        *,
        caller: Caller,
        from_: str,
    ) -> None:
        self.b2bua = b2bua
        self.running = running
        self.call = running.call
        self.company = company
        self.caller = caller
        self.from_ = from_  # the From of internal legs (the caller as the phones show it)
        self._pending: Pending[Outcome] = Pending(b2bua.loop, Closed())
        self._traced = Trace(self.call.because)
        self._media = False

    # -- what the B2BUA tells us (as ``ServiceCall``) --------------------------------------

    def on_command(self, cmd: DialFailed | TargetAnswered | DigitPressed) -> None:
        if isinstance(cmd, DialFailed):
            self._pending.resolve(dial_failed(cmd, self.call.because))
        elif isinstance(cmd, TargetAnswered):
            self.call.because.append(f"→ {cmd.label} a décroché")
            self._pending.resolve(Answered(cmd.label))

    def on_ended(self, answered: bool, talk: float) -> None:
        self._pending.close()

    # -- entry points ------------------------------------------------------------------

    async def call_line(
        self, callee: Line, settings: LineSettings, *, main_number: bool = False
    ) -> None:
        """A call to ``callee`` (its ``settings`` as already loaded) through its forwards
        (and, for the main number, the Standard after the main phone)."""
        facts = await self._facts(callee, settings)
        session = ForwardingSession(facts[callee.extension], _Lookup(self, facts), self.caller)
        if not await self._open(callee.key):
            return
        action = session.start()
        for _ in range(4 * 5 + 4):  # every diversion is at most one Ring or Dial
            self._traced.add(action.because)
            if isinstance(action, Ring):
                outcome = await self._ring_line(action.extension, action.ring_s, action.leg)
            elif isinstance(action, Dial):
                outcome = await self._dial_number(action.number, action.leg)
            else:
                break
            action = session.resume(Closed() if self._ended else outcome)
        if isinstance(action, Done) or self._ended:
            return
        if isinstance(action, Fail):
            self._reject(action.status, action.reason.value)
        elif isinstance(action, DialGroup):
            self._finish(await self._hunt(action.group, action.leg, depth=0))
        elif isinstance(action, Voicemail):
            standard = (
                main_number
                and action.box == callee.extension
                and action.condition is not ForwardCondition.UNCONDITIONAL
            )
            if standard:
                self.call.because.append("le poste principal ne répond pas : le Standard")
                self._finish(
                    await self._hunt(
                        STANDARD_GROUP, action.leg, depth=0, exclude={callee.extension}
                    )
                )
            else:
                # Voicemail comes with the IVR: until then the caller hears why.
                log.info("line_call.voicemail_unavailable", extra={"call": self.call.id})
                busy = action.condition is ForwardCondition.BUSY
                self._reject(486 if busy else 480, "voicemail-unavailable")
        else:
            self._reject(480, "forward-failed")

    async def call_group(self, number: str) -> None:
        """A call to hunt group ``number`` (``999``: the Standard)."""
        if not await self._open(f"group:{number}@{self.company.domain}"):
            return
        self._finish(await self._hunt(number, Leg(), depth=0))

    # -- actions -----------------------------------------------------------------------

    async def _ring_line(self, extension: str, ring_s: int | None, leg: Leg) -> Outcome:
        line = self.company.line(extension)
        if line is None:
            return Failed(FailCause.UNREACHABLE)
        extra = _headers(leg)
        targets = [
            dataclasses.replace(t, extra=t.extra + extra)
            for t in await self.b2bua._line_targets(line, self.from_, extension)
        ]
        self.running.target_lines[extension] = line.key
        mobile = line.mobile
        mobile_target: Target | None = None
        if mobile is not None:
            mobile_target = self._trunk_target(mobile.number, leg, f"{extension}:mobile")
        if mobile_target is not None and mobile is not None and mobile.delay_s == 0:
            self.call.because.append(f"sonnerie simultanée du mobile de {extension}")
            targets.append(mobile_target)
            mobile_target = None
        if self._ended or self.call.state >= CallState.ENDING:
            return Closed()
        if not targets:
            self.call.because.append(f"→ poste {extension} non connecté")
            return Failed(FailCause.UNREACHABLE)
        ring = float(ring_s) if ring_s is not None else self.b2bua.limits.ring_timeout
        later: asyncio.TimerHandle | None = None
        if mobile_target is not None and mobile is not None and mobile.delay_s < ring:
            later = self.b2bua.loop.call_later(
                mobile.delay_s, self._extend, mobile_target, f"mobile de {extension}"
            )
        try:
            return await dial_and_wait(self.b2bua, self.running, self._pending, targets, ring)
        finally:
            if later is not None:
                later.cancel()

    def _extend(self, target: Target, what: str) -> None:
        self.call.because.append(f"sonnerie du {what}")
        self.call.extend_dial([target], self.b2bua.loop.time())
        self.b2bua.execute(self.running)

    async def _dial_number(self, number: str, leg: Leg) -> Outcome:
        target = self._trunk_target(number, leg, number)
        if target is None:
            return Failed(FailCause.UNREACHABLE)
        return await dial_and_wait(
            self.b2bua, self.running, self._pending, [target], self.b2bua.limits.ring_timeout
        )

    def _trunk_target(self, number: str, leg: Leg, label: str) -> Target | None:
        """A B leg out through the trunk, presenting ``leg.presented``; None when there
        is no trunk or it is full (traced)."""
        b2bua = self.b2bua
        presented = leg.presented
        route = b2bua.trunks.service_out(number, presented.number or "anonymous")
        if isinstance(route, Refusal):
            self.call.because.append(f"→ {number} : pas de trunk ({route.cause})")
            return None
        trunk = route.trunk
        if trunk.max_calls is not None and b2bua.active[trunk.key] >= trunk.max_calls:
            self.call.because.append(f"→ {number} : trunk plein")
            return None
        if trunk.key not in self.running.lines:
            self.running.lines.append(trunk.key)
            b2bua.active[trunk.key] += 1
        # From, P-Asserted-Identity and Privacy as on any call out (switch.trunk).
        route = dataclasses.replace(
            route, asserted=presented.number or "", withheld=presented.withheld
        )
        target = b2bua._trunk_target(route, label)
        return dataclasses.replace(target, extra=target.extra + _headers(leg))

    # -- hunt groups -------------------------------------------------------------------

    async def _hunt(
        self, number: str, leg: Leg, *, depth: int, exclude: Iterable[str] = ()
    ) -> Outcome:
        group = self.company.group(number)
        if group is None:
            self.call.because.append(f"groupement {number} inconnu")
            return Failed(FailCause.UNREACHABLE)
        b2bua = self.b2bua
        try:
            stored = await b2bua.line_settings.load_group(group_key(number, self.company.domain))
        except LineSettingsStoreError:
            log.exception("line_call.group_settings", extra={"group": number})
            stored = GroupSettings()
        at = datetime.fromtimestamp(b2bua.wall(), UTC)
        calendar = group.night.calendar if group.night is not None else None
        is_open = None if calendar is None else evaluate(calendar, at).is_open
        mode, why = group_mode(stored, is_open, at)
        self.call.because.append(f"groupement {number} ({group.name}) : {why}")
        if mode.value == "night":
            if group.night is None:
                self.call.because.append(f"groupement {number} : pas de destination de nuit")
                return Failed(FailCause.UNREACHABLE)
            self.call.because.append(f"service de nuit vers {group.night.destination}")
            return await self._to(group.night.destination, group, leg, depth)
        members = await self._members(group)
        skip = {*exclude, *([self.caller.extension] if self.caller.extension else [])}
        ringing = current_members(number, members, exclude=skip)
        causes: list[FailCause] = []
        for step in hunt_steps(group.strategy, ringing, group.ring_s):
            if self._ended:
                return Closed()
            self.call.because.append(f"groupement {number} → {' + '.join(step.extensions)}")
            outcome = await self._ring_members(step.extensions, step.ring_s, leg)
            if not isinstance(outcome, Failed):
                return outcome
            causes.append(outcome.cause)
        if group.overflow is not None and not self._ended:
            self.call.because.append(f"groupement {number} : débordement vers {group.overflow}")
            return await self._to(group.overflow, group, leg, depth)
        if not ringing:
            self.call.because.append(f"groupement {number} : aucun membre")
        cause = min(causes, key=_PRECEDENCE.index) if causes else FailCause.UNREACHABLE
        return Failed(cause)

    async def _members(self, group: Group) -> list[MemberFacts]:
        out = []
        for line in self.company.lines:
            if group.number not in line.groups:
                continue
            out.append(MemberFacts(line.extension, line.groups, await self._settings(line)))
        return out

    async def _ring_members(self, extensions: Iterable[str], ring_s: int, leg: Leg) -> Outcome:
        b2bua = self.b2bua
        targets: list[Target] = []
        busy = False
        for extension in extensions:
            line = self.company.line(extension)
            if line is None:
                continue
            if b2bua.active[line.key] >= line.max_calls:
                busy = True
                continue
            self.running.target_lines[extension] = line.key
            found = await b2bua._line_targets(line, self.from_, extension)
            targets.extend(dataclasses.replace(t, extra=t.extra + _headers(leg)) for t in found)
        if self._ended or self.call.state >= CallState.ENDING:
            return Closed()
        if not targets:
            return Failed(FailCause.BUSY if busy else FailCause.UNREACHABLE)
        return await dial_and_wait(self.b2bua, self.running, self._pending, targets, float(ring_s))

    async def _to(self, dest: str, group: Group, leg: Leg, depth: int) -> Outcome:
        """A group's night or overflow destination: a line, a group, a public number."""
        if self.company.group(dest) is not None:
            if depth >= MAX_GROUP_DEPTH:
                self.call.because.append(f"groupement {dest} : trop de renvois entre groupements")
                return Failed(FailCause.UNREACHABLE)
            return await self._hunt(dest, leg, depth=depth + 1)
        line = self._line_of(dest)
        if line is not None:
            if line.extension == self.caller.extension:
                return Failed(FailCause.UNREACHABLE)
            return await self._ring_members((line.extension,), group.ring_s, leg)
        if is_internal_number(dest):
            self.call.because.append(f"{dest} inconnu")
            return Failed(FailCause.UNREACHABLE)
        return await self._dial_number(dest, leg)

    # -- facts -------------------------------------------------------------------------

    async def _settings(self, line: Line) -> LineSettings:
        try:
            return await self.b2bua.line_settings.load(line.key)
        except LineSettingsStoreError:
            log.exception("line_call.settings", extra={"line": line.key})
            return LineSettings()

    def _line_of(self, dest: str) -> Line | None:
        line = self.company.line(dest)
        if line is not None:
            return line
        found = self.b2bua.directory.line_by_direct_number(dest)
        if found is not None and found[0].id == self.company.id:
            return found[1]
        return None

    async def _facts(self, start: Line, settings: LineSettings) -> dict[str, LineFacts]:
        """The lines ``start`` (whose ``settings`` are given) forwards may reach,
        breadth-first (module docstring)."""
        b2bua, company = self.b2bua, self.company
        out: dict[str, LineFacts] = {}
        queue = [start]
        while queue and len(out) < MAX_LINES:
            line = queue.pop(0)
            if line.extension in out:
                continue
            if line is not start:
                settings = await self._settings(line)
            bindings = await b2bua.store.lookup(line.aor)
            at = b2bua.registrar.wall()
            out[line.extension] = LineFacts(
                line.extension,
                line.domain,
                settings,
                number=line.direct_number or company.company_number,
                registered=any(b.reachable and not b.expired(at) for b in bindings),
                busy=b2bua.active[line.key] >= line.max_calls,
                voicemail=line.voicemail.enabled,
                forward_profile=line.restrictions.forwarded,
                restrictions=company.restriction_table,
            )
            for condition in ALL_CONDITIONS:
                dest = settings.forwarding.destination(condition)
                reached = None if dest is None else self._line_of(dest)
                if reached is not None and reached.extension not in out:
                    queue.append(reached)
        return out

    # -- plumbing ----------------------------------------------------------------------

    async def _open(self, key: str) -> bool:
        if self._media:
            return True
        self.call.routed = True
        self._media = await self.b2bua.open_media(self.running, key)
        return self._media

    def _finish(self, outcome: Outcome) -> None:
        if isinstance(outcome, Failed) and not self._ended:
            self._reject(_CAUSE_STATUS.get(outcome.cause, 480), outcome.cause.value)

    def _reject(self, status: int, cause: str) -> None:
        if self.call.state is CallState.CONNECTED:
            self.call.hang_up(cause, self.b2bua.loop.time())
            self.b2bua.execute(self.running)
        else:
            self.b2bua.reject(self.running, status, cause)

    @property
    def _ended(self) -> bool:
        return self._pending.closed


class _Lookup:
    """``routing.forwarding.Lookup`` over the facts gathered for one call."""

    def __init__(self, owner: LineCall, facts: dict[str, LineFacts]) -> None:
        self.owner = owner
        self.facts = facts

    def __call__(self, dest: str) -> LineFacts | GroupTarget | None:
        owner = self.owner
        if owner.company.group(dest) is not None:
            return GroupTarget(dest, owner.company.domain)
        line = owner._line_of(dest)
        if line is None:
            return None
        # Beyond MAX_LINES: a line we know nothing more of (it still rings).
        return self.facts.get(line.extension) or LineFacts(line.extension, line.domain)


def _headers(leg: Leg) -> tuple[tuple[str, str], ...]:
    """The RFC 5806 / RFC 7044 headers of a forwarded leg (none for a direct call)."""
    out: list[tuple[str, str]] = []
    if leg.diversion_header is not None:
        out.append(("Diversion", leg.diversion_header))
    if leg.history_info_header is not None:
        out.append(("History-Info", leg.history_info_header))
    return tuple(out)


__all__ = ["MAX_LINES", "LineCall", "needs_driver"]
