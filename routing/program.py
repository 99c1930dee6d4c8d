"""Routing programs ("programmes d'acheminement") as validated, immutable models.

One YAML file under ``DIR/routing/`` is a :class:`RoutingFile`; every section is
optional and the loader merges all files into one library::

    contracts:      main contracts and their secondary contracts (sous-comptes)
    numbers:        service number -> program, limiteur, ATP, zones, plans de secours
    programs:       the library of programs, shared by many numbers (mutualisation)
    messages:       messages personnalisés: id -> audio file, language, duration
    calendars:      named calendars (routing.calendar.Calendar)
    caller_lists:   named caller lists (numbers and prefixes)

A program is a list of steps, a discriminated union on ``type``:

=============  =========================================================================
``limit``      limiteur: at most ``max`` simultaneous calls (this number, or ``pool``)
``play``       a message (``early`` media, ``skippable_with`` a DTMF key, ``then``)
``calendar``   branches by period of a named calendar; no period -> cause ``closed``
``callers``    branches by nature des appelants, country, zone, caller list, prefix
``split``      percentage distribution between branches
``gnr``        Groupe de Numéros de Réception: 1-10 targets, a strategy, ``rounds``
``goto``       continue in another program of the library
``dial``       one reception number
``voicemail``  hand the call to a voicemail box
``menu``       hand the call to a voice menu (placeholder for the IVR)
``hangup``     release the call with a cause (after an optional message)
=============  =========================================================================

Débordement (overflow): ``overflow`` maps a cause (``busy``, ``no_answer``,
``unreachable``, ``rejected``, ``limit``, ``closed``, ``all_failed``) to exactly one
target: a ``number`` to dial, a ``message`` played before hanging up, or a
``program`` to continue in. It may be given on a step, on a program and on a
number; the engine looks in that order (see ``routing.overflow``).

Bounds live in the types (1-10 GNR targets, limit >= 1, rounds >= 1, ring time >
0); rules that need the whole library (references, cycles, unreachable steps, ATP
on free numbers) are checked by ``routing.loader``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from routing.calendar import Calendar
from routing.callers import CallerNature

MAX_GNR_TARGETS = 10
"""Un GNR regroupe au maximum 10 Numéros de Réception (Numéros Contact IP)."""

MAX_ROUNDS = 10
DEFAULT_TIMEZONE = "Europe/Paris"
MAX_RING_S = 300


class Cause(StrEnum):
    """Causes de débordement: why the program could not go on."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNREACHABLE = "unreachable"
    REJECTED = "rejected"
    LIMIT = "limit"
    CLOSED = "closed"
    ALL_FAILED = "all_failed"


class FailCause(StrEnum):
    """Why one dialled target did not answer (a call-control fact, never a SIP code)."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNREACHABLE = "unreachable"
    REJECTED = "rejected"


class EndCause(StrEnum):
    """The cause given with a released call (``Reject``)."""

    NORMAL = "normal"
    REFUSED = "refused"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNREACHABLE = "unreachable"
    REJECTED = "rejected"
    LIMIT = "limit"
    CLOSED = "closed"
    ALL_FAILED = "all_failed"


class Strategy(StrEnum):
    """Règles d'acheminement d'un GNR."""

    SEQUENTIAL = "sequential"
    SIMULTANEOUS = "simultaneous"
    ROUND_ROBIN = "round_robin"
    LEAST_RECENT = "least_recent"
    WEIGHTED = "weighted"


DEFAULT_PRECEDENCE: tuple[FailCause, ...] = (
    FailCause.BUSY,
    FailCause.NO_ANSWER,
    FailCause.UNREACHABLE,
    FailCause.REJECTED,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DIGITS = re.compile(r"^\+?[0-9]{2,15}$")
# Extensions (401) and short numbers (3900, 116000) may be written without quotes.
MAX_UNQUOTED_DIGITS = 6
_SEPARATORS = re.compile(r"[\s.\-()]")


def _name(value: Any) -> Any:
    if isinstance(value, str) and not _NAME.match(value):
        raise PydanticCustomError(
            "name",
            "a name is 1-64 letters, digits, '_', '.', '-' (starting with a letter or digit)",
        )
    return value


def _phone(value: Any) -> Any:
    """A number written in YAML: a quoted string, or a plain integer without a leading 0.

    YAML 1.2 reads ``0800100100`` as the integer 800100100: refuse it rather than
    lose the leading zero.
    """
    if isinstance(value, bool):
        raise PydanticCustomError("phone", "expected a number in quotes")
    if isinstance(value, int):
        width = getattr(value, "_width", None)
        if width is not None and width > len(str(value)):
            raise PydanticCustomError(
                "phone",
                "write this number in quotes: YAML reads a leading 0 as an integer",
            )
        if len(str(abs(value))) > MAX_UNQUOTED_DIGITS:
            # ``+33800100100`` unquoted is the integer 33800100100: its '+' is
            # already gone, so only short numbers and extensions may go unquoted.
            raise PydanticCustomError(
                "phone",
                "write this number in quotes: YAML reads an unquoted number as an integer",
            )
        value = str(value)
    if isinstance(value, str):
        compact = _SEPARATORS.sub("", value)
        if compact.startswith("00"):
            compact = "+" + compact[2:]
        if not _DIGITS.match(compact):
            raise PydanticCustomError("phone", "not a phone number: '{value}'", {"value": value})
        return compact
    return value


Name = Annotated[str, BeforeValidator(_name)]
Phone = Annotated[str, BeforeValidator(_phone)]
RingSeconds = Annotated[int, Field(gt=0, le=MAX_RING_S)]
DtmfKey = Annotated[str, Field(pattern=r"^[0-9*#]$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- overflow (débordement) ------------------------------------------------------


class OverflowTarget(Model):
    """Where a call goes on a cause: exactly one of ``number``, ``message``, ``program``."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "oneOf": [
                {"required": ["number"]},
                {"required": ["message"]},
                {"required": ["program"]},
            ]
        },
    )

    number: Phone | None = Field(None, description="a reception number to dial")
    ring_s: RingSeconds | None = Field(None, description="ring time of `number` (default 20 s)")
    message: Name | None = Field(None, description="a message played, then the call is released")
    program: Name | None = Field(None, description="a program of the library to continue in")

    @model_validator(mode="after")
    def _exactly_one(self) -> OverflowTarget:
        given = [k for k in ("number", "message", "program") if getattr(self, k) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "overflow_target", "give exactly one of number, message, program"
            )
        if self.ring_s is not None and self.number is None:
            raise PydanticCustomError("overflow_target", "ring_s goes with number")
        return self

    def describe(self) -> str:
        if self.number is not None:
            return f"numéro {self.number}"
        if self.message is not None:
            return f"message « {self.message} »"
        return f"programme « {self.program} »"


Overflow = dict[Cause, OverflowTarget]


class _StepBase(Model):
    description: str = ""


class _OverflowStep(_StepBase):
    overflow: Overflow = Field(default_factory=dict, description="débordement by cause")


# --- steps -----------------------------------------------------------------------


class LimitStep(_OverflowStep):
    """Limiteur: at most ``max`` simultaneous calls; full -> cause ``limit``."""

    type: Literal["limit"]
    max: int = Field(ge=1, le=100_000)
    pool: Name | None = Field(None, description="a pool shared by several numbers")


class PlayStep(_StepBase):
    """Play a message, then go on (``then: continue``) or release the call."""

    type: Literal["play"]
    message: Name
    early: bool = Field(False, description="play before answer (early media, free for the caller)")
    skippable_with: DtmfKey | None = None
    then: Literal["continue", "hangup"] = "continue"


class CalendarStep(_OverflowStep):
    """Branches by the period of a calendar; outside every period: cause ``closed``."""

    type: Literal["calendar"]
    calendar: Name
    branches: dict[Name, Block] = Field(min_length=1)


class CallerBranch(Model):
    """Matches when every given criterion matches (each criterion: any of its values)."""

    nature: list[CallerNature] | None = Field(None, min_length=1)
    country: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] | None = Field(None, min_length=1)
    zone: list[Annotated[str, Field(pattern=r"^0[1-5]$")]] | None = Field(None, min_length=1)
    in_list: Name | None = Field(None, alias="list", description="a named caller list")
    prefixes: list[Phone] | None = Field(None, min_length=1)
    steps: Block = Field(min_length=1)

    @model_validator(mode="after")
    def _some_criterion(self) -> CallerBranch:
        if all(
            getattr(self, k) is None for k in ("nature", "country", "zone", "in_list", "prefixes")
        ):
            raise PydanticCustomError(
                "caller_branch", "give at least one of nature, country, zone, list, prefixes"
            )
        return self


class CallersStep(_StepBase):
    """Nature des appelants: the first matching branch runs; else ``others`` (or go on)."""

    type: Literal["callers"]
    branches: list[CallerBranch] = Field(min_length=1)
    others: Block | None = Field(None, min_length=1)


class SplitBranch(Model):
    percent: int = Field(ge=1, le=100)
    steps: Block = Field(min_length=1)


class SplitStep(_StepBase):
    """Répartition: one branch drawn by percentage (the injected random source)."""

    type: Literal["split"]
    branches: list[SplitBranch] = Field(min_length=2)

    @field_validator("branches")
    @classmethod
    def _total_100(cls, branches: list[SplitBranch]) -> list[SplitBranch]:
        total = sum(b.percent for b in branches)
        if total != 100:
            raise PydanticCustomError(
                "split_total", "percentages add up to {total}, not 100", {"total": total}
            )
        return branches


class GnrTarget(Model):
    number: Phone
    ring_s: RingSeconds | None = Field(None, description="overrides the GNR ring time")
    weight: int = Field(1, ge=1, le=1000, description="for strategy weighted")


def _gnr_target(value: Any) -> Any:
    return {"number": value} if isinstance(value, str | int) else value


def _gnr_targets(value: Any) -> Any:
    if isinstance(value, list) and not 1 <= len(value) <= MAX_GNR_TARGETS:
        raise PydanticCustomError(
            "gnr_size",
            "a GNR holds 1 to 10 reception numbers, not {n}",
            {"n": len(value)},
        )
    return value


class GnrStep(_OverflowStep):
    """Groupe de Numéros de Réception: up to 10 targets, ``rounds`` attempts, a strategy."""

    type: Literal["gnr"]
    targets: Annotated[
        list[
            Annotated[
                GnrTarget, BeforeValidator(_gnr_target, json_schema_input_type=str | GnrTarget)
            ]
        ],
        BeforeValidator(_gnr_targets),
        Field(min_length=1, max_length=MAX_GNR_TARGETS),
    ]
    strategy: Strategy = Strategy.SEQUENTIAL
    ring_s: RingSeconds = 20
    rounds: int = Field(1, ge=1, le=MAX_ROUNDS, description="tentatives within the GNR")
    skip_known_busy: bool = True
    precedence: list[FailCause] = Field(
        default_factory=lambda: list(DEFAULT_PRECEDENCE),
        min_length=1,
        description="which cause wins when the attempts failed for different causes",
    )
    cursor: Name | None = Field(
        None, description="cursor name for round_robin / least_recent (default: program+step)"
    )

    @field_validator("targets")
    @classmethod
    def _distinct(cls, targets: list[GnrTarget]) -> list[GnrTarget]:
        seen: set[str] = set()
        for t in targets:
            if t.number in seen:
                raise PydanticCustomError(
                    "gnr_duplicate", "{n} appears twice in the GNR", {"n": t.number}
                )
            seen.add(t.number)
        return targets


class GotoStep(_StepBase):
    type: Literal["goto"]
    program: Name


class DialStep(_OverflowStep):
    type: Literal["dial"]
    number: Phone
    ring_s: RingSeconds = 20


class VoicemailStep(_StepBase):
    type: Literal["voicemail"]
    box: Phone
    greeting: Name | None = None


class MenuStep(_StepBase):
    """Placeholder: hands the call to the voice menu ``menu`` (IVR issue)."""

    type: Literal["menu"]
    menu: Name


class HangupStep(_StepBase):
    type: Literal["hangup"]
    cause: EndCause = EndCause.NORMAL
    message: Name | None = None


Step = Annotated[
    LimitStep
    | PlayStep
    | CalendarStep
    | CallersStep
    | SplitStep
    | GnrStep
    | GotoStep
    | DialStep
    | VoicemailStep
    | MenuStep
    | HangupStep,
    Field(discriminator="type"),
]
Block = list[Step]

TERMINAL_STEPS = (GnrStep, GotoStep, DialStep, VoicemailStep, MenuStep, HangupStep)


def is_terminal(step: Any) -> bool:
    """A step after which nothing of the same block can run."""
    if isinstance(step, TERMINAL_STEPS):
        return True
    if isinstance(step, PlayStep):
        return step.then == "hangup"
    if isinstance(step, CalendarStep):
        return all(block_is_terminal(b) for b in step.branches.values())
    if isinstance(step, SplitStep):
        return all(block_is_terminal(b.steps) for b in step.branches)
    if isinstance(step, CallersStep):
        return (
            step.others is not None
            and block_is_terminal(step.others)
            and all(block_is_terminal(b.steps) for b in step.branches)
        )
    return False


def block_is_terminal(steps: list[Any]) -> bool:
    return any(is_terminal(s) for s in steps)


class Program(Model):
    """Un programme d'acheminement, shared by any number of service numbers."""

    description: str = ""
    steps: Block = Field(min_length=1)
    overflow: Overflow = Field(default_factory=dict)


# --- numbers, messages, contracts, caller lists ----------------------------------


class Atp(Model):
    """Annonce Tarifaire Personnalisée: ≥ 10 s, ends with a beep, free for the caller."""

    message: Name
    early: bool = True
    skippable_with: DtmfKey | None = "#"


def _atp(value: Any) -> Any:
    return {"message": value} if isinstance(value, str) else value


def _timezone(value: Any) -> Any:
    if isinstance(value, str):
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", "unknown time zone '{tz}'", {"tz": value}
            ) from None
    return value


TimeZone = Annotated[str, BeforeValidator(_timezone)]


class ServiceNumber(Model):
    """Un Numéro Contact IP: its program, limiteur, ATP and plans de secours."""

    description: str = ""
    program: Name
    contract: Name | None = Field(None, description="main or secondary contract id")
    limit: int | None = Field(None, ge=1, le=100_000, description="limiteur: simultaneous calls")
    limit_pool: Name | None = Field(None, description="count the limiter in a shared pool")
    atp: Annotated[Atp | None, BeforeValidator(_atp, json_schema_input_type=str | Atp | None)] = (
        None
    )
    timezone: TimeZone | None = Field(
        None, description="site time zone: overrides the calendars' (default Europe/Paris)"
    )
    holidays: str | None = Field(
        None,
        pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$",
        description="holiday zone (FR, FR-57...): overrides the calendars'",
    )
    domain: str | None = Field(None, description="SIP domain of internal extensions (e.g. 401)")
    backup_plans: dict[Name, Name] = Field(
        default_factory=dict, description="plans de secours: plan name -> program"
    )
    active_backup: Name | None = Field(None, description="the plan de secours switched on")
    overflow: Overflow = Field(default_factory=dict)

    @model_validator(mode="after")
    def _checks(self) -> ServiceNumber:
        if self.limit_pool is not None and self.limit is None:
            raise PydanticCustomError("limit_pool", "limit_pool needs limit")
        return self


class Message(Model):
    """Un message personnalisé: an audio file (WAV or G.729 from the studio)."""

    file: str = Field(min_length=1, description="relative to DIR/messages/, or absolute")
    language: str = Field("fr", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    duration_s: float | None = Field(None, gt=0, description="default: read from the WAV file")
    description: str = ""


class Contract(Model):
    """Contrat principal, with its contrats secondaires (billing sub-accounts)."""

    name: str = ""
    secondary: dict[Name, str] = Field(default_factory=dict, description="id -> name")


class CallerList(Model):
    description: str = ""
    numbers: list[Phone] = Field(default_factory=list)
    prefixes: list[Phone] = Field(default_factory=list)

    @model_validator(mode="after")
    def _not_empty(self) -> CallerList:
        if not self.numbers and not self.prefixes:
            raise PydanticCustomError("caller_list", "a caller list needs numbers or prefixes")
        return self


class RoutingFile(Model):
    """One file of ``DIR/routing/``; all sections optional, merged by the loader."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="Aiguilleur routing programs",
        json_schema_extra={"$comment": "generated by `aiguilleur routing-schema`"},
    )

    contracts: dict[Name, Contract] = Field(default_factory=dict)
    numbers: dict[str, ServiceNumber] = Field(
        default_factory=dict, description="service number (quoted) -> its routing"
    )
    programs: dict[Name, Program] = Field(default_factory=dict)
    messages: dict[Name, Message] = Field(default_factory=dict)
    calendars: dict[Name, Calendar] = Field(default_factory=dict)
    caller_lists: dict[Name, CallerList] = Field(default_factory=dict)


for _model in (CalendarStep, CallerBranch, CallersStep, SplitBranch, SplitStep, Program):
    _model.model_rebuild()


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one routing file (exported to ``config/schema/``)."""
    schema = RoutingFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
