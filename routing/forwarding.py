"""Renvois d'appel at call time: where a call to a line goes, hop after hop.

Spec: ``STAR-CODES.md`` (rules the switch enforces), ``PRODUCT.md`` (hosted PBX),
``RESTRICTIONS.md`` (the forward profile). Pure: the switch asks, with the facts
it has about each line, and executes the actions; the session never sees SIP.
Driven like ``routing.engine.RoutingSession``, with the same outcomes::

    session = ForwardingSession(called, lookup, caller)
    action = session.start()
    while not is_terminal(action):
        outcome = execute(action)     # Answered() | Failed(cause) | Closed()
        action = session.resume(outcome)

Actions (each carries ``leg``: the ``Diversion`` and ``History-Info`` entries to
put on that leg's INVITE and the identity to present, and ``because``)::

    Ring(extension, ring_s)  ring one of our lines; ring_s None: nothing follows
                             no answer, the switch's own limit applies
    Dial(number)             a forward to a public number (E.164 or short)
    -> Answered | Failed | Closed

    DialGroup(group)         a forward to a hunt group: the group's hunting takes over
    Voicemail(box, condition) the voicemail of line ``box``; ``condition`` picks the
                             greeting (busy / unavailable)
    Fail(reason, status)     a clear failure (486, 480, 482 for a loop…)
    Done                     answered, or the caller left
    (terminal)

Rules, for the line the call reaches (``_arrive``)::

    1. unconditional forward set          -> divert (UNCONDITIONAL)
    2. not registered                     -> its unreachable rule
    3. busy (at its call limit)           -> its busy rule
    4. otherwise                          -> Ring; Failed(NO_ANSWER | BUSY | UNREACHABLE)
                                             -> that rule; REJECTED (the user declined)
                                             counts as busy
    a rule: a destination -> divert; None (the default) or ``888`` -> the line's
    voicemail, or Fail when it has none.

A diversion is **ignored** (the call goes on as if the rule were not set: rule 1
falls through to 2-4, a conditional rule to the default) when its target is a
line with forwarding protection (``*89*1``: "refused at activation time and
ignored at call time"), the caller's own extension, an unknown internal number,
or a public number the diverting line's **forward profile** (with its company's
restriction table) bars now (checked at call time as well as at activation), or
``888`` for a line without voicemail.

**Loops** (A→B→A, A→B→C→A, also through a direct number that ``lookup`` maps to
a line already in the chain) and chains longer than :data:`MAX_HOPS` diversions
(3GPP TS 22.082 allows 5) end at the voicemail of the last line of the chain that
has one, walking back from the line that would close the loop, or with
``Fail(LOOP, 482)``: never ringing forever.

A ``Dial`` to a public number that fails ends the call (``Fail``): the forward
was the line's last word. Headers (RFC 5806 ``Diversion``, RFC 7044
``History-Info`` with RFC 4458 ``cause``):

- ``Diversion``: one entry per diversion, **most recent first**, naming the
  diverting line (``LineFacts.uri``), with ``reason`` (``unconditional``,
  ``user-busy``, ``no-answer``, ``unavailable``), ``counter=1`` and ``privacy=full``
  when the diverting line withholds its identity (``*65*1``), else ``off``.
- ``History-Info``: added from the first diversion on. The called line is entry
  ``1``; each diversion marks the diverting entry with the cause as an escaped
  ``Reason`` (``?Reason=SIP%3Bcause%3D486``) and adds the new target as a child
  entry (``1.1``, ``1.1.1``…) with ``;cause=NNN`` on its URI and ``mp`` = the parent
  index (the target changed user). A withholding diverting line also gets
  ``Privacy=history``. Voicemail adds the Reason but no entry (the voicemail is
  the switch itself). Causes (RFC 4458): unconditional 302, busy 486, no answer
  408, unreachable 503.
- Presented identity: the caller's, except on a ``Dial`` to a public number when
  the diverting line's ``forwarded_identity`` is ``forwarder``: then that line's
  public number (withheld if the line withholds its identity). Internal legs
  always show the caller; ``*33*`` voice presentation tells who forwarded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from routing.engine import Answered, Because, Closed, Failed, OutcomeMismatch
from routing.linesettings import (
    FORWARD_LABELS,
    VOICEMAIL,
    ForwardCondition,
    ForwardedIdentity,
    LineSettings,
    is_internal_number,
)
from routing.numbering import NumberingPlan, destination_class, normalize
from routing.program import FailCause
from routing.restrictions import NO_TABLE, RestrictionTable
from routing.restrictions import check as check_restriction

MAX_HOPS = 5
"""Diversions one call may go through (3GPP TS 22.082: 5)."""

# RFC 5806 §4: diversion-reason = "unknown" / "user-busy" / "no-answer" / "unavailable"
#   / "unconditional" / "time-of-day" / "do-not-disturb" / "deflection" / "follow-me"
#   / "out-of-service" / "away" / token / quoted-string
DIVERSION_REASONS: Mapping[ForwardCondition, str] = {
    ForwardCondition.UNCONDITIONAL: "unconditional",
    ForwardCondition.BUSY: "user-busy",
    ForwardCondition.NO_ANSWER: "no-answer",
    ForwardCondition.UNREACHABLE: "unavailable",
}

# RFC 4458 §3.1 (redirecting reasons of ITU-T Q.732.2): unconditional 302, user busy
# 486, no reply 408, mobile subscriber not reachable 503.
CAUSES: Mapping[ForwardCondition, int] = {
    ForwardCondition.UNCONDITIONAL: 302,
    ForwardCondition.BUSY: 486,
    ForwardCondition.NO_ANSWER: 408,
    ForwardCondition.UNREACHABLE: 503,
}

_FAILED_TO_CONDITION: Mapping[FailCause, ForwardCondition] = {
    FailCause.BUSY: ForwardCondition.BUSY,
    FailCause.REJECTED: ForwardCondition.BUSY,
    FailCause.NO_ANSWER: ForwardCondition.NO_ANSWER,
    FailCause.UNREACHABLE: ForwardCondition.UNREACHABLE,
}


# -- facts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineFacts:
    """What the switch knows about one of its lines when a call reaches it.

    ``number``: its public number (direct line, or the company number for a ``6xx``),
    presented when it forwards as ``forwarder`` and used in its ``uri``.
    ``busy``: at its call limit before ringing (a 486 while ringing is ``Failed(BUSY)``).
    ``forward_profile``: its restriction profile for forwards (RESTRICTIONS.md), read
    with ``restrictions``, its company's table (profiles 8/9, allow/deny prefixes).
    """

    extension: str
    domain: str
    settings: LineSettings = field(default_factory=LineSettings)
    number: str | None = None
    registered: bool = True
    busy: bool = False
    voicemail: bool = True
    forward_profile: int = 10
    restrictions: RestrictionTable = NO_TABLE

    @property
    def uri(self) -> str:
        """The line in ``Diversion`` / ``History-Info``: its public number when it has one
        (carriers check that the diverting number is the customer's), else its extension."""
        if self.number is not None:
            return f"sip:{self.number}@{self.domain};user=phone"
        return f"sip:{self.extension}@{self.domain}"


@dataclass(frozen=True, slots=True)
class GroupTarget:
    """A hunt group as a forward destination."""

    number: str
    domain: str

    @property
    def uri(self) -> str:
        return f"sip:{self.number}@{self.domain}"


Lookup = Callable[[str], LineFacts | GroupTarget | None]
"""A stored destination (an extension, a group number, an E.164 number) -> our line or
group it reaches (direct numbers included, so that loops through them are seen), or None
for a number that is not ours."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls: ``number`` (None: unknown), withheld or not, ``extension`` if internal."""

    number: str | None = None
    withheld: bool = False
    extension: str | None = None


# -- headers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiversionEntry:
    """One ``Diversion`` header value (RFC 5806).

    diversion-params = name-addr *(SEMI (diversion-reason / diversion-counter /
                       diversion-limit / diversion-privacy / diversion-screen /
                       diversion-extension))
    diversion-privacy = "privacy" EQUAL ("full" / "name" / "uri" / "off" / token)
    """

    uri: str
    reason: str
    counter: int = 1
    privacy: str = "off"

    def render(self) -> str:
        return f"<{self.uri}>;reason={self.reason};counter={self.counter};privacy={self.privacy}"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One ``History-Info`` hi-entry (RFC 7044).

    hi-entry = hi-targeted-to-uri *(SEMI hi-param)
    hi-param = hi-index / hi-target-param / hi-extension
    hi-index = "index" EQUAL hi-index-val ; 1*DIGIT *(DOT 1*DIGIT)
    mp-param = "mp" EQUAL hi-index-val
    ``cause``: RFC 4458 URI parameter (why the request reached this target);
    ``reason``: the SIP cause this target was left for, as an escaped Reason header.
    """

    uri: str
    index: str
    cause: int | None = None
    mp: str | None = None
    reason: int | None = None
    private: bool = False

    def render(self) -> str:
        uri = self.uri if self.cause is None else f"{self.uri};cause={self.cause}"
        headers = []
        if self.reason is not None:
            headers.append(f"Reason=SIP%3Bcause%3D{self.reason}")
        if self.private:
            headers.append("Privacy=history")
        if headers:
            uri += "?" + "&".join(headers)
        params = f";index={self.index}" + (f";mp={self.mp}" if self.mp else "")
        return f"<{uri}>{params}"


@dataclass(frozen=True, slots=True)
class Presented:
    """The identity a leg presents: ``number`` (None: unknown), withheld or not."""

    number: str | None
    withheld: bool
    because: str


@dataclass(frozen=True, slots=True)
class Leg:
    """What the switch puts on one outgoing leg."""

    diversions: tuple[DiversionEntry, ...] = ()  # most recent first
    history: tuple[HistoryEntry, ...] = ()  # index order
    presented: Presented = Presented(None, False, "")

    @property
    def diversion_header(self) -> str | None:
        """All ``Diversion`` entries as one header value (None: no header)."""
        return ", ".join(d.render() for d in self.diversions) or None

    @property
    def history_info_header(self) -> str | None:
        return ", ".join(h.render() for h in self.history) or None


# -- actions ----------------------------------------------------------------------------


class FailReason(StrEnum):
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNREACHABLE = "unreachable"
    REJECTED = "rejected"
    LOOP = "loop"


# The status a Fail answers with (RFC 3261 §21).
FAIL_STATUS: Mapping[FailReason, int] = {
    FailReason.BUSY: 486,
    FailReason.NO_ANSWER: 480,
    FailReason.UNREACHABLE: 480,
    FailReason.REJECTED: 603,
    FailReason.LOOP: 482,
}


@dataclass(frozen=True, slots=True)
class Ring:
    extension: str
    ring_s: int | None
    leg: Leg
    because: Because


@dataclass(frozen=True, slots=True)
class Dial:
    number: str
    leg: Leg
    because: Because


@dataclass(frozen=True, slots=True)
class DialGroup:
    group: str
    leg: Leg
    because: Because


@dataclass(frozen=True, slots=True)
class Voicemail:
    box: str
    condition: ForwardCondition
    leg: Leg
    because: Because


@dataclass(frozen=True, slots=True)
class Fail:
    reason: FailReason
    because: Because

    @property
    def status(self) -> int:
        return FAIL_STATUS[self.reason]


@dataclass(frozen=True, slots=True)
class Done:
    because: Because


Action = Ring | Dial | DialGroup | Voicemail | Fail | Done
Outcome = Answered | Failed | Closed


def is_terminal(action: Action) -> bool:
    return not isinstance(action, Ring | Dial)


_CONDITION_FAIL: Mapping[ForwardCondition, FailReason] = {
    ForwardCondition.UNCONDITIONAL: FailReason.UNREACHABLE,
    ForwardCondition.BUSY: FailReason.BUSY,
    ForwardCondition.NO_ANSWER: FailReason.NO_ANSWER,
    ForwardCondition.UNREACHABLE: FailReason.UNREACHABLE,
}


# -- the session ------------------------------------------------------------------------


class ForwardingSession:
    """One call to one of our lines, followed through its forwards (module docstring)."""

    def __init__(
        self,
        called: LineFacts,
        lookup: Lookup,
        caller: Caller | None = None,
        *,
        plan: NumberingPlan | None = None,
        max_hops: int = MAX_HOPS,
    ) -> None:
        self._called = called
        self._lookup = lookup
        self._caller = caller or Caller()
        self._plan = plan
        self._max_hops = max_hops
        self._chain: list[LineFacts] = []
        self._diversions: list[DiversionEntry] = []  # oldest first
        self._history: list[HistoryEntry] = []
        self._entry: dict[str, int] = {}  # extension -> its position in _history
        self._because: list[str] = []
        self._pending: tuple[Ring | Dial, LineFacts] | None = None

    @property
    def chain(self) -> tuple[str, ...]:
        """The extensions the call reached so far, in order."""
        return tuple(line.extension for line in self._chain)

    def start(self) -> Action:
        if self._chain:
            raise OutcomeMismatch("the forwarding session has already started")
        self._because.append(f"appel pour le poste {self._called.extension}")
        return self._arrive(self._called)

    def resume(self, outcome: Outcome) -> Action:
        if self._pending is None:
            raise OutcomeMismatch(f"{type(outcome).__name__}: no Ring or Dial is pending")
        action, line = self._pending
        self._pending = None
        match outcome:
            case Answered():
                return Done(self._trace("répondu"))
            case Closed():
                return Done(self._trace("l'appelant a raccroché"))
            case Failed(cause):
                if isinstance(action, Dial):
                    reason = FailReason(cause.value)
                    return Fail(reason, self._trace(f"{action.number} : échec ({cause.value})"))
                condition = _FAILED_TO_CONDITION[cause]
                self._because.append(f"poste {line.extension} : {cause.value}")
                return self._on_condition(line, condition)
        raise OutcomeMismatch(f"unknown outcome {outcome!r}")

    # -- rules ----------------------------------------------------------------------

    def _arrive(self, line: LineFacts) -> Action:
        self._chain.append(line)
        unconditional = line.settings.forwarding.unconditional
        if unconditional is not None:
            action = self._divert(line, ForwardCondition.UNCONDITIONAL, unconditional)
            if action is not None:
                return action
        if not line.registered:
            self._because.append(f"poste {line.extension} non connecté")
            return self._on_condition(line, ForwardCondition.UNREACHABLE)
        if line.busy:
            self._because.append(f"poste {line.extension} occupé")
            return self._on_condition(line, ForwardCondition.BUSY)
        fw = line.settings.forwarding
        ring_s = fw.ring_s if (fw.no_answer is not None or line.voicemail) else None
        ring = Ring(
            line.extension,
            ring_s,
            self._leg(line, external=False),
            self._trace(f"sonnerie du poste {line.extension}"),
        )
        self._pending = (ring, line)
        return ring

    def _on_condition(self, line: LineFacts, condition: ForwardCondition) -> Action:
        dest = line.settings.forwarding.destination(condition)
        if dest is not None:
            action = self._divert(line, condition, dest)
            if action is not None:
                return action
        return self._voicemail_or_fail(line, condition)

    def _divert(self, line: LineFacts, condition: ForwardCondition, dest: str) -> Action | None:
        """The action a diversion leads to, or None when it is ignored (and why, traced)."""
        label = f"{FORWARD_LABELS[condition]} de {line.extension}"
        if dest == VOICEMAIL:
            if line.voicemail:
                return self._voicemail(line, condition, f"{label} vers la messagerie")
            return self._ignore(f"{label} vers la messagerie ignoré : pas de messagerie")
        if len(self._diversions) >= self._max_hops:
            return self._loop(line, condition, f"{label} : plus de {self._max_hops} renvois")
        if dest == self._caller.extension:
            return self._ignore(f"{label} vers l'appelant {dest} ignoré")
        target = self._lookup(dest)
        if isinstance(target, LineFacts):
            if any(seen.extension == target.extension for seen in self._chain):
                path = " → ".join((*self.chain, target.extension))
                return self._loop(line, condition, f"boucle de renvois {path}")
            if target.settings.forward_protection:
                return self._ignore(f"{label} ignoré : poste {target.extension} protégé (*89*1)")
            self._record(line, condition, target.uri, target.extension)
            self._because.append(f"{label} vers le poste {target.extension}")
            return self._arrive(target)
        if isinstance(target, GroupTarget):
            self._record(line, condition, target.uri, None)
            return DialGroup(
                target.number,
                self._leg(line, external=False),
                self._trace(f"{label} vers le groupement {target.number}"),
            )
        number = normalize(dest, self._plan)
        if number.kind == "invalid" or is_internal_number(dest, self._plan):
            return self._ignore(f"{label} ignoré : {dest} inconnu")
        verdict = check_restriction(
            line.forward_profile,
            destination_class(number, self._plan),
            number=number.value,
            table=line.restrictions,
        )
        if not verdict.allowed:
            return self._ignore(f"{label} vers {number.value} ignoré : {verdict.because}")
        self._record(line, condition, f"sip:{number.value}@{line.domain};user=phone", None)
        dial = Dial(
            number.value,
            self._leg(line, external=True),
            self._trace(f"{label} vers {number.value}"),
        )
        self._pending = (dial, line)
        return dial

    def _ignore(self, why: str) -> Action | None:
        """A diversion that does not happen: traced, and the caller goes on."""
        self._because.append(why)
        return None

    def _voicemail_or_fail(self, line: LineFacts, condition: ForwardCondition) -> Action:
        if line.voicemail:
            return self._voicemail(line, condition, f"messagerie du poste {line.extension}")
        reason = _CONDITION_FAIL[condition]
        return Fail(reason, self._trace(f"poste {line.extension} sans messagerie : {reason}"))

    def _voicemail(self, line: LineFacts, condition: ForwardCondition, why: str) -> Voicemail:
        self._record(line, condition, None, None)
        return Voicemail(
            line.extension, condition, self._leg(line, external=False), self._trace(why)
        )

    def _loop(self, line: LineFacts, condition: ForwardCondition, why: str) -> Action:
        self._because.append(why)
        for candidate in reversed(self._chain):
            if candidate.voicemail:
                return self._voicemail(
                    candidate, condition, f"messagerie du poste {candidate.extension}"
                )
        return Fail(FailReason.LOOP, self._trace("aucune messagerie sur la chaîne : échec"))

    # -- headers ------------------------------------------------------------------------

    def _record(
        self,
        line: LineFacts,
        condition: ForwardCondition,
        target_uri: str | None,
        target_extension: str | None,
    ) -> None:
        """A diversion from ``line``: its Diversion entry and History-Info entries."""
        privacy = "full" if line.settings.clir else "off"
        self._diversions.append(DiversionEntry(line.uri, DIVERSION_REASONS[condition], 1, privacy))
        if not self._history:
            first = self._chain[0]
            self._history.append(HistoryEntry(first.uri, "1"))
            self._entry[first.extension] = 0
        cause = CAUSES[condition]
        position = self._entry[line.extension]  # every line of the chain has an entry
        diverted = self._history[position]
        self._history[position] = replace(diverted, reason=cause, private=line.settings.clir)
        if target_uri is None:
            return
        parent = diverted.index
        self._history.append(HistoryEntry(target_uri, f"{parent}.1", cause=cause, mp=parent))
        if target_extension is not None:
            self._entry[target_extension] = len(self._history) - 1

    def _leg(self, line: LineFacts, *, external: bool) -> Leg:
        return Leg(
            tuple(reversed(self._diversions)),
            tuple(self._history),
            self._presented(line, external=external),
        )

    def _presented(self, line: LineFacts, *, external: bool) -> Presented:
        caller = self._caller
        if (
            external
            and line.settings.forwarded_identity is ForwardedIdentity.FORWARDER
            and line.number is not None
        ):
            return Presented(
                line.number, line.settings.clir, f"numéro du poste {line.extension} qui renvoie"
            )
        return Presented(caller.number, caller.withheld, "numéro de l'appelant")

    def _trace(self, last: str) -> Because:
        return (*self._because, last)


# -- convenience ------------------------------------------------------------------------


def simulate(
    session: ForwardingSession,
    outcomes: Mapping[str, Outcome] | Callable[[Ring | Dial], Outcome],
    *,
    default: Outcome | None = None,
) -> list[Action]:
    """Run ``session`` to its end; ``outcomes`` answers each Ring (by extension) and Dial
    (by number), ``default`` the others (``Failed(NO_ANSWER)`` unless given).

    For ``aiguilleur explain``-style traces and tests: what would happen to a call.
    """
    fallback = default or Failed(FailCause.NO_ANSWER)

    def answer(action: Ring | Dial) -> Outcome:
        if callable(outcomes):
            return outcomes(action)
        key = action.extension if isinstance(action, Ring) else action.number
        return outcomes.get(key, fallback)

    actions = [session.start()]
    while True:
        action = actions[-1]
        if not isinstance(action, Ring | Dial):
            return actions
        actions.append(session.resume(answer(action)))


def lookup_from(lines: Iterable[LineFacts], groups: Iterable[GroupTarget] = ()) -> Lookup:
    """A ``Lookup`` over fixed facts: by extension, by group number, and by public number
    when exactly one line has it (a company number shared by ``6xx`` lines is not one)."""
    lines = list(lines)
    table: dict[str, LineFacts | GroupTarget] = {line.extension: line for line in lines}
    numbers = Counter(line.number for line in lines if line.number is not None)
    for line in lines:
        if line.number is not None and numbers[line.number] == 1:
            table[line.number] = line
    for group in groups:
        table[group.number] = group
    return table.get


__all__ = [
    "CAUSES",
    "DIVERSION_REASONS",
    "FAIL_STATUS",
    "MAX_HOPS",
    "Action",
    "Caller",
    "Dial",
    "DialGroup",
    "DiversionEntry",
    "Done",
    "Fail",
    "FailReason",
    "ForwardingSession",
    "GroupTarget",
    "HistoryEntry",
    "Leg",
    "LineFacts",
    "Lookup",
    "Outcome",
    "Presented",
    "Ring",
    "Voicemail",
    "is_terminal",
    "lookup_from",
    "simulate",
]
