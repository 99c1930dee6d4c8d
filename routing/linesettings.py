"""The per-line settings a user changes from the phone (star codes), as immutable data.

Spec: ``STAR-CODES.md``, ``PRODUCT.md`` (hosted PBX). Pure: no I/O, no clock. The
star-code interpreter (``routing.starcodes.apply``) returns new values, the
forwarding resolver (``routing.forwarding``) reads them, and a store
(``switch.line_settings``: SQLite, Redis in cluster mode) keeps them as the JSON
objects of :meth:`LineSettings.to_dict`.

What a line holds (its initial state is ``LineSettings()``: nothing set)::

    LineSettings
      forwarding: Forwarding            renvois
        unconditional   None | dest     **21 (GSM style only)
        busy            None | dest     **67; None: the default (voicemail)
        no_answer       None | dest     **61, *27; None: the default (voicemail)
        unreachable     None | dest     **62, *24, *27; None: the default (voicemail)
        ring_s          int             no-answer ring time, 5-60 s (default 20)
        last_destination None | dest    what *24 / *27 alone re-activate
      clir              bool            *65*1 / *65*0: identity withheld on every call
      forward_protection bool           *89*1 / *89*0: internal phones cannot forward to me
      voice_presentation 0-5            *33*N: what is announced when I pick up
      pre_answer: PreAnswer             *35*1 / *35*0 (active), *35*2 records ``message``
      left_groups       frozenset[str]  hunt groups left with *30 (membership is declared
                                        in directory.yaml; *31 joins again)
      forwarded_identity caller|forwarder  number presented on my external forwards

A destination (``dest``) is what the call goes to, already resolved when it was
stored: an internal number (``401``, ``601``, a group ``500``), ``888`` (the
line's own voicemail), a public number in E.164 (``+33612345678``) or a short
number (``3639``). Speed dials are stored as the number they dialled.

Conditional forwards (busy, no answer, unreachable) **default to the line's
voicemail**: ``None`` means "the default" and ``888`` is stored as ``None`` for
them, so that there is one way to write each state; the unconditional forward
has no default (``None``: not forwarded) and keeps ``888``. A query star code
answers "active" exactly when a service differs from its initial state.

Hunt groups also have settings of their own (:class:`GroupSettings`): the manual
day/night override (``day_night_mode``).

Serialisation: ``to_dict`` gives JSON-able dicts (sorted lists for sets, enum
values), ``from_dict`` reads them back, fills absent keys with their defaults
(settings written by an older build), ignores unknown keys (written by a newer
build during a rolling upgrade) and raises :class:`SettingsError` on anything
else (wrong types, out-of-range values, a newer ``v``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from routing.numbering import NumberingPlan, destination_class

SCHEMA = 1
"""The ``v`` written by ``to_dict``; ``from_dict`` refuses a higher one."""

VOICEMAIL = "888"
"""The voicemail number (``switch.directory`` imports it as ``VOICEMAIL_NUMBER``): as
a forward destination, the forwarding line's own box."""

STANDARD_GROUP = "999"
"""The "Standard" group every line belongs to unless declared otherwise."""

DEFAULT_RING_S = 20
RING_S_RANGE = range(5, 61)
"""No-answer ring time accepted by ``**61*<dest>*<seconds>#`` (5-60 s)."""

PRE_ANSWER_MAX_S = 60
"""Longest pre-answer announcement a user may record with ``*35*2``."""

INTERNAL_NUMBER = re.compile(r"[1-9][0-9]{2}")
"""The shape of an internal number: an extension (``401``, ``601``) or a hunt group
(``500``, ``999``)."""

_DESTINATION = re.compile(r"\+?[0-9]{2,20}")


class SettingsError(ValueError):
    """Stored settings that cannot be read: ``path: message``."""


class ForwardCondition(StrEnum):
    """When a forward applies (RFC 5806 reasons in ``routing.forwarding``)."""

    UNCONDITIONAL = "unconditional"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    UNREACHABLE = "unreachable"


CONDITIONAL = (ForwardCondition.BUSY, ForwardCondition.NO_ANSWER, ForwardCondition.UNREACHABLE)
ALL_CONDITIONS = (ForwardCondition.UNCONDITIONAL, *CONDITIONAL)

FORWARD_LABELS: Mapping[ForwardCondition, str] = {
    ForwardCondition.UNCONDITIONAL: "renvoi immédiat",
    ForwardCondition.BUSY: "renvoi sur occupation",
    ForwardCondition.NO_ANSWER: "renvoi sur non-réponse",
    ForwardCondition.UNREACHABLE: "renvoi sur non-connexion",
}
"""The operator's word for each forward, in ``because`` traces."""


class VoicePresentation(IntEnum):
    """``*33*N``: what the switch announces when the user picks up (one at a time)."""

    OFF = 0  # initial state
    CALLER = 1  # the caller's number
    CALLER_AND_FORWARDER = 2  # who calls, and whether an internal phone forwarded it
    FORWARDER = 3  # whether an internal phone forwarded the call
    FORWARDER_STATE = 4  # the forwarding phone's state (busy, free, on voicemail)
    ALL = 5  # 1, 2 and 4


class ForwardedIdentity(StrEnum):
    """The number presented on the calls a line forwards to an external number."""

    CALLER = "caller"  # the first caller (default)
    FORWARDER = "forwarder"  # the forwarding line's own number


class DayNight(StrEnum):
    DAY = "day"
    NIGHT = "night"


def is_internal_number(dest: str, plan: NumberingPlan | None = None) -> bool:
    """``dest`` has the shape of an internal number and is not an emergency number
    (``112``, ``115``… are short public numbers): a line or group of the company,
    never a public number, whether the company has it or not."""
    return (
        INTERNAL_NUMBER.fullmatch(dest) is not None
        and destination_class(dest, plan).klass != "emergency"
    )


def is_destination(value: str) -> bool:
    """The shape of a stored forward destination (``+`` optional, 2-20 digits)."""
    return _DESTINATION.fullmatch(value) is not None


def _check_destination(name: str, value: str | None) -> None:
    if value is not None and not (isinstance(value, str) and is_destination(value)):
        raise ValueError(f"{name}: not a destination: {value!r}")


@dataclass(frozen=True, slots=True)
class Forwarding:
    """Renvois d'appel: one destination per condition (see the module docstring)."""

    unconditional: str | None = None
    busy: str | None = None
    no_answer: str | None = None
    unreachable: str | None = None
    ring_s: int = DEFAULT_RING_S
    last_destination: str | None = None

    def __post_init__(self) -> None:
        for condition in ALL_CONDITIONS:
            _check_destination(condition.value, self.destination(condition))
            if condition is not ForwardCondition.UNCONDITIONAL and (
                self.destination(condition) == VOICEMAIL
            ):
                raise ValueError(f"{condition.value}: voicemail is the default, store None")
        _check_destination("last_destination", self.last_destination)
        if isinstance(self.ring_s, bool) or self.ring_s not in RING_S_RANGE:
            raise ValueError(f"ring_s: {self.ring_s!r} not in 5-60")

    def destination(self, condition: ForwardCondition) -> str | None:
        """The stored destination (``None``: the default for the condition)."""
        match condition:
            case ForwardCondition.UNCONDITIONAL:
                return self.unconditional
            case ForwardCondition.BUSY:
                return self.busy
            case ForwardCondition.NO_ANSWER:
                return self.no_answer
            case ForwardCondition.UNREACHABLE:
                return self.unreachable

    def is_set(self, condition: ForwardCondition) -> bool:
        """Differs from the initial state (voicemail for conditional forwards)."""
        return self.destination(condition) is not None

    def with_destination(self, condition: ForwardCondition, dest: str | None) -> Forwarding:
        """``dest`` for ``condition``; voicemail is written ``None`` for conditional ones."""
        if condition is not ForwardCondition.UNCONDITIONAL and dest == VOICEMAIL:
            dest = None
        match condition:
            case ForwardCondition.UNCONDITIONAL:
                return replace(self, unconditional=dest)
            case ForwardCondition.BUSY:
                return replace(self, busy=dest)
            case ForwardCondition.NO_ANSWER:
                return replace(self, no_answer=dest)
            case ForwardCondition.UNREACHABLE:
                return replace(self, unreachable=dest)


@dataclass(frozen=True, slots=True)
class PreAnswer:
    """Pré-décroché: an announcement played to callers before the phone rings.

    ``message`` is the executor's reference of the recorded audio (``*35*2``);
    ``active`` is ``*35*1`` / ``*35*0``. It plays only when both are there.
    """

    active: bool = False
    message: str | None = None

    @property
    def plays(self) -> bool:
        return self.active and self.message is not None


@dataclass(frozen=True, slots=True)
class LineSettings:
    """Everything a line's user set from the phone; ``LineSettings()`` is the initial state."""

    forwarding: Forwarding = field(default_factory=Forwarding)
    clir: bool = False
    forward_protection: bool = False
    voice_presentation: VoicePresentation = VoicePresentation.OFF
    pre_answer: PreAnswer = field(default_factory=PreAnswer)
    left_groups: frozenset[str] = frozenset()
    forwarded_identity: ForwardedIdentity = ForwardedIdentity.CALLER

    def __post_init__(self) -> None:
        for group in self.left_groups:
            if not isinstance(group, str) or not INTERNAL_NUMBER.fullmatch(group):
                raise ValueError(f"left_groups: not a group number: {group!r}")

    # -- hunt groups --------------------------------------------------------------

    def in_group(self, group: str, declared: Iterable[str]) -> bool:
        """Rings for ``group``: declared a member (directory) and not left with ``*30``."""
        return group in frozenset(declared) and group not in self.left_groups

    def active_groups(self, declared: Iterable[str]) -> frozenset[str]:
        """The declared groups the line has not left."""
        return frozenset(declared) - self.left_groups

    # -- the executor's own changes -----------------------------------------------

    def with_pre_answer_message(self, message: str | None) -> LineSettings:
        """After ``*35*2`` recorded ``message`` (an audio reference); ``None`` deletes it
        and deactivates the announcement. Recording does not activate it: ``*35*1`` does."""
        active = self.pre_answer.active and message is not None
        return replace(self, pre_answer=PreAnswer(active, message))

    # -- JSON ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the stored form); ``from_dict(to_dict(s)) == s``."""
        fw = self.forwarding
        return {
            "v": SCHEMA,
            "forwarding": {
                "unconditional": fw.unconditional,
                "busy": fw.busy,
                "no_answer": fw.no_answer,
                "unreachable": fw.unreachable,
                "ring_s": fw.ring_s,
                "last_destination": fw.last_destination,
            },
            "clir": self.clir,
            "forward_protection": self.forward_protection,
            "voice_presentation": int(self.voice_presentation),
            "pre_answer": {"active": self.pre_answer.active, "message": self.pre_answer.message},
            "left_groups": sorted(self.left_groups),
            "forwarded_identity": self.forwarded_identity.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LineSettings:
        """Read what ``to_dict`` wrote (see the module docstring for the tolerance rules)."""
        r = _Reader(data, "settings")
        r.schema()
        fw = r.child("forwarding")
        pa = r.child("pre_answer")
        try:
            forwarding = Forwarding(
                unconditional=fw.opt_text("unconditional"),
                busy=fw.opt_text("busy"),
                no_answer=fw.opt_text("no_answer"),
                unreachable=fw.opt_text("unreachable"),
                ring_s=fw.integer("ring_s", DEFAULT_RING_S),
                last_destination=fw.opt_text("last_destination"),
            )
            presentation = r.integer("voice_presentation", 0)
            if presentation not in set(VoicePresentation):
                raise ValueError(f"voice_presentation: {presentation} not in 0-5")
            identity = r.text("forwarded_identity", ForwardedIdentity.CALLER.value)
            if identity not in set(ForwardedIdentity):
                raise ValueError(f"forwarded_identity: {identity!r} (caller or forwarder)")
            return cls(
                forwarding=forwarding,
                clir=r.flag("clir"),
                forward_protection=r.flag("forward_protection"),
                voice_presentation=VoicePresentation(presentation),
                pre_answer=PreAnswer(pa.flag("active"), pa.opt_text("message")),
                left_groups=frozenset(r.texts("left_groups")),
                forwarded_identity=ForwardedIdentity(identity),
            )
        except SettingsError:
            raise
        except ValueError as exc:  # a model invariant (``__post_init__``)
            raise SettingsError(f"settings: {exc}") from None


@dataclass(frozen=True, slots=True)
class DayNightOverride:
    """A manual day/night switch: ``mode`` until ``until`` (``None``: until cancelled).

    ``until`` is a time-zone-aware wall time; the executor usually passes the next
    change of the group's schedule, so that the override ends where the schedule
    takes over again (``routing.calendar`` knows the schedule).
    """

    mode: DayNight
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.until is not None and self.until.tzinfo is None:
            raise ValueError("until: a time-zone-aware datetime")


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """A hunt group's own settings: the manual day/night override (service de nuit)."""

    day_night: DayNightOverride | None = None

    def to_dict(self) -> dict[str, Any]:
        override = self.day_night
        return {
            "v": SCHEMA,
            "day_night": None
            if override is None
            else {
                "mode": override.mode.value,
                "until": None if override.until is None else override.until.isoformat(),
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroupSettings:
        r = _Reader(data, "group")
        r.schema()
        if r.data.get("day_night") is None:
            return cls()
        dn = r.child("day_night")
        mode = dn.text("mode", "")
        if mode not in set(DayNight):
            raise SettingsError(f"group.day_night.mode: {mode!r} (day or night)")
        until_text = dn.opt_text("until")
        try:
            until = None if until_text is None else datetime.fromisoformat(until_text)
            return cls(DayNightOverride(DayNight(mode), until))
        except ValueError as exc:
            raise SettingsError(f"group.day_night.until: {exc}") from None


def day_night_mode(group: GroupSettings, scheduled: DayNight, at: datetime) -> tuple[DayNight, str]:
    """The mode a group runs in at ``at`` and why: the override while it lasts, else the
    schedule's mode (``scheduled``, computed by the caller from the group's calendar)."""
    override = group.day_night
    if override is not None and (override.until is None or at < override.until):
        until = "" if override.until is None else f" jusqu'à {override.until.isoformat()}"
        return override.mode, f"mode {_DAY_NIGHT_LABELS[override.mode]} forcé{until}"
    return scheduled, f"mode {_DAY_NIGHT_LABELS[scheduled]} selon l'horaire"


_DAY_NIGHT_LABELS = {DayNight.DAY: "jour", DayNight.NIGHT: "nuit"}


class _Reader:
    """Typed access to one JSON object, errors as ``path.key: message``."""

    __slots__ = ("data", "path")

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, Mapping):
            raise SettingsError(f"{path}: expected an object, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.path = path

    def _get(self, key: str, default: Any, kinds: tuple[type, ...], what: str) -> Any:
        value = self.data.get(key, default)
        if not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool)):
            raise SettingsError(f"{self.path}.{key}: expected {what}, got {value!r}")
        return value

    def schema(self) -> None:
        version = self._get("v", SCHEMA, (int,), "an integer")
        if version > SCHEMA:
            raise SettingsError(f"{self.path}.v: version {version}, this build reads {SCHEMA}")

    def child(self, key: str) -> _Reader:
        value = self.data.get(key)
        return _Reader({} if value is None else value, f"{self.path}.{key}")

    def flag(self, key: str) -> bool:
        return bool(self._get(key, False, (bool,), "true or false"))

    def integer(self, key: str, default: int) -> int:
        return int(self._get(key, default, (int,), "an integer"))

    def text(self, key: str, default: str) -> str:
        return str(self._get(key, default, (str,), "a string"))

    def opt_text(self, key: str) -> str | None:
        value = self._get(key, None, (str, type(None)), "a string or null")
        return None if value is None else str(value)

    def texts(self, key: str) -> list[str]:
        value = self._get(key, [], (list,), "a list")
        if not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{self.path}.{key}: expected strings, got {value!r}")
        return list(value)


__all__ = [
    "ALL_CONDITIONS",
    "CONDITIONAL",
    "DEFAULT_RING_S",
    "FORWARD_LABELS",
    "INTERNAL_NUMBER",
    "PRE_ANSWER_MAX_S",
    "RING_S_RANGE",
    "SCHEMA",
    "STANDARD_GROUP",
    "VOICEMAIL",
    "DayNight",
    "DayNightOverride",
    "ForwardCondition",
    "ForwardedIdentity",
    "Forwarding",
    "GroupSettings",
    "LineSettings",
    "PreAnswer",
    "SettingsError",
    "VoicePresentation",
    "day_night_mode",
    "is_destination",
    "is_internal_number",
]
