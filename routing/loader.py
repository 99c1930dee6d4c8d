"""Load ``DIR/routing/*.yaml`` into one immutable :class:`Library`, or every error.

Each file is parsed with positions kept (``routing.source``) and validated as a
``RoutingFile``; the files are then merged and checked as a whole. Every problem
is an error (never a warning) reported as ``file:line:col: path.to.field:
message``, and all of them are reported at once:

- a name (program, message, calendar, caller list, contract) defined twice, in
  one file or across files; a service number defined twice (after
  normalisation: ``0800100100`` and ``+33800100100`` are the same number);
- a reference to an unknown program, message, calendar, calendar period,
  caller list or contract;
- a cycle between programs through ``goto`` or overflow to a program (programme
  A déborde vers B qui renvoie vers A);
- an unreachable step (a step after a terminal step of the same block);
- a GNR with no target or more than 10 (in the model);
- an ATP on an emergency, free or shared-cost (grey) number, or an ATP message
  shorter than 10 s (NUMBERING.md);
- a message file that does not exist;
- a limiter pool declared with two different maxima.

A failed load returns nothing: the running library stays in place
(:class:`LibraryHolder`). Sessions keep the library they started with.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from routing.calendar import Calendar
from routing.program import (
    DEFAULT_TIMEZONE,
    CalendarStep,
    CallerList,
    CallersStep,
    Contract,
    GotoStep,
    HangupStep,
    LimitStep,
    Message,
    Overflow,
    PlayStep,
    Program,
    RoutingFile,
    ServiceNumber,
    SplitStep,
    VoicemailStep,
    is_terminal,
)
from routing.source import (
    ConfigError,
    ConfigErrors,
    Loc,
    YamlDocument,
    format_loc,
    load_yaml,
    validate,
)

ATP_MIN_SECONDS = 10.0
"""L'ATP dure au moins 10 secondes et se termine par un bip (NUMBERING.md)."""

DURATION_TOLERANCE_S = 0.5
"""How far a declared ``duration_s`` may be from a WAV file's real length."""

NO_ATP_CLASSES: Mapping[str, str] = MappingProxyType(
    {"emergency": "an emergency", "free": "a free", "shared_cost": "a grey (shared-cost)"}
)
"""Never an ATP on emergency, free or grey (shared-cost) numbers."""


@dataclass(frozen=True, slots=True)
class MessageEntry:
    """A message of the library with its file resolved and its duration known."""

    id: str
    path: Path
    language: str
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class NumberEntry:
    """A service number: normalized ``key`` (E.164 or short), display form, settings."""

    key: str
    national: str
    service: ServiceNumber

    @property
    def timezone(self) -> str:
        """The site's time zone (naive times are read in it)."""
        return self.service.timezone or DEFAULT_TIMEZONE


@dataclass(frozen=True, slots=True)
class Library:
    """Every routing object of a configuration directory: immutable, shared by sessions."""

    directory: Path
    numbers: Mapping[str, NumberEntry]
    programs: Mapping[str, Program]
    messages: Mapping[str, MessageEntry]
    calendars: Mapping[str, Calendar]
    caller_lists: Mapping[str, CallerList]
    contracts: Mapping[str, Contract]
    main_contract: Mapping[str, str]
    """contract id (main or secondary) -> its main contract id."""
    digest: str
    """A hash of the files' contents: the library's version."""
    _calendar_cache: dict[tuple[str, str | None, str | None], Calendar] = field(
        default_factory=dict, compare=False, repr=False
    )
    # Dialled text -> its number key (``_number_key``): every call asks for its
    # called number, most often one already seen. Bounded: the text comes from
    # the network.
    _key_cache: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def load(cls, routing_dir: Path) -> Library:
        """:func:`load_library` (raises ``ConfigErrors`` with every error)."""
        return load_library(routing_dir)

    def find_number(self, dialled: str) -> NumberEntry | None:
        """The service number for ``dialled`` in any written form (national, E.164, short)."""
        entry = self.numbers.get(dialled)
        if entry is not None:
            return entry
        keys = self._key_cache
        if dialled in keys:
            key = keys[dialled]
        else:
            key = _number_key(dialled)
            if len(keys) >= _KEY_CACHE_MAX:
                keys.clear()
            keys[dialled] = key
        return self.numbers.get(key) if key is not None else None

    def program_for(self, entry: NumberEntry) -> tuple[str, Program, str | None]:
        """(program name, program, active backup plan or None) of a number."""
        service = entry.service
        if service.active_backup is not None:
            name = service.backup_plans[service.active_backup]
            return name, self.programs[name], service.active_backup
        return service.program, self.programs[service.program], None

    def calendar_for(self, name: str, entry: NumberEntry) -> Calendar:
        """Calendar ``name`` in the number's time zone and holiday zone, when it sets them.

        One shared calendar thus serves sites in Paris, Metz (``FR-57``) or
        Saint-Denis de La Réunion (``Indian/Reunion``, ``FR-974``).
        """
        calendar = self.calendars[name]
        service = entry.service
        if service.timezone is None and service.holidays is None:
            return calendar
        key = (name, service.timezone, service.holidays)
        cached = self._calendar_cache.get(key)
        if cached is None:
            cached = calendar.for_site(
                timezone=service.timezone,
                holidays=service.holidays if service.holidays is not None else "",
            )
            self._calendar_cache[key] = cached
        return cached

    def with_active_backup(self, number: str, plan: str | None) -> Library:
        """A new library where ``number``'s plan de secours ``plan`` is on (None: off).

        Raises ``KeyError`` for an unknown number or plan.
        """
        entry = self.find_number(number)
        if entry is None:
            raise KeyError(number)
        if plan is not None and plan not in entry.service.backup_plans:
            raise KeyError(plan)
        service = entry.service.model_copy(update={"active_backup": plan})
        numbers = dict(self.numbers)
        numbers[entry.key] = replace(entry, service=service)
        return replace(
            self,
            numbers=MappingProxyType(numbers),
            digest=f"{self.digest}+{entry.key}:{plan}",
            _calendar_cache={},
        )


class LibraryHolder:
    """The running library: one reference, swapped whole on reload.

    A session takes ``holder.current`` when the call arrives and keeps it; a
    reload that fails leaves ``current`` untouched.
    """

    def __init__(self, library: Library) -> None:
        self._library = library

    @property
    def current(self) -> Library:
        return self._library

    def swap(self, library: Library) -> Library:
        """Install ``library``; return the previous one."""
        previous, self._library = self._library, library
        return previous

    def reload(self, routing_dir: Path) -> list[ConfigError]:
        """Load ``routing_dir``; swap only if it loads. Returns the errors (empty: swapped)."""
        try:
            library = load_library(routing_dir)
        except ConfigErrors as exc:
            return exc.errors
        self.swap(library)
        return []


# --- loading ---------------------------------------------------------------------


_KEY_CACHE_MAX = 4096


def _number_key(text: str) -> str | None:
    from routing.numbering import normalize

    parsed = normalize(text)
    if parsed.kind in ("e164", "short"):
        return str(parsed.value)
    return None


def _national(key: str) -> str:
    from routing.numbering import to_national

    return to_national(key) if key.startswith("+") else key


@dataclass(slots=True)
class _Origin:
    doc: YamlDocument
    loc: Loc


@dataclass(slots=True)
class _Merge:
    errors: list[ConfigError] = field(default_factory=list)
    numbers: dict[str, NumberEntry] = field(default_factory=dict)
    programs: dict[str, Program] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    calendars: dict[str, Calendar] = field(default_factory=dict)
    caller_lists: dict[str, CallerList] = field(default_factory=dict)
    contracts: dict[str, Contract] = field(default_factory=dict)
    main_contract: dict[str, str] = field(default_factory=dict)
    origin: dict[tuple[str, str], _Origin] = field(default_factory=dict)
    declared: set[tuple[str, str]] = field(default_factory=set)
    """(section, name) declared in files that failed validation: no "unknown" errors."""

    def error(self, origin: _Origin, suffix: Loc, message: str) -> None:
        self.errors.append(origin.doc.error((*origin.loc, *suffix), message))

    def where(self, section: str, name: str) -> str:
        o = self.origin[(section, name)]
        line, _ = o.doc.position(o.loc)
        return f"{o.doc.path}:{line}"


def load_library(routing_dir: Path) -> Library:
    """Load every ``*.yaml`` of ``routing_dir``; raise ``ConfigErrors`` with all errors.

    Message files are looked up relative to ``routing_dir.parent / "messages"``
    unless absolute.
    """
    routing_dir = Path(routing_dir)
    if not routing_dir.is_dir():
        raise ConfigErrors([ConfigError(str(routing_dir), 1, 1, "", "not a directory")])
    files = sorted([*routing_dir.glob("*.yaml"), *routing_dir.glob("*.yml")])
    merge = _Merge()
    digest = hashlib.sha256()
    parsed: list[tuple[YamlDocument, RoutingFile]] = []
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
        try:
            doc = load_yaml(path)
        except ConfigErrors as exc:
            merge.errors.extend(exc.errors)
            continue
        bad_keys = _check_number_keys(doc)
        if bad_keys:
            merge.errors.extend(bad_keys)
            continue
        try:
            model = validate(doc, RoutingFile)
        except ConfigErrors as exc:
            merge.errors.extend(exc.errors)
            merge.declared.update(_declared_names(doc))
            continue
        parsed.append((doc, model))

    for doc, model in parsed:
        _merge_file(merge, doc, model)
    messages = _resolve_messages(merge, routing_dir.parent / "messages")
    _check_references(merge, messages)
    _check_cycles(merge)
    if merge.errors:
        raise ConfigErrors(merge.errors)
    return Library(
        directory=routing_dir,
        numbers=MappingProxyType(merge.numbers),
        programs=MappingProxyType(merge.programs),
        messages=MappingProxyType(messages),
        calendars=MappingProxyType(merge.calendars),
        caller_lists=MappingProxyType(merge.caller_lists),
        contracts=MappingProxyType(merge.contracts),
        main_contract=MappingProxyType(merge.main_contract),
        digest=digest.hexdigest()[:16],
    )


def _check_number_keys(doc: YamlDocument) -> list[ConfigError]:
    numbers = doc.data.get("numbers") if isinstance(doc.data, dict) else None
    if not isinstance(numbers, dict):
        return []
    errors = []
    for key in numbers:
        if not isinstance(key, str):
            line, col = doc.position(("numbers", key))
            errors.append(
                ConfigError(
                    doc.path,
                    line,
                    col,
                    "numbers",
                    f"write service numbers in quotes: YAML reads this one as the integer {key}",
                )
            )
    return errors


_SECTIONS = ("programs", "messages", "calendars", "caller_lists")


def _declared_names(doc: YamlDocument) -> set[tuple[str, str]]:
    """Names a file declares, read from its raw YAML (used when it fails validation)."""
    out: set[tuple[str, str]] = set()
    if not isinstance(doc.data, dict):
        return out
    for section in (*_SECTIONS, "contracts"):
        table = doc.data.get(section)
        if isinstance(table, dict):
            out.update((section, str(name)) for name in table)
            if section == "contracts":
                for value in table.values():
                    secondary = value.get("secondary") if isinstance(value, dict) else None
                    if isinstance(secondary, dict):
                        out.update(("contracts", str(sub)) for sub in secondary)
    return out


def _merge_file(merge: _Merge, doc: YamlDocument, model: RoutingFile) -> None:
    for section in _SECTIONS:
        target: dict[str, Any] = getattr(merge, section)
        for name, value in getattr(model, section).items():
            origin = _Origin(doc, (section, name))
            if name in target:
                merge.error(
                    origin,
                    (),
                    f"{section[:-1]} {name!r} already defined at {merge.where(section, name)}",
                )
                continue
            target[name] = value
            merge.origin[(section, name)] = origin
    for name, contract in model.contracts.items():
        ids = [(name, ("contracts", name))] + [
            (sub, ("contracts", name, "secondary", sub)) for sub in contract.secondary
        ]
        for cid, loc in ids:
            origin = _Origin(doc, loc)
            if cid in merge.main_contract:
                merge.error(
                    origin,
                    (),
                    f"contract {cid!r} already defined at {merge.where('contracts', cid)}",
                )
                continue
            merge.main_contract[cid] = name
            merge.origin[("contracts", cid)] = origin
        merge.contracts.setdefault(name, contract)
    for text, service in model.numbers.items():
        origin = _Origin(doc, ("numbers", text))
        key = _number_key(text)
        if key is None:
            merge.error(origin, (), f"not a service number: {text!r}")
            continue
        if key in merge.numbers:
            merge.error(
                origin, (), f"number {key} already defined at {merge.where('numbers', key)}"
            )
            continue
        merge.numbers[key] = NumberEntry(key, _national(key), service)
        merge.origin[("numbers", key)] = origin


class WavError(ValueError):
    """A file that is not a RIFF/WAVE file whose length can be known."""


_WAV_HEAD = 12  # "RIFF" <size> "WAVE"
_WAV_READ_LIMIT = 1 << 20  # header chunks are searched in the first MiB


def wav_seconds(path: Path) -> float:
    """How long a WAV file plays, from its header chunks alone.

    Any encoding the announcement library decodes (PCM, float, A-law, µ-law,
    WAVE_FORMAT_EXTENSIBLE, or compressed formats with a ``fact`` chunk), where the
    standard ``wave`` module reads integer PCM only. Length = samples in ``fact``
    / sample rate when there is one, else ``data`` bytes / average bytes per second.
    """
    with path.open("rb") as f:
        head = f.read(_WAV_READ_LIMIT)
    if len(head) < _WAV_HEAD or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WavError("no RIFF/WAVE header")
    rate: int = 0
    byte_rate: int = 0
    samples: int | None = None
    at = _WAV_HEAD
    while at + 8 <= len(head):
        kind = head[at : at + 4]
        size: int = struct.unpack_from("<I", head, at + 4)[0]
        body = at + 8
        if kind == b"fmt ":
            if size < 16 or body + 16 > len(head):
                raise WavError("truncated fmt chunk")
            _fmt, _channels, rate, byte_rate = struct.unpack_from("<HHII", head, body)
        elif kind == b"fact" and size >= 4 and body + 4 <= len(head):
            (samples,) = struct.unpack_from("<I", head, body)
        elif kind == b"data":
            if not rate or not byte_rate:
                raise WavError("data chunk before a valid fmt chunk")
            if samples is not None and samples > 0:
                return samples / rate
            data = min(size, path.stat().st_size - body)  # streamed files say 0xFFFFFFFF
            return data / byte_rate
        at = body + size + (size & 1)  # chunks are padded to even sizes
    raise WavError("no data chunk")


def _resolve_messages(merge: _Merge, messages_dir: Path) -> dict[str, MessageEntry]:
    out: dict[str, MessageEntry] = {}
    for name, message in merge.messages.items():
        origin = merge.origin[("messages", name)]
        path = Path(message.file)
        if not path.is_absolute():
            path = messages_dir / path
        if not path.is_file():
            merge.error(origin, ("file",), f"file not found: {path}")
            continue
        duration = message.duration_s
        if path.suffix.lower() == ".wav":
            try:
                measured = wav_seconds(path)
            except (WavError, OSError) as exc:
                merge.error(origin, ("file",), f"not a readable WAV file: {exc}")
                continue
            if duration is not None and abs(duration - measured) > DURATION_TOLERANCE_S:
                merge.error(
                    origin,
                    ("duration_s",),
                    f"duration_s is {duration:g} s but {path.name} lasts {measured:.1f} s",
                )
                continue
            duration = measured
        out[name] = MessageEntry(name, path, message.language, duration)
    return out


# --- walking programs ------------------------------------------------------------


def walk(steps: list[Any], loc: Loc) -> Iterator[tuple[Any, Loc]]:
    """Every step under ``steps`` (depth first) with its location."""
    for i, step in enumerate(steps):
        here = (*loc, i)
        yield step, here
        for block, block_loc in _sub_blocks(step, here):
            yield from walk(block, block_loc)


def blocks(steps: list[Any], loc: Loc) -> Iterator[tuple[list[Any], Loc]]:
    """Every block (list of steps) under and including ``steps``."""
    yield steps, loc
    for i, step in enumerate(steps):
        for block, block_loc in _sub_blocks(step, (*loc, i)):
            yield from blocks(block, block_loc)


def _sub_blocks(step: Any, here: Loc) -> Iterator[tuple[list[Any], Loc]]:
    if isinstance(step, CalendarStep):
        for period, block in step.branches.items():
            yield block, (*here, "branches", period)
    elif isinstance(step, CallersStep):
        for j, branch in enumerate(step.branches):
            yield branch.steps, (*here, "branches", j, "steps")
        if step.others is not None:
            yield step.others, (*here, "others")
    elif isinstance(step, SplitStep):
        for j, split in enumerate(step.branches):
            yield split.steps, (*here, "branches", j, "steps")


def overflow_tables(program: Program) -> Iterator[tuple[Overflow, Loc]]:
    """Every overflow table of a program (its own, and its steps'), with locations."""
    yield program.overflow, ("overflow",)
    for step, loc in walk(program.steps, ("steps",)):
        table = getattr(step, "overflow", None)
        if table:
            yield table, (*loc, "overflow")


def program_edges(program: Program) -> Iterator[tuple[str, Loc]]:
    """Programs this program can continue in (goto, overflow), with locations."""
    for step, loc in walk(program.steps, ("steps",)):
        if isinstance(step, GotoStep):
            yield step.program, (*loc, "program")
    for table, loc in overflow_tables(program):
        for cause, target in table.items():
            if target.program is not None:
                yield target.program, (*loc, cause.value, "program")


# --- library checks --------------------------------------------------------------


def _check_references(merge: _Merge, messages: Mapping[str, MessageEntry]) -> None:
    def need(
        kind: str, table: Mapping[str, object], name: str | None, origin: _Origin, loc: Loc
    ) -> None:
        section = _SECTION_OF[kind]
        if name is not None and name not in table and (section, name) not in merge.declared:
            merge.error(origin, loc, f"unknown {kind} {name!r}")

    def need_message(name: str | None, origin: _Origin, loc: Loc) -> None:
        need("message", merge.messages, name, origin, loc)

    def check_overflow(table: Overflow, origin: _Origin, loc: Loc) -> None:
        for cause, target in table.items():
            need_message(target.message, origin, (*loc, cause.value, "message"))
            need("program", merge.programs, target.program, origin, (*loc, cause.value, "program"))

    pools: dict[str, tuple[int, str]] = {}
    for name, program in merge.programs.items():
        origin = merge.origin[("programs", name)]
        for table, loc in overflow_tables(program):
            check_overflow(table, origin, loc)
        for block, loc in blocks(program.steps, ("steps",)):
            for i, step in enumerate(block[:-1]):
                if is_terminal(step):
                    merge.error(
                        origin,
                        (*loc, i + 1),
                        f"unreachable step: {format_loc((*loc, i))} ({step.type}) never goes on",
                    )
                    break
        for step, loc in walk(program.steps, ("steps",)):
            if isinstance(step, PlayStep | HangupStep):
                need_message(step.message, origin, (*loc, "message"))
            elif isinstance(step, VoicemailStep):
                need_message(step.greeting, origin, (*loc, "greeting"))
            elif isinstance(step, GotoStep):
                need("program", merge.programs, step.program, origin, (*loc, "program"))
            elif isinstance(step, CalendarStep):
                calendar = merge.calendars.get(step.calendar)
                if calendar is None:
                    need("calendar", merge.calendars, step.calendar, origin, (*loc, "calendar"))
                else:
                    periods = calendar.periods
                    for period in step.branches:
                        if period not in periods:
                            known = ", ".join(sorted(periods)) or "none"
                            merge.error(
                                origin,
                                (*loc, "branches", period),
                                f"calendar {step.calendar!r} has no period {period!r} "
                                f"(periods: {known})",
                            )
            elif isinstance(step, CallersStep):
                for j, branch in enumerate(step.branches):
                    need(
                        "caller list",
                        merge.caller_lists,
                        branch.in_list,
                        origin,
                        (*loc, "branches", j, "list"),
                    )
            elif isinstance(step, LimitStep) and step.pool is not None:
                seen = pools.get(step.pool)
                here = f"{origin.doc.path}:{origin.doc.position((*origin.loc, *loc))[0]}"
                if seen is None:
                    pools[step.pool] = (step.max, here)
                elif seen[0] != step.max:
                    merge.error(
                        origin,
                        (*loc, "max"),
                        f"pool {step.pool!r} has max {seen[0]} at {seen[1]}",
                    )

    for key, entry in merge.numbers.items():
        origin = merge.origin[("numbers", key)]
        service = entry.service
        need("program", merge.programs, service.program, origin, ("program",))
        for plan, plan_program in service.backup_plans.items():
            need("program", merge.programs, plan_program, origin, ("backup_plans", plan))
        if service.active_backup is not None and service.active_backup not in service.backup_plans:
            known = ", ".join(sorted(service.backup_plans)) or "none"
            merge.error(
                origin,
                ("active_backup",),
                f"unknown backup plan {service.active_backup!r} (backup_plans: {known})",
            )
        need("contract", merge.main_contract, service.contract, origin, ("contract",))
        check_overflow(service.overflow, origin, ("overflow",))
        if service.limit_pool is not None:
            seen = pools.get(service.limit_pool)
            assert service.limit is not None
            if seen is not None and seen[0] != service.limit:
                merge.error(
                    origin,
                    ("limit",),
                    f"pool {service.limit_pool!r} has max {seen[0]} at {seen[1]}",
                )
        if service.atp is not None:
            _check_atp(merge, entry, origin, messages)


_SECTION_OF = {
    "program": "programs",
    "message": "messages",
    "calendar": "calendars",
    "caller list": "caller_lists",
    "contract": "contracts",
}


def _check_atp(
    merge: _Merge, entry: NumberEntry, origin: _Origin, messages: Mapping[str, MessageEntry]
) -> None:
    from routing.numbering import destination_class

    assert entry.service.atp is not None
    klass = destination_class(entry.key).klass
    if klass in NO_ATP_CLASSES:
        merge.error(
            origin,
            ("atp",),
            f"no ATP on {NO_ATP_CLASSES[klass]} number (never for emergency, free or grey numbers)",
        )
        return
    name = entry.service.atp.message
    if name not in merge.messages:
        if ("messages", name) not in merge.declared:
            merge.error(origin, ("atp", "message"), f"unknown message {name!r}")
        return
    message = messages.get(name)
    if message is None or message.duration_s is None:
        if message is not None:
            merge.error(
                origin, ("atp", "message"), f"ATP message {name!r}: give its duration_s (≥ 10 s)"
            )
        return
    if message.duration_s < ATP_MIN_SECONDS:
        merge.error(
            origin,
            ("atp", "message"),
            f"ATP message {name!r} lasts {message.duration_s:.1f} s: at least 10 s",
        )


def _check_cycles(merge: _Merge) -> None:
    """Refuse any cycle of programs through goto and overflow to a program."""
    edges: dict[str, list[tuple[str, Loc]]] = {
        name: [(t, loc) for t, loc in program_edges(program) if t in merge.programs]
        for name, program in merge.programs.items()
    }
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(edges, white)
    reported: set[frozenset[str]] = set()

    for root in sorted(edges):
        if color[root] != white:
            continue
        # Iterative DFS: (node, index of next edge); path for the message.
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        color[root] = grey
        while stack:
            node, i = stack[-1]
            if i >= len(edges[node]):
                stack.pop()
                path.pop()
                color[node] = black
                continue
            stack[-1] = (node, i + 1)
            target, loc = edges[node][i]
            if color[target] == grey:
                cycle = [*path[path.index(target) :], target]
                members = frozenset(cycle)
                if members not in reported:
                    reported.add(members)
                    origin = merge.origin[("programs", node)]
                    merge.error(
                        origin,
                        loc,
                        "program cycle (goto/overflow): " + " → ".join(cycle),
                    )
            elif color[target] == white:
                color[target] = grey
                stack.append((target, 0))
                path.append(target)
