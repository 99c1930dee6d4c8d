"""The routing engine, step by step: program + context + outcomes -> actions and why.

Each case gives a program (YAML, the ``p`` program of a small library), the
call's context, the outcomes fed back in order, and the expected actions as
``(describe_action(action), action.because[-1])`` pairs: what the engine asks
for and the last link of its explanation.
"""

from __future__ import annotations

import random
import struct
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

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
    OutcomeMismatch,
    Play,
    PlayDone,
    Reject,
    RoutingContext,
    RoutingError,
    RoutingSession,
    UnknownNumber,
    is_terminal,
)
from routing.explain import describe_action
from routing.gnr import Cursors
from routing.loader import Library, load_library
from routing.program import FailCause

PARIS = ZoneInfo("Europe/Paris")
TUESDAY_10 = datetime(2026, 5, 12, 10, 0, tzinfo=PARIS)
TUESDAY_13 = datetime(2026, 5, 12, 13, 0, tzinfo=PARIS)
SATURDAY_10 = datetime(2026, 5, 16, 10, 0, tzinfo=PARIS)
SUNDAY_10 = datetime(2026, 5, 17, 10, 0, tzinfo=PARIS)

BUSY = Failed(FailCause.BUSY)
NO_ANSWER = Failed(FailCause.NO_ANSWER)
UNREACHABLE = Failed(FailCause.UNREACHABLE)
REJECTED = Failed(FailCause.REJECTED)

COMMON = """
messages:
  accueil: {file: court.wav}
  fermeture: {file: court.wav}
  reseau: {file: court.wav}
  attente: {file: court.wav}
  atp: {file: atp.wav}
calendars:
  horaires:
    periods:
      ouvert:
        - days: [mon, tue, wed, thu, fri]
          ranges: ["08:00-12:00", "14:00-19:00"]
      samedi:
        - days: [sat]
          ranges: ["09:00-12:00"]
caller_lists:
  vip:
    numbers: ["0611111111"]
    prefixes: ["+4420"]
programs:
  autre:
    steps:
      - {type: dial, number: "700"}
  secours:
    steps:
      - {type: dial, number: "403"}
numbers:
  "0891000000":
    program: p
    domain: pbx.test
    backup_plans: {panne: secours}
"""


def write_wav(path: Path, seconds: float) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack("<h", 0) * int(8000 * seconds))


def make_library(root: Path, program: str, extra: str = "") -> Library:
    """A library with the COMMON objects, program ``p`` (YAML body) and ``extra`` YAML."""
    (root / "routing").mkdir(parents=True, exist_ok=True)
    (root / "messages").mkdir(exist_ok=True)
    write_wav(root / "messages" / "court.wav", 0.1)
    write_wav(root / "messages" / "atp.wav", 10.5)
    indented = "\n".join("    " + line for line in program.strip().splitlines())
    text = COMMON.replace("programs:\n", f"programs:\n  p:\n{indented}\n", 1)
    (root / "routing" / "test.yaml").write_text(text + extra, encoding="utf-8")
    return load_library(root / "routing")


@dataclass
class Run:
    actions: list[Action] = field(default_factory=list)
    session: RoutingSession | None = None


def drive(
    library: Library,
    ctx: RoutingContext,
    outcomes: Sequence[Outcome],
    *,
    seed: int = 0,
    cursors: Cursors | None = None,
) -> Run:
    """Feed ``outcomes`` in order; when they run out: acquired, played, answered."""
    session = RoutingSession(library, ctx, rng=random.Random(seed), cursors=cursors)
    queue = list(outcomes)
    run = Run(session=session)
    action = session.start()
    run.actions.append(action)
    while not is_terminal(action):
        if queue:
            outcome = queue.pop(0)
        elif isinstance(action, AcquireLimit):
            outcome = LimitAcquired()
        elif isinstance(action, Play):
            outcome = PlayDone()
        else:
            outcome = Answered()
        action = session.resume(outcome)
        run.actions.append(action)
    assert not queue, f"outcomes left over: {queue}"
    return run


def ctx(
    at: datetime = TUESDAY_10, caller: str | None = "0145454545", **kw: object
) -> RoutingContext:
    return RoutingContext("0891000000", at, caller=caller, **kw)  # type: ignore[arg-type]


def summary(actions: Sequence[Action]) -> list[tuple[str, str]]:
    return [(describe_action(a), a.because[-1]) for a in actions]


GNR_3 = """
steps:
  - type: gnr
    targets: ["401", "402", "403"]
    ring_s: 15
    rounds: {rounds}
    strategy: {strategy}
overflow:
  busy: {{number: "601"}}
  no_answer: {{message: attente}}
"""


@dataclass(frozen=True)
class Case:
    id: str
    program: str
    outcomes: tuple[Outcome, ...]
    expected: tuple[tuple[str, str], ...]
    ctx: RoutingContext = field(default_factory=ctx)
    extra: str = ""
    seed: int = 0


CASES = [
    Case(
        "limit-acquired-then-dial",
        "steps:\n  - {type: limit, max: 2}\n  - {type: dial, number: '401'}",
        (),
        (
            ("limiteur number:+33891000000 (max 2)", "limiteur : 2 appels simultanés au plus"),
            ("appel 401@pbx.test (20 s) [sequential, tour 1/1]", "appel 401 (20 s)"),
            ("fin : décroché par 401", "appel 401 (20 s) → décroché"),
        ),
    ),
    Case(
        "limit-full-overflows-to-network-message",
        "steps:\n  - {type: limit, max: 2, pool: agence}\n  - {type: dial, number: '401'}\n"
        "overflow:\n  limit: {message: reseau}",
        (LimitFull(),),
        (
            ("limiteur pool:agence (max 2)", "limiteur « agence » : 2 appels simultanés au plus"),
            (
                "fin : appel libéré (limit) après le message « reseau »",
                "débordement limit (programme « p ») → message « reseau » puis raccroché",
            ),
        ),
    ),
    Case(
        "limit-full-without-overflow-releases",
        "steps:\n  - {type: limit, max: 1}\n  - {type: dial, number: '401'}",
        (LimitFull(),),
        (
            ("limiteur number:+33891000000 (max 1)", "limiteur : 1 appel simultané au plus"),
            ("fin : appel libéré (limit)", "débordement limit : aucun → appel libéré"),
        ),
    ),
    Case(
        "play-then-continue",
        "steps:\n  - {type: play, message: accueil, early: true, skippable_with: '#'}\n"
        "  - {type: dial, number: '401'}",
        (PlayDone(skipped=True),),
        (
            ("message « accueil », avant décroché, interruptible par #", "message « accueil »"),
            ("appel 401@pbx.test (20 s) [sequential, tour 1/1]", "appel 401 (20 s)"),
            ("fin : décroché par 401", "appel 401 (20 s) → décroché"),
        ),
    ),
    Case(
        "play-then-hangup",
        "steps:\n  - {type: play, message: fermeture, then: hangup}",
        (),
        (
            ("message « fermeture »", "message « fermeture »"),
            ("fin : appel libéré (normal)", "message « fermeture » puis raccroché"),
        ),
    ),
    Case(
        "calendar-open-period",
        "steps:\n  - type: calendar\n    calendar: horaires\n    branches:\n"
        "      ouvert: [{type: dial, number: '401'}]\n      samedi: [{type: dial, number: '402'}]",
        (),
        (
            (
                "appel 401@pbx.test (20 s) [sequential, tour 1/1]",
                "appel 401 (20 s)",
            ),
            ("fin : décroché par 401", "appel 401 (20 s) → décroché"),
        ),
    ),
    Case(
        "calendar-saturday-period",
        "steps:\n  - type: calendar\n    calendar: horaires\n    branches:\n"
        "      ouvert: [{type: dial, number: '401'}]\n      samedi: [{type: dial, number: '402'}]",
        (NO_ANSWER,),
        (
            ("appel 402@pbx.test (20 s) [sequential, tour 1/1]", "appel 402 (20 s)"),
            ("fin : appel libéré (no_answer)", "débordement no_answer : aucun → appel libéré"),
        ),
        ctx=ctx(SATURDAY_10),
    ),
    Case(
        "calendar-closed-overflows-on-step",
        "steps:\n  - type: calendar\n    calendar: horaires\n    branches:\n"
        "      ouvert: [{type: dial, number: '401'}]\n"
        "    overflow:\n      closed: {message: fermeture}",
        (),
        (
            (
                "fin : appel libéré (closed) après le message « fermeture »",
                "débordement closed (étape steps[0]) → message « fermeture » puis raccroché",
            ),
        ),
        ctx=ctx(SUNDAY_10),
    ),
    Case(
        "calendar-lunch-break-is-closed",
        "steps:\n  - type: calendar\n    calendar: horaires\n    branches:\n"
        "      ouvert: [{type: dial, number: '401'}]\n"
        "overflow:\n  closed: {message: fermeture}",
        (),
        (
            (
                "fin : appel libéré (closed) après le message « fermeture »",
                "débordement closed (programme « p ») → message « fermeture » puis raccroché",
            ),
        ),
        ctx=ctx(TUESDAY_13),
    ),
    Case(
        "calendar-period-without-branch-is-closed",
        "steps:\n  - type: calendar\n    calendar: horaires\n    branches:\n"
        "      ouvert: [{type: dial, number: '401'}]",
        (),
        (("fin : appel libéré (closed)", "débordement closed : aucun → appel libéré"),),
        ctx=ctx(SATURDAY_10),
    ),
    Case(
        "callers-mobile",
        "steps:\n  - type: callers\n    branches:\n"
        "      - {nature: [mobile], steps: [{type: dial, number: '402'}]}\n"
        "    others: [{type: dial, number: '401'}]",
        (),
        (
            ("appel 402@pbx.test (20 s) [sequential, tour 1/1]", "appel 402 (20 s)"),
            ("fin : décroché par 402", "appel 402 (20 s) → décroché"),
        ),
        ctx=ctx(caller="0612345678"),
    ),
    Case(
        "callers-list-before-nature",
        "steps:\n  - type: callers\n    branches:\n"
        "      - {list: vip, steps: [{type: dial, number: '409'}]}\n"
        "      - {nature: [mobile], steps: [{type: dial, number: '402'}]}\n",
        (),
        (
            ("appel 409@pbx.test (20 s) [sequential, tour 1/1]", "appel 409 (20 s)"),
            ("fin : décroché par 409", "appel 409 (20 s) → décroché"),
        ),
        ctx=ctx(caller="+33611111111"),
    ),
    Case(
        "callers-list-prefix-international",
        "steps:\n  - type: callers\n    branches:\n"
        "      - {list: vip, steps: [{type: dial, number: '409'}]}\n"
        "      - {nature: [international], country: [GB], steps: [{type: dial, number: '403'}]}",
        (),
        (
            ("appel 409@pbx.test (20 s) [sequential, tour 1/1]", "appel 409 (20 s)"),
            ("fin : décroché par 409", "appel 409 (20 s) → décroché"),
        ),
        ctx=ctx(caller="+442079460000"),
    ),
    Case(
        "callers-country",
        "steps:\n  - type: callers\n    branches:\n"
        "      - {nature: [international], country: [GB], steps: [{type: dial, number: '403'}]}",
        (),
        (
            ("appel 403@pbx.test (20 s) [sequential, tour 1/1]", "appel 403 (20 s)"),
            ("fin : décroché par 403", "appel 403 (20 s) → décroché"),
        ),
        ctx=ctx(caller="+447700900123"),
    ),
    Case(
        "callers-zone-and-prefix",
        "steps:\n  - type: callers\n    branches:\n"
        "      - {zone: ['02'], steps: [{type: dial, number: '402'}]}\n"
        "      - {prefixes: ['0145'], steps: [{type: dial, number: '401'}]}",
        (),
        (
            ("appel 401@pbx.test (20 s) [sequential, tour 1/1]", "appel 401 (20 s)"),
            ("fin : décroché par 401", "appel 401 (20 s) → décroché"),
        ),
    ),
    Case(
        "callers-anonymous-refused",
        "steps:\n  - type: callers\n    branches:\n"
        "      - nature: [anonymous]\n        steps: [{type: hangup, cause: refused, "
        "message: fermeture}]\n    others: [{type: dial, number: '401'}]",
        (),
        (
            (
                "fin : appel libéré (refused) après le message « fermeture »",
                "message « fermeture » puis raccroché (refused)",
            ),
        ),
        ctx=ctx(caller="anonymous"),
    ),
    Case(
        "callers-no-match-falls-through",
        "steps:\n  - type: callers\n    branches:\n"
        "      - {nature: [mobile], steps: [{type: dial, number: '402'}]}\n"
        "  - {type: dial, number: '401'}",
        (),
        (
            ("appel 401@pbx.test (20 s) [sequential, tour 1/1]", "appel 401 (20 s)"),
            ("fin : décroché par 401", "appel 401 (20 s) → décroché"),
        ),
    ),
    Case(
        "gnr-sequential-second-answers",
        GNR_3.format(rounds=1, strategy="sequential"),
        (BUSY, Answered("402")),
        (
            (
                "appel 401@pbx.test (15 s) [sequential, tour 1/1]",
                "GNR séquentiel (401, 402, 403) · tour 1/1 → 401 (15 s)",
            ),
            (
                "appel 402@pbx.test (15 s) [sequential, tour 1/1]",
                "GNR séquentiel (401, 402, 403) · tour 1/1 → 402 (15 s) après 401 occupé",
            ),
            (
                "fin : décroché par 402",
                "GNR séquentiel (401, 402, 403) · tour 1/1 → 402 (15 s) après 401 occupé"
                " → 402 a décroché",
            ),
        ),
    ),
    Case(
        "gnr-two-rounds-all-busy-overflow-number",
        GNR_3.format(rounds=2, strategy="sequential"),
        (BUSY,) * 6,
        (
            *(
                (
                    f"appel {t}@pbx.test (15 s) [sequential, tour {r}/2]",
                    f"GNR séquentiel (401, 402, 403) · tour {r}/2 → {t} (15 s)" + after,
                )
                for r in (1, 2)
                for t, after in (
                    ("401", ""),
                    ("402", " après 401 occupé"),
                    ("403", " après 401 occupé, 402 occupé"),
                )
            ),
            (
                "appel 601@pbx.test (20 s) [sequential, tour 1/1]",
                "débordement busy (programme « p ») → numéro 601 (20 s)",
            ),
            (
                "fin : décroché par 601",
                "débordement busy (programme « p ») → numéro 601 → décroché",
            ),
        ),
    ),
    Case(
        "gnr-mixed-causes-precedence-busy",
        GNR_3.format(rounds=1, strategy="sequential"),
        (NO_ANSWER, BUSY, NO_ANSWER, NO_ANSWER),
        (
            (
                "appel 401@pbx.test (15 s) [sequential, tour 1/1]",
                "GNR séquentiel (401, 402, 403) · tour 1/1 → 401 (15 s)",
            ),
            (
                "appel 402@pbx.test (15 s) [sequential, tour 1/1]",
                "GNR séquentiel (401, 402, 403) · tour 1/1 → 402 (15 s) après 401 sans réponse",
            ),
            (
                "appel 403@pbx.test (15 s) [sequential, tour 1/1]",
                "GNR séquentiel (401, 402, 403) · tour 1/1 → 403 (15 s) après 401 sans réponse,"
                " 402 occupé",
            ),
            (
                "appel 601@pbx.test (20 s) [sequential, tour 1/1]",
                "débordement busy (programme « p ») → numéro 601 (20 s)",
            ),
            (
                "fin : appel libéré (no_answer)",
                "débordement busy (programme « p ») → numéro 601 → sans réponse → appel libéré",
            ),
        ),
    ),
    Case(
        "gnr-all-no-answer-message",
        GNR_3.format(rounds=1, strategy="sequential"),
        (NO_ANSWER,) * 3,
        (
            (
                "appel 401@pbx.test (15 s) [sequential, tour 1/1]",
                "GNR séquentiel (401, 402, 403) · tour 1/1 → 401 (15 s)",
            ),
            (
                "appel 402@pbx.test (15 s) [sequential, tour 1/1]",
                "GNR séquentiel (401, 402, 403) · tour 1/1 → 402 (15 s) après 401 sans réponse",
            ),
            (
                "appel 403@pbx.test (15 s) [sequential, tour 1/1]",
                "GNR séquentiel (401, 402, 403) · tour 1/1 → 403 (15 s) après 401 sans réponse,"
                " 402 sans réponse",
            ),
            (
                "fin : appel libéré (no_answer) après le message « attente »",
                "débordement no_answer (programme « p ») → message « attente » puis raccroché",
            ),
        ),
    ),
    Case(
        "gnr-unreachable-falls-back-to-all-failed",
        "steps:\n  - {type: gnr, targets: ['401'], overflow: {all_failed: {message: attente}}}",
        (UNREACHABLE,),
        (
            (
                "appel 401@pbx.test (20 s) [sequential, tour 1/1]",
                "GNR séquentiel (401) · tour 1/1 → 401 (20 s)",
            ),
            (
                "fin : appel libéré (unreachable) après le message « attente »",
                "débordement unreachable (via all_failed) (étape steps[0]) → message « attente »"
                " puis raccroché",
            ),
        ),
    ),
    Case(
        "gnr-precedence-not-listed-gives-all-failed",
        "steps:\n  - type: gnr\n    targets: ['401', '402']\n    precedence: [busy]\n"
        "    overflow: {all_failed: {message: attente}, rejected: {message: fermeture}}",
        (REJECTED, UNREACHABLE),
        (
            (
                "appel 401@pbx.test (20 s) [sequential, tour 1/1]",
                "GNR séquentiel (401, 402) · tour 1/1 → 401 (20 s)",
            ),
            (
                "appel 402@pbx.test (20 s) [sequential, tour 1/1]",
                "GNR séquentiel (401, 402) · tour 1/1 → 402 (20 s) après 401 refusé",
            ),
            (
                "fin : appel libéré (all_failed) après le message « attente »",
                "débordement all_failed (étape steps[0]) → message « attente » puis raccroché",
            ),
        ),
    ),
    Case(
        "gnr-simultaneous-one-dial-per-round",
        GNR_3.format(rounds=2, strategy="simultaneous"),
        (NO_ANSWER, Answered("403")),
        (
            (
                "appel 401@pbx.test + 402@pbx.test + 403@pbx.test (15 s) [simultaneous, tour 1/2]",
                "GNR simultané (401, 402, 403) · tour 1/2 → 401 (15 s) + 402 (15 s) + 403 (15 s)",
            ),
            (
                "appel 401@pbx.test + 402@pbx.test + 403@pbx.test (15 s) [simultaneous, tour 2/2]",
                "GNR simultané (401, 402, 403) · tour 2/2 → 401 (15 s) + 402 (15 s) + 403 (15 s)",
            ),
            (
                "fin : décroché par 403",
                "GNR simultané (401, 402, 403) · tour 2/2 → 401 (15 s) + 402 (15 s) + 403 (15 s)"
                " → 403 a décroché",
            ),
        ),
    ),
    Case(
        "gnr-skips-known-busy",
        GNR_3.format(rounds=1, strategy="sequential"),
        (),
        (
            (
                "appel 403@pbx.test (15 s) [sequential, tour 1/1]",
                "GNR séquentiel (401, 402, 403) · tour 1/1 → 403 (15 s) après 401 connu occupé,"
                " ignoré, 402 connu occupé, ignoré",
            ),
            (
                "fin : décroché par 403",
                "GNR séquentiel (401, 402, 403) · tour 1/1 → 403 (15 s) après 401 connu occupé,"
                " ignoré, 402 connu occupé, ignoré → 403 a décroché",
            ),
        ),
        ctx=ctx(known_busy=frozenset({"401", "402"})),
    ),
    Case(
        "gnr-all-known-busy-overflows-busy",
        GNR_3.format(rounds=2, strategy="sequential"),
        (),
        (
            (
                "appel 601@pbx.test (20 s) [sequential, tour 1/1]",
                "débordement busy (programme « p ») → numéro 601 (20 s)",
            ),
            (
                "fin : décroché par 601",
                "débordement busy (programme « p ») → numéro 601 → décroché",
            ),
        ),
        ctx=ctx(known_busy=frozenset({"401", "402", "403"})),
    ),
    Case(
        "gnr-external-targets-normalized",
        "steps:\n  - {type: gnr, targets: ['0612345678', {number: '+442079460000', ring_s: 30}]}",
        (BUSY,),
        (
            (
                "appel +33612345678 (20 s) [sequential, tour 1/1]",
                "GNR séquentiel (0612345678, +442079460000) · tour 1/1 → +33612345678 (20 s)",
            ),
            (
                "appel +442079460000 (30 s) [sequential, tour 1/1]",
                "GNR séquentiel (0612345678, +442079460000) · tour 1/1 → +442079460000 (30 s)"
                " après +33612345678 occupé",
            ),
            (
                "fin : décroché par +442079460000",
                "GNR séquentiel (0612345678, +442079460000) · tour 1/1 → +442079460000 (30 s)"
                " après +33612345678 occupé → +442079460000 a décroché",
            ),
        ),
    ),
    Case(
        "goto-another-program",
        "steps:\n  - {type: goto, program: autre}",
        (),
        (
            ("appel 700@pbx.test (20 s) [sequential, tour 1/1]", "appel 700 (20 s)"),
            ("fin : décroché par 700", "appel 700 (20 s) → décroché"),
        ),
    ),
    Case(
        "overflow-to-program",
        "steps:\n  - {type: dial, number: '401', overflow: {busy: {program: autre}}}",
        (BUSY,),
        (
            ("appel 401@pbx.test (20 s) [sequential, tour 1/1]", "appel 401 (20 s)"),
            ("appel 700@pbx.test (20 s) [sequential, tour 1/1]", "appel 700 (20 s)"),
            ("fin : décroché par 700", "appel 700 (20 s) → décroché"),
        ),
    ),
    Case(
        "dial-overflow-number-fails-then-released",
        "steps:\n  - {type: dial, number: '401', ring_s: 10, "
        "overflow: {no_answer: {number: '0612345678', ring_s: 25}}}",
        (NO_ANSWER, BUSY),
        (
            ("appel 401@pbx.test (10 s) [sequential, tour 1/1]", "appel 401 (10 s)"),
            (
                "appel +33612345678 (25 s) [sequential, tour 1/1]",
                "débordement no_answer (étape steps[0]) → numéro 0612345678 (25 s)",
            ),
            (
                "fin : appel libéré (busy)",
                "débordement no_answer (étape steps[0]) → numéro 0612345678 → occupé"
                " → appel libéré",
            ),
        ),
    ),
    Case(
        "voicemail",
        "steps:\n  - {type: voicemail, box: '401', greeting: accueil}",
        (),
        (("fin : messagerie 401", "messagerie 401"),),
    ),
    Case(
        "menu-placeholder",
        "steps:\n  - {type: menu, menu: standard}",
        (),
        (("fin : menu « standard »", "menu « standard »"),),
    ),
    Case(
        "hangup-with-cause",
        "steps:\n  - {type: hangup, cause: busy}",
        (),
        (("fin : appel libéré (busy)", "raccroché (busy)"),),
    ),
    Case(
        "end-of-program-hangs-up",
        "steps:\n  - {type: play, message: accueil}",
        (),
        (
            ("message « accueil »", "message « accueil »"),
            ("fin : appel libéré (normal)", "fin du programme « p » → raccroché"),
        ),
    ),
    Case(
        "caller-hangs-up-during-dial",
        "steps:\n  - {type: dial, number: '401'}",
        (Closed(),),
        (
            ("appel 401@pbx.test (20 s) [sequential, tour 1/1]", "appel 401 (20 s)"),
            ("fin : l'appelant a raccroché", "l'appelant a raccroché"),
        ),
    ),
    Case(
        "split-draws-with-injected-random",
        "steps:\n  - type: split\n    branches:\n"
        "      - {percent: 70, steps: [{type: dial, number: '401'}]}\n"
        "      - {percent: 30, steps: [{type: dial, number: '402'}]}",
        (),
        (
            ("appel 402@pbx.test (20 s) [sequential, tour 1/1]", "appel 402 (20 s)"),
            ("fin : décroché par 402", "appel 402 (20 s) → décroché"),
        ),
        seed=0,  # random.Random(0).random() * 100 = 84.4: past the first 70 %
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_engine_case(case: Case, tmp_path: Path) -> None:
    library = make_library(tmp_path, case.program, case.extra)
    run = drive(library, case.ctx, case.outcomes, seed=case.seed)
    assert summary(run.actions) == list(case.expected)
    assert run.actions[0].because[0] == "numéro 0891000000 → programme « p »"


def test_full_because_trail(tmp_path: Path) -> None:
    library = make_library(
        tmp_path,
        "steps:\n  - type: calendar\n    calendar: horaires\n    branches:\n"
        "      ouvert: [{type: gnr, targets: ['401']}]\n"
        "overflow:\n  closed: {message: fermeture}",
    )
    holiday = datetime(2026, 4, 6, 10, 0, tzinfo=PARIS)  # Lundi de Pâques
    (action,) = drive(library, ctx(holiday), ()).actions
    assert isinstance(action, Reject)
    assert action == Reject(
        cause=action.cause,
        message="fermeture",
        because=(
            "numéro 0891000000 → programme « p »",
            "calendrier « horaires » → fermé: jour férié (Lundi de Pâques) · 2026-04-06 10:00"
            " Europe/Paris",
            "débordement closed (programme « p ») → message « fermeture » puis raccroché",
        ),
    )
    assert action.cause.value == "closed"


def test_number_limiter_then_atp_then_program(tmp_path: Path) -> None:
    library = make_library(
        tmp_path,
        "steps:\n  - {type: dial, number: '401'}",
        extra='  "0891000001":\n    program: p\n    limit: 5\n    limit_pool: site\n'
        "    atp: {message: atp}\n",
    )
    run = drive(library, RoutingContext("0891000001", TUESDAY_10), ())
    assert summary(run.actions) == [
        ("limiteur pool:site (max 5)", "limiteur « site » : 5 appels simultanés au plus"),
        (
            "message « atp », avant décroché, interruptible par #",
            "ATP « atp » (annonce tarifaire, gratuite pour l'appelant)",
        ),
        ("appel 401 (20 s) [sequential, tour 1/1]", "appel 401 (20 s)"),
        ("fin : décroché par 401", "appel 401 (20 s) → décroché"),
    ]


def test_backup_plan_replaces_program(tmp_path: Path) -> None:
    library = make_library(tmp_path, "steps:\n  - {type: dial, number: '401'}")
    switched = library.with_active_backup("0891000000", "panne")
    run = drive(switched, ctx(), ())
    assert summary(run.actions)[0] == (
        "appel 403@pbx.test (20 s) [sequential, tour 1/1]",
        "appel 403 (20 s)",
    )
    assert run.actions[0].because[0] == (
        "numéro 0891000000 → plan de secours « panne » actif → programme « secours »"
    )
    # The original library is unchanged (immutable): sessions on it still use p.
    assert summary(drive(library, ctx(), ()).actions)[0][1] == "appel 401 (20 s)"
    assert library.with_active_backup("+33891000000", None).programs is library.programs


def test_split_follows_injected_random(tmp_path: Path) -> None:
    library = make_library(
        tmp_path,
        "steps:\n  - type: split\n    branches:\n"
        "      - {percent: 50, steps: [{type: dial, number: '401'}]}\n"
        "      - {percent: 50, steps: [{type: dial, number: '402'}]}",
    )
    seen = {}
    for seed in range(20):
        first = drive(library, ctx(), (), seed=seed).actions[0]
        assert isinstance(first, Dial)
        expected = "401" if random.Random(seed).random() < 0.5 else "402"
        assert first.targets[0].number == expected
        seen[expected] = first.because[-2]
    assert seen == {
        "401": "répartition : branche 1 (50 %)",
        "402": "répartition : branche 2 (50 %)",
    }


def _first_targets(library: Library, cursors: Cursors, seed: int = 0) -> tuple[str, Cursors]:
    run = drive(library, ctx(), (), seed=seed, cursors=cursors)
    first = run.actions[0]
    assert isinstance(first, Dial)
    assert run.session is not None
    return first.targets[0].number, run.session.cursors


def test_round_robin_cursor_is_passed_in_and_returned(tmp_path: Path) -> None:
    library = make_library(tmp_path, GNR_3.format(rounds=1, strategy="round_robin"))
    cursors = Cursors()
    starts = []
    for _ in range(4):
        start, cursors = _first_targets(library, cursors)
        starts.append(start)
    assert starts == ["401", "402", "403", "401"]
    # Nothing global: the same input cursor gives the same start.
    assert _first_targets(library, Cursors())[0] == "401"


def test_least_recent_prefers_who_answered_longest_ago(tmp_path: Path) -> None:
    library = make_library(tmp_path, GNR_3.format(rounds=1, strategy="least_recent"))
    cursors = Cursors()
    answered = []
    for _ in range(4):
        run = drive(library, ctx(), (), cursors=cursors)
        assert run.session is not None
        cursors = run.session.cursors
        done = run.actions[-1]
        assert isinstance(done, Done)
        answered.append(done.target)
    assert answered == ["401", "402", "403", "401"]


def test_weighted_order_uses_weights(tmp_path: Path) -> None:
    library = make_library(
        tmp_path,
        "steps:\n  - type: gnr\n    strategy: weighted\n"
        "    targets: [{number: '401', weight: 9}, {number: '402', weight: 1}]",
    )
    firsts = [_first_targets(library, Cursors(), seed)[0] for seed in range(200)]
    assert 150 < firsts.count("401") < 200
    assert firsts.count("401") + firsts.count("402") == 200


def test_number_overflow_to_program_is_used_once(tmp_path: Path) -> None:
    library = make_library(
        tmp_path,
        "steps:\n  - {type: dial, number: '401'}",
        extra='  "0891000002":\n    program: p\n    overflow: {busy: {program: p}}\n',
    )
    run = drive(library, RoutingContext("0891000002", TUESDAY_10), (BUSY, BUSY))
    assert summary(run.actions)[-1] == (
        "fin : appel libéré (busy)",
        "débordement busy : aucun → appel libéré",
    )
    assert len(run.actions) == 3


def test_unknown_number(tmp_path: Path) -> None:
    library = make_library(tmp_path, "steps:\n  - {type: dial, number: '401'}")
    with pytest.raises(UnknownNumber):
        RoutingSession(library, RoutingContext("0899999999", TUESDAY_10), rng=random.Random())
    # Any written form of a known number is found.
    for form in ("0891000000", "+33891000000", "0033 8 91 00 00 00"):
        assert library.find_number(form) is not None


def test_driver_misuse_raises(tmp_path: Path) -> None:
    library = make_library(tmp_path, "steps:\n  - {type: limit, max: 1}\n  - {type: hangup}")
    session = RoutingSession(library, ctx(), rng=random.Random(0))
    with pytest.raises(RoutingError):
        session.resume(LimitAcquired())
    assert isinstance(session.start(), AcquireLimit)
    with pytest.raises(RoutingError):
        session.start()
    with pytest.raises(OutcomeMismatch):
        session.resume(BUSY)
    assert isinstance(session.resume(LimitAcquired()), Reject)
    assert session.finished
    with pytest.raises(RoutingError):
        session.resume(LimitAcquired())


def test_context_needs_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        RoutingContext("0891000000", datetime(2026, 5, 12, 10, 0))


def test_sessions_keep_their_library_version(tmp_path: Path) -> None:
    from routing.loader import LibraryHolder

    library = make_library(tmp_path, "steps:\n  - {type: dial, number: '401'}")
    holder = LibraryHolder(library)
    session = RoutingSession(holder.current, ctx(), rng=random.Random(0))
    first = session.start()
    assert isinstance(first, Dial)
    make_library(tmp_path, "steps:\n  - {type: dial, number: '402'}")
    assert holder.reload(tmp_path / "routing") == []
    assert holder.current is not library
    # The running call goes on with the version it started with.
    assert session.library is library
    assert isinstance(session.resume(BUSY), Reject)
    new_first = RoutingSession(holder.current, ctx(), rng=random.Random(0)).start()
    assert isinstance(new_first, Dial)
    assert new_first.targets[0].number == "402"
