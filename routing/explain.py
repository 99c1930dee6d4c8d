"""``aiguilleur explain``: run a routing session on paper and show why each step happens.

Pure: the session is fed synthetic outcomes instead of a real call. The
outcome words are taken in order, each by the first action it can answer;
an action whose next word does not fit it gets its default:

=============  =====================================  ==================
action         words                                  default
=============  =====================================  ==================
AcquireLimit   ``acquired``, ``limit`` (= ``full``)   ``acquired``
Play           ``played``, ``skipped``                ``played``
Dial           ``answered``, ``busy``, ``no_answer``,  ``answered``
               ``unreachable``, ``rejected``
any            ``hangup`` (the caller hangs up)
=============  =====================================  ==================

So ``--outcomes busy,no_answer`` on the call centre means: limiter acquired,
401 busy, 402 no answer, 403 answers. Words left over are reported.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from routing.callers import CallerInfo
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
    RoutingSession,
    RunMenu,
    Voicemail,
    is_terminal,
)
from routing.gnr import Cursors
from routing.loader import Library
from routing.overflow import CAUSE_LABELS
from routing.program import FailCause

_FAIL_WORDS = {c.value: c for c in FailCause}
_WORDS_FOR: dict[type[Action], frozenset[str]] = {
    AcquireLimit: frozenset({"acquired", "limit", "full"}),
    Play: frozenset({"played", "skipped"}),
    Dial: frozenset({"answered", *_FAIL_WORDS}),
}
WORDS = frozenset({"hangup"}).union(*_WORDS_FOR.values())


def parse_outcomes(text: str) -> list[str]:
    """``"busy, no_answer"`` -> ``["busy", "no_answer"]``; unknown words raise ValueError."""
    words = [w.strip().lower().replace("-", "_") for w in text.split(",") if w.strip()]
    for word in words:
        if word not in WORDS:
            known = ", ".join(sorted(WORDS))
            raise ValueError(f"unknown outcome {word!r} (known: {known})")
    return words


def _outcome(action: Action, word: str) -> Outcome:
    if word == "hangup":
        return Closed()
    if isinstance(action, AcquireLimit):
        return LimitAcquired() if word == "acquired" else LimitFull()
    if isinstance(action, Play):
        return PlayDone(skipped=word == "skipped")
    assert isinstance(action, Dial)
    target = action.targets[0].number if len(action.targets) == 1 else None
    if word == "answered":
        return Answered(action.targets[0].number)
    return Failed(_FAIL_WORDS[word], target)


def _default(action: Action) -> str:
    if isinstance(action, AcquireLimit):
        return "acquired"
    if isinstance(action, Play):
        return "played"
    return "answered"


@dataclass(frozen=True, slots=True)
class Step:
    """One action of the session, the outcome word fed back, and whether it was given."""

    action: Action
    outcome: str | None
    given: bool


@dataclass(frozen=True, slots=True)
class Explanation:
    number: str
    national: str
    program: str
    backup_plan: str | None
    contract: str | None
    main_contract: str | None
    at: str
    timezone: str
    caller: CallerInfo
    steps: tuple[Step, ...]
    unused: tuple[str, ...]
    cursors: Cursors = field(default_factory=Cursors)

    @property
    def result(self) -> Action:
        return self.steps[-1].action


def explain(
    library: Library,
    ctx: RoutingContext,
    outcomes: Sequence[str] = (),
    *,
    rng: random.Random | None = None,
    cursors: Cursors | None = None,
) -> Explanation:
    """Run a session for ``ctx`` feeding ``outcomes`` (words, see the module doc)."""
    session = RoutingSession(
        library, ctx, rng=rng if rng is not None else random.Random(0), cursors=cursors
    )
    words = list(outcomes)
    steps: list[Step] = []
    action = session.start()
    while not is_terminal(action):
        fits = _WORDS_FOR[type(action)] | {"hangup"}
        if words and words[0] in fits:
            word, given = words.pop(0), True
        else:
            word, given = _default(action), False
        steps.append(Step(action, word, given))
        action = session.resume(_outcome(action, word))
    steps.append(Step(action, None, False))
    entry = session.entry
    name, _, plan = library.program_for(entry)
    contract = entry.service.contract
    zone = ZoneInfo(entry.timezone)
    return Explanation(
        number=entry.key,
        national=entry.national,
        program=name,
        backup_plan=plan,
        contract=contract,
        main_contract=library.main_contract.get(contract) if contract else None,
        at=ctx.at.astimezone(zone).isoformat(),
        timezone=entry.timezone,
        caller=session.caller_info(),
        steps=tuple(steps),
        unused=tuple(words),
        cursors=session.cursors,
    )


# --- rendering -------------------------------------------------------------------

_OUTCOME_LABELS = {
    "acquired": "acquis",
    "limit": "plein",
    "full": "plein",
    "played": "joué",
    "skipped": "interrompu (#)",
    "answered": "décroché",
    "hangup": "l'appelant raccroche",
    **{k: v for k, v in CAUSE_LABELS.items() if k in _FAIL_WORDS},
}


def describe_action(action: Action) -> str:
    """One line for an action, in the administrator's words."""
    if isinstance(action, AcquireLimit):
        return f"limiteur {action.key} (max {action.max})"
    if isinstance(action, Play):
        early = ", avant décroché" if action.early else ""
        skip = f", interruptible par {action.skippable_with}" if action.skippable_with else ""
        return f"message « {action.message} »{early}{skip}"
    if isinstance(action, Dial):
        targets = " + ".join(
            f"{t.number}@{t.domain}" if t.domain else t.number for t in action.targets
        )
        ring = "/".join(sorted({f"{t.ring_s} s" for t in action.targets}))
        where = f"{action.strategy.value}, tour {action.round}/{action.rounds}"
        return f"appel {targets} ({ring}) [{where}]"
    if isinstance(action, Reject):
        message = f" après le message « {action.message} »" if action.message else ""
        return f"fin : appel libéré ({action.cause.value}){message}"
    if isinstance(action, Done):
        if action.reason == "answered":
            return f"fin : décroché par {action.target}"
        return "fin : l'appelant a raccroché"
    if isinstance(action, Voicemail):
        return f"fin : messagerie {action.box}"
    assert isinstance(action, RunMenu)
    return f"fin : menu « {action.menu} »"


def render_text(expl: Explanation) -> str:
    caller = expl.caller
    who = caller.national or (str(caller.number) if caller.number else "masqué")
    lines = [
        f"numéro {expl.national} ({expl.number}) → programme « {expl.program} »"
        + (f" (plan de secours « {expl.backup_plan} »)" if expl.backup_plan else "")
        + (f" · contrat {expl.contract}" if expl.contract else "")
        + (
            f" (principal {expl.main_contract})"
            if expl.main_contract and expl.main_contract != expl.contract
            else ""
        ),
        f"arrivée {expl.at} ({expl.timezone}) · appelant {who} ({caller.nature})",
    ]
    for i, step in enumerate(expl.steps, 1):
        line = f"{i:2d}. {describe_action(step.action)}"
        if step.outcome is not None:
            label = _OUTCOME_LABELS.get(step.outcome, step.outcome)
            line += f" ← {label}" + ("" if step.given else " (par défaut)")
        lines.append(line)
        lines.append("    parce que : " + " › ".join(step.action.because))
    if expl.unused:
        lines.append(f"résultats non utilisés : {', '.join(expl.unused)}")
    return "\n".join(lines) + "\n"


def action_dict(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"action": type(action).__name__}
    if isinstance(action, AcquireLimit):
        out.update(key=action.key, max=action.max)
    elif isinstance(action, Play):
        out.update(message=action.message, early=action.early, skippable_with=action.skippable_with)
    elif isinstance(action, Dial):
        out.update(
            targets=[
                {"number": t.number, "ring_s": t.ring_s, "domain": t.domain} for t in action.targets
            ],
            strategy=action.strategy.value,
            round=action.round,
            rounds=action.rounds,
        )
    elif isinstance(action, Reject):
        out.update(cause=action.cause.value, message=action.message)
    elif isinstance(action, Done):
        out.update(reason=action.reason, target=action.target)
    elif isinstance(action, Voicemail):
        out.update(box=action.box, greeting=action.greeting)
    elif isinstance(action, RunMenu):
        out.update(menu=action.menu)
    out["because"] = list(action.because)
    return out


def to_dict(expl: Explanation) -> dict[str, Any]:
    caller = expl.caller
    return {
        "number": expl.number,
        "national": expl.national,
        "program": expl.program,
        "backup_plan": expl.backup_plan,
        "contract": expl.contract,
        "main_contract": expl.main_contract,
        "at": expl.at,
        "timezone": expl.timezone,
        "caller": {
            "nature": caller.nature,
            "number": str(caller.number) if caller.number is not None else None,
            "national": caller.national,
            "country": caller.country,
        },
        "steps": [
            {**action_dict(s.action), "outcome": s.outcome, "given": s.given} for s in expl.steps
        ],
        "result": action_dict(expl.result),
        "unused_outcomes": list(expl.unused),
    }


def render_json(expl: Explanation) -> str:
    return json.dumps(to_dict(expl), ensure_ascii=False, indent=2) + "\n"
