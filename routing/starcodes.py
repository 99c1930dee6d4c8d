"""Star codes (codes étoile, codes de service): what a phone dialled, and what it changes.

Spec: ``STAR-CODES.md``; user guide: ``docs/star-codes.md``. Pure: no I/O, no
clock, no asyncio. Two steps, driven by the switch (``switch.features``)::

    command = parse(dialled)                    # the Request-URI user part
    match command:
        case NotAStarCode():   route the call as usual
        case Invalid():        answer, play "refused", hang up (command.reason in the log)
        case PlaceCall() | RecordPreAnswer() | CallVoicemail() | CallGroup()
             | SpeedDial() | Pickup():
                               the executor does it (an ``Action``)
        case _:                # a settings change or a query (a ``SettingCommand``)
            settings, confirmation = apply(settings, command, ctx)
            persist settings, then answer, play confirmation.reply, hang up

``apply`` never raises for a user's mistake: a bad argument (unknown group,
destination barred by the line's forward profile, protected target…) gives
``Reply.REFUSED`` and the settings unchanged. The store's
``update(key, lambda s: apply(s, command, ctx))`` persists before it returns,
so the confirmation is played only once the change is stored.

Replies (the audible confirmation)::

    ACCEPTED   a change was made (or re-made: activating twice is accepted twice)
    REFUSED    nothing changed: bad argument, barred, nothing to re-activate…
    ACTIVE     a query, and the service differs from its initial state
    INACTIVE   a query, and the service is in its initial state

Every ``Confirmation`` carries ``because``, the trace the logs and the CDR show.

The table
---------
:data:`CODES` is the one table of codes: each row is the syntax exactly as
``STAR-CODES.md`` writes it (``<dest>``, ``<number>``, ``<group>``, ``<seconds>``
are arguments, ``[...]`` is optional), its style (``office``: the Livebox codes,
``gsm``: the mobile-style forwarding codes, ``internal``: ``888``, ``999`` and the
speed dials, ``extra``: not in the spec, see below) and the function building its
command. The first row whose syntax matches the whole dialled string wins, so
``*24*0`` sits before ``*24*<dest>``.

Syntax rules where the spec is silent (``docs/star-codes.md`` lists them):

- a final ``#`` is optional on every star code, office and GSM style alike
  (phones that use ``#`` as the send key keep it or strip it);
- ``%23`` and ``%2A`` (a ``#`` or ``*`` escaped in a SIP URI) are read as ``#``, ``*``;
- arguments are digits only: a destination or number is 2-20 digits that
  ``routing.numbering.normalize`` accepts (a 3-digit internal number, a national
  ``0…`` number, ``00…`` international, a short number), a group is 3 digits, a
  ring time 5-60 seconds;
- a string starting with ``*`` or ``#`` that no row matches is :class:`Invalid`
  (its ``reason`` names the expected forms when the code itself is known), never
  routed as a call; ``888``, ``999`` and ``700``-``869`` are commands; every other
  string is :class:`NotAStarCode`.

``*8*<ext>`` (directed call pickup, :class:`Pickup`) is not in ``STAR-CODES.md``:
``PHONES.md`` needs a pickup prefix and the phones' templates must use the same
(``PICKUP_PREFIX``). Its rows have style ``extra``.

What each code changes is in :func:`apply`; the settings model and its initial
state are in ``routing.linesettings``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, assert_never

from routing.linesettings import (
    ALL_CONDITIONS,
    CONDITIONAL,
    DEFAULT_RING_S,
    FORWARD_LABELS,
    INTERNAL_NUMBER,
    PRE_ANSWER_MAX_S,
    RING_S_RANGE,
    STANDARD_GROUP,
    VOICEMAIL,
    ForwardCondition,
    Forwarding,
    LineSettings,
    VoicePresentation,
    is_internal_number,
)
from routing.numbering import NumberingPlan, destination_class, normalize
from routing.restrictions import NO_TABLE, RestrictionTable
from routing.restrictions import check as check_restriction

SPEED_DIAL_RANGE = range(700, 870)
"""Numéros abrégés 700-869 (``switch.directory`` checks the directory's codes with it)."""

PICKUP_PREFIX = "*8*"
"""Directed call pickup: ``*8*`` + the ringing phone's extension (not in STAR-CODES.md)."""

_UNCONDITIONAL = (ForwardCondition.UNCONDITIONAL,)
_BUSY = (ForwardCondition.BUSY,)
_NO_ANSWER = (ForwardCondition.NO_ANSWER,)
_UNREACHABLE = (ForwardCondition.UNREACHABLE,)
_UNREACHABLE_AND_NO_ANSWER = (ForwardCondition.UNREACHABLE, ForwardCondition.NO_ANSWER)

Conditions = tuple[ForwardCondition, ...]


# -- what parse returns ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Command:
    """What every command carries: the string dialled, for traces only (keyword-only and
    left out of comparisons: ``parse("*65*1") == SetClir(True)``)."""

    dialled: str = field(default="", compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class SetForward(_Command):
    """Forward ``conditions`` to ``destination`` (as dialled; ``apply`` resolves it).

    ``ring_s``: the no-answer ring time to set (``None``: keep the current one).
    """

    conditions: Conditions
    destination: str
    ring_s: int | None = None


@dataclass(frozen=True, slots=True)
class RecallForward(_Command):
    """Forward ``conditions`` to the last destination used (``*24``, ``*27``)."""

    conditions: Conditions


@dataclass(frozen=True, slots=True)
class CancelForward(_Command):
    """Back to the initial state: voicemail for conditional forwards, none otherwise."""

    conditions: Conditions


@dataclass(frozen=True, slots=True)
class QueryForward(_Command):
    """ACTIVE when every one of ``conditions`` is forwarded elsewhere than the default."""

    conditions: Conditions


@dataclass(frozen=True, slots=True)
class SetClir(_Command):
    """Withhold (``True``) or present (``False``) my identity on all calls."""

    withheld: bool


@dataclass(frozen=True, slots=True)
class QueryClir(_Command):
    """``**65``: ACTIVE while my identity is withheld."""


@dataclass(frozen=True, slots=True)
class SetPreAnswer(_Command):
    """Activate or deactivate my recorded pre-answer announcement."""

    active: bool


@dataclass(frozen=True, slots=True)
class QueryPreAnswer(_Command):
    """``**35``: ACTIVE while my announcement is active and recorded."""


@dataclass(frozen=True, slots=True)
class JoinGroup(_Command):
    """Ring again for hunt group ``group`` (``None``: all my groups)."""

    group: str | None


@dataclass(frozen=True, slots=True)
class LeaveGroup(_Command):
    """Stop ringing for hunt group ``group`` (``None``: all my groups)."""

    group: str | None


@dataclass(frozen=True, slots=True)
class SetVoicePresentation(_Command):
    mode: VoicePresentation


@dataclass(frozen=True, slots=True)
class QueryVoicePresentation(_Command):
    """``**33``: ACTIVE unless voice presentation is off."""


@dataclass(frozen=True, slots=True)
class SetForwardProtection(_Command):
    """While on, internal phones cannot forward to me (``*89*1``)."""

    on: bool


@dataclass(frozen=True, slots=True)
class QueryForwardProtection(_Command):
    """``**89``: ACTIVE while forwarding protection is on."""


# Actions: the executor carries them out; ``apply`` is not for them.


@dataclass(frozen=True, slots=True)
class PlaceCall(_Command):
    """``*66*<number>``: call ``number`` (as dialled: internal, speed dial or public)."""

    number: str
    withheld: bool = True


@dataclass(frozen=True, slots=True)
class RecordPreAnswer(_Command):
    """``*35*2``: answer, record up to ``max_s`` seconds, ``end_key`` ends; then store the
    audio and call ``LineSettings.with_pre_answer_message(ref)``."""

    max_s: int = PRE_ANSWER_MAX_S
    end_key: str = "#"


@dataclass(frozen=True, slots=True)
class CallVoicemail(_Command):
    """``888``: the voicemail (own box from one's phone; a PIN is asked from others)."""


@dataclass(frozen=True, slots=True)
class CallGroup(_Command):
    """``999``: ring the group (the Standard: every phone but the caller's)."""

    group: str


@dataclass(frozen=True, slots=True)
class SpeedDial(_Command):
    """``700``-``869``: call the company directory's entry (:func:`resolve_speed_dial`)."""

    code: str


@dataclass(frozen=True, slots=True)
class Pickup(_Command):
    """``*8*<ext>``: answer the call ringing on ``extension`` (not in STAR-CODES.md)."""

    extension: str


SettingCommand = (
    SetForward
    | RecallForward
    | CancelForward
    | QueryForward
    | SetClir
    | QueryClir
    | SetPreAnswer
    | QueryPreAnswer
    | JoinGroup
    | LeaveGroup
    | SetVoicePresentation
    | QueryVoicePresentation
    | SetForwardProtection
    | QueryForwardProtection
)
"""What ``apply`` takes: a change of the line's settings, or a query."""
Action = PlaceCall | RecordPreAnswer | CallVoicemail | CallGroup | SpeedDial | Pickup
"""What the executor carries out itself."""
Command = SettingCommand | Action


@dataclass(frozen=True, slots=True)
class NotAStarCode:
    """An ordinary number: route it."""

    dialled: str


@dataclass(frozen=True, slots=True)
class Invalid:
    """A star code that cannot be carried out: answered with the "refused" confirmation.

    ``syntax``: the table row (or the code family, ``*65``) it was read as, if any.
    """

    dialled: str
    reason: str
    syntax: str | None = None


# -- the table ------------------------------------------------------------------------

Style = Literal["office", "gsm", "internal", "extra"]
Args = Mapping[str, str | None]
Builder = Callable[[Args], Command | str]  # a str is why the arguments are refused


@dataclass(frozen=True, slots=True)
class Code:
    """One row of :data:`CODES`: ``syntax`` as STAR-CODES.md writes it."""

    syntax: str
    style: Style
    effect: str
    build: Builder = field(repr=False, compare=False)
    regex: str | None = field(default=None, repr=False)  # instead of the compiled syntax
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)
    family: str | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        source = self.regex if self.regex is not None else _compile(self.syntax, self.style)
        object.__setattr__(self, "pattern", re.compile(source))
        m = _FAMILY.match(self.syntax)
        object.__setattr__(self, "family", m.group(0) if m else None)


_FAMILY = re.compile(r"[*#]+[0-9]+")
_PLACEHOLDER = re.compile(r"<([a-z]+)>")


def _compile(syntax: str, style: Style) -> str:
    """``*24*<dest>`` -> ``\\*24\\*(?P<dest>[0-9]*)#?``; ``[...]`` optional.

    Arguments match any digits (even none) so that their builder, not the table,
    says what is wrong with them.
    """
    body = syntax.removesuffix("#") if style != "internal" else syntax
    out: list[str] = []
    pos = 0
    while pos < len(body):
        ch = body[pos]
        if ch == "<":
            m = _PLACEHOLDER.match(body, pos)
            if m is None:
                raise ValueError(f"bad placeholder in {syntax!r}")
            out.append(f"(?P<{m.group(1)}>[0-9]*)")
            pos = m.end()
            continue
        if ch == "[":
            out.append("(?:")
        elif ch == "]":
            out.append(")?")
        else:
            out.append(re.escape(ch))
        pos += 1
    if style != "internal":
        out.append("#?")
    return "".join(out)


def _const(command: Command) -> Builder:
    return lambda _args: command


def _forward(conditions: Conditions, *, gsm_ring: bool = False) -> Builder:
    def build(args: Args) -> Command | str:
        dest = args.get("dest") or ""
        problem = _number_problem(dest, "destination")
        if problem:
            return problem
        ring_s: int | None = None
        if gsm_ring:
            seconds = args.get("seconds")
            if seconds is None:
                ring_s = DEFAULT_RING_S
            elif not seconds.isdigit() or int(seconds) not in RING_S_RANGE:
                return f"durée de sonnerie {seconds or '(vide)'} : 5 à 60 secondes"
            else:
                ring_s = int(seconds)
        return SetForward(conditions, dest, ring_s)

    return build


def _place_call(args: Args) -> Command | str:
    number = args.get("number") or ""
    return _number_problem(number, "numéro") or PlaceCall(number, withheld=True)


def _internal(arg: str, what: str, make: Callable[[str], Command]) -> Builder:
    """A command on an internal number (a group, an extension): 3 digits."""

    def build(args: Args) -> Command | str:
        value = args.get(arg) or ""
        if not INTERNAL_NUMBER.fullmatch(value):
            return f"{what} {value or '(vide)'} : 3 chiffres attendus"
        return make(value)

    return build


def _speed_dial(args: Args) -> Command | str:
    return SpeedDial(args.get("code") or "")


def _number_problem(digits: str, what: str) -> str | None:
    """Why ``digits`` cannot be a destination or a number to call, or None."""
    if not digits:
        return f"{what} : vide"
    if len(digits) > 20:
        return f"{what} {digits} : trop long"
    if len(digits) < 2 or normalize(digits).kind == "invalid":
        return f"{what} {digits} : numéro invalide"
    return None


def _presentation(mode: VoicePresentation) -> Code:
    effects = {
        VoicePresentation.OFF: "voice presentation off (initial state)",
        VoicePresentation.CALLER: "announce the caller's number when I pick up",
        VoicePresentation.CALLER_AND_FORWARDER: (
            "announce who calls and whether an internal phone forwarded the call"
        ),
        VoicePresentation.FORWARDER: "announce whether an internal phone forwarded the call",
        VoicePresentation.FORWARDER_STATE: (
            "for calls forwarded by an internal phone, announce that phone's state"
        ),
        VoicePresentation.ALL: "all of 1, 2 and 4",
    }
    return Code(f"*33*{int(mode)}", "office", effects[mode], _const(SetVoicePresentation(mode)))


CODES: tuple[Code, ...] = (
    # -- office (Livebox guide) ---------------------------------------------------------
    Code(
        "*24*0",
        "office",
        "reset: forward on disconnection to voicemail",
        _const(CancelForward(_UNREACHABLE)),
    ),
    Code(
        "*24*<dest>",
        "office",
        "forward on disconnection (unregistered/unreachable)",
        _forward(_UNREACHABLE),
    ),
    Code(
        "*24",
        "office",
        "forward on disconnection to the last destination used",
        _const(RecallForward(_UNREACHABLE)),
    ),
    Code(
        "**24",
        "office",
        "query: forward on disconnection set to other than voicemail",
        _const(QueryForward(_UNREACHABLE)),
    ),
    Code(
        "*27*0",
        "office",
        "reset: forward on disconnection and no answer to voicemail",
        _const(CancelForward(_UNREACHABLE_AND_NO_ANSWER)),
    ),
    Code(
        "*27*<dest>",
        "office",
        "forward on disconnection and on no answer",
        _forward(_UNREACHABLE_AND_NO_ANSWER),
    ),
    Code(
        "*27",
        "office",
        "forward on disconnection and no answer to the last destination",
        _const(RecallForward(_UNREACHABLE_AND_NO_ANSWER)),
    ),
    Code(
        "**27",
        "office",
        "query: forward on disconnection and no answer",
        _const(QueryForward(_UNREACHABLE_AND_NO_ANSWER)),
    ),
    Code(
        "*65*1",
        "office",
        "withhold my identity on all calls (CLIR)",
        _const(SetClir(withheld=True)),
    ),
    Code("*65*0", "office", "present my identity again", _const(SetClir(withheld=False))),
    Code("**65", "office", "query CLIR state", _const(QueryClir())),
    Code("*66*<number>", "office", "withhold my identity for this call, then dial", _place_call),
    Code(
        "*35*2", "office", "record my pre-answer announcement (# ends)", _const(RecordPreAnswer())
    ),
    Code("*35*1", "office", "activate my pre-answer announcement", _const(SetPreAnswer(True))),
    Code("*35*0", "office", "deactivate my pre-answer announcement", _const(SetPreAnswer(False))),
    Code("**35", "office", "query my pre-answer announcement", _const(QueryPreAnswer())),
    Code("*31*<group>", "office", "join hunt group", _internal("group", "groupement", JoinGroup)),
    Code("*30*<group>", "office", "leave hunt group", _internal("group", "groupement", LeaveGroup)),
    Code("*31", "office", "join all my hunt groups", _const(JoinGroup(None))),
    Code("*30", "office", "leave all my hunt groups", _const(LeaveGroup(None))),
    *(_presentation(mode) for mode in VoicePresentation),
    Code("**33", "office", "query voice presentation", _const(QueryVoicePresentation())),
    Code("*89*1", "office", "forwarding protection on", _const(SetForwardProtection(True))),
    Code("*89*0", "office", "forwarding protection off", _const(SetForwardProtection(False))),
    Code("**89", "office", "query forwarding protection", _const(QueryForwardProtection())),
    # -- internal numbers -----------------------------------------------------------------
    Code("888", "internal", "voicemail", _const(CallVoicemail())),
    Code("999", "internal", 'call the "Standard" group', _const(CallGroup(STANDARD_GROUP))),
    Code(
        "700-869",
        "internal",
        "speed dials from the company directory",
        _speed_dial,
        regex=r"(?P<code>7[0-9]{2}|8[0-6][0-9])",
    ),
    # -- mobile style (GSM MMI) -------------------------------------------------------------
    Code("**21*<dest>#", "gsm", "unconditional forward", _forward(_UNCONDITIONAL)),
    Code(
        "**61*<dest>[*<seconds>]#",
        "gsm",
        "forward on no answer (optional ring time)",
        _forward(_NO_ANSWER, gsm_ring=True),
    ),
    Code("**62*<dest>#", "gsm", "forward when unreachable", _forward(_UNREACHABLE)),
    Code("**67*<dest>#", "gsm", "forward when busy", _forward(_BUSY)),
    Code("*#21#", "gsm", "query unconditional forward", _const(QueryForward(_UNCONDITIONAL))),
    Code("*#61#", "gsm", "query forward on no answer", _const(QueryForward(_NO_ANSWER))),
    Code("*#62#", "gsm", "query forward when unreachable", _const(QueryForward(_UNREACHABLE))),
    Code("*#67#", "gsm", "query forward when busy", _const(QueryForward(_BUSY))),
    Code("##21#", "gsm", "cancel unconditional forward", _const(CancelForward(_UNCONDITIONAL))),
    Code("##61#", "gsm", "cancel forward on no answer", _const(CancelForward(_NO_ANSWER))),
    Code("##62#", "gsm", "cancel forward when unreachable", _const(CancelForward(_UNREACHABLE))),
    Code("##67#", "gsm", "cancel forward when busy", _const(CancelForward(_BUSY))),
    Code("##004#", "gsm", "cancel all conditional forwards", _const(CancelForward(CONDITIONAL))),
    Code("##002#", "gsm", "cancel all forwards", _const(CancelForward(ALL_CONDITIONS))),
    # -- not in STAR-CODES.md -------------------------------------------------------------
    Code(
        f"{PICKUP_PREFIX}<ext>", "extra", "directed call pickup", _internal("ext", "poste", Pickup)
    ),
)
"""Every code, first match wins (see the module docstring)."""


# -- parse ----------------------------------------------------------------------------

_ESCAPED = re.compile(r"%2[3aA]")
_INTERNAL = re.compile(r"[0-9]{3}")


def parse(dialled: str) -> Command | NotAStarCode | Invalid:
    """What ``dialled`` (a Request-URI user part) asks for; never raises."""
    text = _ESCAPED.sub(lambda m: "#" if m.group(0) == "%23" else "*", dialled.strip())
    if not text.startswith(("*", "#")) and not _INTERNAL.fullmatch(text):
        return NotAStarCode(dialled)
    for code in CODES:
        m = code.pattern.fullmatch(text)
        if m is None:
            continue
        built = code.build(m.groupdict())
        if isinstance(built, str):
            return Invalid(dialled, built, code.syntax)
        return replace(built, dialled=dialled)
    if not text.startswith(("*", "#")):
        return NotAStarCode(dialled)
    family = max(
        (c.family for c in CODES if c.family and text.startswith(c.family)),
        key=len,
        default=None,
    )
    if family is None:
        return Invalid(dialled, f"code inconnu {text}")
    forms = ", ".join(c.syntax for c in CODES if c.family == family)
    return Invalid(dialled, f"{text} : forme attendue {forms}", family)


def resolve_speed_dial(code: str, speed_dials: Mapping[str, str]) -> str | None:
    """The number behind a speed-dial code (``700``-``869``) of the company directory
    (``switch.directory.Company.speed_dials`` as ``{code: number}``), or None."""
    if not code.isdigit() or int(code) not in SPEED_DIAL_RANGE:
        return None
    return speed_dials.get(code)


# -- apply ----------------------------------------------------------------------------


class Reply(StrEnum):
    """The audible confirmation (an announcement or a tone)."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    ACTIVE = "active"
    INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What to play, and why (logs, CDR)."""

    reply: Reply
    because: tuple[str, ...]

    @property
    def refused(self) -> bool:
        return self.reply is Reply.REFUSED


def _nobody(_extension: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class StarContext:
    """What ``apply`` needs to know beyond the line's own settings.

    ``extension``, ``direct_number``: the dialling line (forwarding to itself is refused).
    ``forward_profile``: its restriction profile for forwards (RESTRICTIONS.md, 1-10),
    read with ``restrictions``, the company's table (profiles 8/9, allow/deny prefixes).
    ``voicemail``: it has a voicemail box (``888`` as a destination needs one).
    ``extensions``: the company's internal numbers (lines); ``groups``: its hunt groups,
    ``999`` included; ``member_of``: the groups this line is declared in.
    ``speed_dials``: ``{code: number}`` of the company directory.
    ``protected(extension)``: that line has forwarding protection on (``*89*1``).
    ``plan``: the numbering plan (``None``: the default one).
    """

    extension: str
    forward_profile: int
    direct_number: str | None = None
    voicemail: bool = True
    extensions: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset({STANDARD_GROUP})
    member_of: frozenset[str] = frozenset({STANDARD_GROUP})
    speed_dials: Mapping[str, str] = field(default_factory=dict)
    protected: Callable[[str], bool] = _nobody
    plan: NumberingPlan | None = None
    restrictions: RestrictionTable = NO_TABLE


@dataclass(frozen=True, slots=True)
class DestinationCheck:
    """A forward destination, resolved and checked: ``value`` is what gets stored."""

    allowed: bool
    value: str
    because: str


def check_forward_destination(dest: str, ctx: StarContext) -> DestinationCheck:
    """May the line of ``ctx`` forward to ``dest`` (as dialled)? Activation-time rules.

    In order: ``888`` is the line's voicemail (needs a box); itself is refused; a line
    of the company is accepted unless it has forwarding protection on; a group is
    accepted; a speed dial resolves to its number; another 3-digit number is an
    unknown internal number; anything else is a public number, checked against the
    forward profile and the company's table (emergency numbers always pass,
    RESTRICTIONS.md).
    """
    if dest == VOICEMAIL:
        if ctx.voicemail:
            return DestinationCheck(True, VOICEMAIL, "messagerie vocale")
        return DestinationCheck(False, dest, "pas de messagerie vocale sur ce poste")
    if dest == ctx.extension:
        return DestinationCheck(False, dest, "renvoi vers son propre poste")
    if dest in ctx.extensions:
        if ctx.protected(dest):
            return DestinationCheck(False, dest, f"poste {dest} protégé contre les renvois (*89*1)")
        return DestinationCheck(True, dest, f"poste {dest}")
    if dest in ctx.groups:
        return DestinationCheck(True, dest, f"groupement {dest}")
    prefix = ""
    speed = resolve_speed_dial(dest, ctx.speed_dials)
    if speed is not None:
        prefix, dest = f"numéro abrégé {dest} → {speed}, ", speed
    elif is_internal_number(dest, ctx.plan):
        return DestinationCheck(False, dest, f"numéro interne inconnu {dest}")
    number = normalize(dest, ctx.plan)
    if number.kind == "invalid":
        return DestinationCheck(False, dest, f"{prefix}numéro invalide {dest}")
    if ctx.direct_number is not None and number.value == ctx.direct_number:
        return DestinationCheck(False, dest, "renvoi vers sa propre ligne directe")
    verdict = check_restriction(
        ctx.forward_profile,
        destination_class(number, ctx.plan),
        number=number.value,
        table=ctx.restrictions,
    )
    because = f"{prefix}{number.value}, renvois : {verdict.because}"
    return DestinationCheck(verdict.allowed, number.value, because)


def _label(conditions: Conditions) -> str:
    if conditions == ALL_CONDITIONS:
        return "tous les renvois"
    if conditions == CONDITIONAL:
        return "renvois conditionnels"
    return " et ".join(FORWARD_LABELS[c] for c in conditions)


def _trace(command: SettingCommand, *because: str) -> tuple[str, ...]:
    head = (f"code {command.dialled}",) if command.dialled else ()
    return (*head, *because)


def _ok(
    settings: LineSettings, command: SettingCommand, *because: str
) -> tuple[LineSettings, Confirmation]:
    return settings, Confirmation(Reply.ACCEPTED, _trace(command, *because))


def _no(
    settings: LineSettings, command: SettingCommand, *because: str
) -> tuple[LineSettings, Confirmation]:
    return settings, Confirmation(Reply.REFUSED, _trace(command, *because, "refusé"))


def _state(
    settings: LineSettings, command: SettingCommand, active: bool, what: str
) -> tuple[LineSettings, Confirmation]:
    reply = Reply.ACTIVE if active else Reply.INACTIVE
    return settings, Confirmation(reply, _trace(command, f"{what} : {reply.value}"))


def apply(
    settings: LineSettings, command: SettingCommand, ctx: StarContext
) -> tuple[LineSettings, Confirmation]:
    """The settings after ``command`` and the confirmation to play; never raises for a
    user's mistake (REFUSED, settings unchanged). See the module docstring."""
    match command:
        case SetForward(conditions, destination, ring_s):
            return _set_forward(settings, command, conditions, destination, ring_s, ctx)
        case RecallForward(conditions):
            last = settings.forwarding.last_destination
            if last is None:
                return _no(settings, command, f"{_label(conditions)} : aucune destination connue")
            return _set_forward(settings, command, conditions, last, None, ctx)
        case CancelForward(conditions):
            fw = settings.forwarding
            for condition in conditions:
                fw = fw.with_destination(condition, None)
            default = (
                " (messagerie vocale)" if ForwardCondition.UNCONDITIONAL not in conditions else ""
            )
            return _ok(
                replace(settings, forwarding=fw), command, f"{_label(conditions)} annulé{default}"
            )
        case QueryForward(conditions):
            fw = settings.forwarding
            active = all(fw.is_set(c) for c in conditions)
            return _state(settings, command, active, _label(conditions))
        case SetClir(withheld):
            text = "numéro masqué sur tous les appels" if withheld else "numéro présenté"
            return _ok(replace(settings, clir=withheld), command, text)
        case QueryClir():
            return _state(settings, command, settings.clir, "numéro masqué")
        case SetPreAnswer(active):
            if active and settings.pre_answer.message is None:
                return _no(settings, command, "pré-décroché : aucune annonce enregistrée (*35*2)")
            pre_answer = replace(settings.pre_answer, active=active)
            text = "pré-décroché activé" if active else "pré-décroché désactivé"
            return _ok(replace(settings, pre_answer=pre_answer), command, text)
        case QueryPreAnswer():
            return _state(settings, command, settings.pre_answer.plays, "pré-décroché")
        case JoinGroup() | LeaveGroup():
            return _membership(settings, command, ctx)
        case SetVoicePresentation(mode):
            text = f"présentation vocale {int(mode)}"
            return _ok(replace(settings, voice_presentation=mode), command, text)
        case QueryVoicePresentation():
            active = settings.voice_presentation is not VoicePresentation.OFF
            what = f"présentation vocale {int(settings.voice_presentation)}"
            return _state(settings, command, active, what)
        case SetForwardProtection(on):
            text = "protection contre les renvois " + ("activée" if on else "désactivée")
            return _ok(replace(settings, forward_protection=on), command, text)
        case QueryForwardProtection():
            return _state(
                settings, command, settings.forward_protection, "protection contre les renvois"
            )
        case _:
            assert_never(command)


def _set_forward(
    settings: LineSettings,
    command: SettingCommand,
    conditions: Conditions,
    destination: str,
    ring_s: int | None,
    ctx: StarContext,
) -> tuple[LineSettings, Confirmation]:
    check = check_forward_destination(destination, ctx)
    if not check.allowed:
        return _no(settings, command, _label(conditions), check.because)
    fw: Forwarding = settings.forwarding
    for condition in conditions:
        fw = fw.with_destination(condition, check.value)
    if ring_s is not None:
        fw = replace(fw, ring_s=ring_s)
    if check.value != VOICEMAIL:
        fw = replace(fw, last_destination=check.value)
    because = [f"{_label(conditions)} vers {check.because}"]
    if ring_s is not None:
        because.append(f"sonnerie {ring_s} s")
    return _ok(replace(settings, forwarding=fw), command, *because)


def _membership(
    settings: LineSettings, command: JoinGroup | LeaveGroup, ctx: StarContext
) -> tuple[LineSettings, Confirmation]:
    """``*31``/``*30`` (``group`` None: all my groups): the settings keep the groups left."""
    join = isinstance(command, JoinGroup)
    done = "rejoint" if join else "quitté"
    group = command.group
    if group is None:
        if not ctx.member_of:
            return _no(settings, command, "membre d'aucun groupement")
        left = frozenset() if join else ctx.member_of
        names = ", ".join(sorted(ctx.member_of))
        return _ok(replace(settings, left_groups=left), command, f"groupements {names} {done}s")
    problem = _group_problem(group, ctx)
    if problem:
        return _no(settings, command, problem)
    left = settings.left_groups - {group} if join else settings.left_groups | {group}
    return _ok(replace(settings, left_groups=left), command, f"groupement {group} {done}")


def _group_problem(group: str, ctx: StarContext) -> str | None:
    if group not in ctx.groups:
        return f"groupement inconnu {group}"
    if group not in ctx.member_of:
        return f"pas membre du groupement {group} (l'administrateur déclare les membres)"
    return None


__all__ = [
    "CODES",
    "PICKUP_PREFIX",
    "SPEED_DIAL_RANGE",
    "Action",
    "CallGroup",
    "CallVoicemail",
    "CancelForward",
    "Code",
    "Command",
    "Confirmation",
    "DestinationCheck",
    "Invalid",
    "JoinGroup",
    "LeaveGroup",
    "NotAStarCode",
    "Pickup",
    "PlaceCall",
    "QueryClir",
    "QueryForward",
    "QueryForwardProtection",
    "QueryPreAnswer",
    "QueryVoicePresentation",
    "RecallForward",
    "RecordPreAnswer",
    "Reply",
    "SetClir",
    "SetForward",
    "SetForwardProtection",
    "SetPreAnswer",
    "SetVoicePresentation",
    "SettingCommand",
    "SpeedDial",
    "StarContext",
    "apply",
    "check_forward_destination",
    "parse",
    "resolve_speed_dial",
]
