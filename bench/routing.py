"""Routing engine speed: decisions per second, library load time and memory.

1. Decisions: complete sessions (``start`` → terminal action) on the example
   call-centre number ``0800100100`` (limiteur, calendrier, GNR 401-403 × 2
   tours, débordements), a Tuesday at 10:00, with synthetic outcomes cycling
   through four typical calls: 401 answers; 401 busy then 402 answers; the whole
   GNR busy twice then 601 answers; the whole GNR without answer (message).
   Reported: sessions/s and actions/s, on one core, in-process.
2. Library: a generated directory of 10,000 numbers sharing 1,000 programs
   (calendar + GNR of 3 targets × 2 rounds + overflow), loaded with
   ``load_library``: wall time, and resident memory (``/proc/self/statm``)
   before and after (the library's cost is the difference).

Prints ONE JSON line. Bounded: about 20 s on a 2-core machine, < 60 s always.
Run: ``.venv/bin/python bench/routing.py [--seconds 3]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from routing.engine import (  # noqa: E402
    AcquireLimit,
    Answered,
    Failed,
    LimitAcquired,
    Outcome,
    Play,
    PlayDone,
    RoutingContext,
    RoutingSession,
    is_terminal,
)
from routing.gnr import Cursors  # noqa: E402
from routing.loader import Library, load_library  # noqa: E402
from routing.program import FailCause  # noqa: E402
from tests.routing_support import generate_library  # noqa: E402

BUSY: Outcome = Failed(FailCause.BUSY)
NO_ANSWER: Outcome = Failed(FailCause.NO_ANSWER)
SCENARIOS: list[list[Outcome]] = [
    [Answered("401")],
    [BUSY, Answered("402")],
    [*[BUSY] * 6, Answered("601")],
    [NO_ANSWER] * 6,
]


def one_call(
    library: Library, ctx: RoutingContext, outcomes: list[Outcome], rng: random.Random
) -> int:
    session = RoutingSession(library, ctx, rng=rng, cursors=Cursors())
    queue = iter(outcomes)
    action = session.start()
    count = 1
    while not is_terminal(action):
        if isinstance(action, AcquireLimit):
            outcome: Outcome = LimitAcquired()
        elif isinstance(action, Play):
            outcome = PlayDone()
        else:
            outcome = next(queue)
        action = session.resume(outcome)
        count += 1
    return count


def decisions(seconds: float) -> dict[str, float]:
    library = load_library(ROOT / "config" / "example" / "routing")
    at = datetime(2026, 5, 12, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
    ctx = RoutingContext("+33800100100", at, caller="0612345678")
    rng = random.Random(0)
    sessions = actions = 0
    started = time.perf_counter()
    deadline = started + seconds
    cpu = time.process_time()
    while time.perf_counter() < deadline:
        for scenario in SCENARIOS:
            actions += one_call(library, ctx, scenario, rng)
            sessions += 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return {
        "sessions_per_s": round(sessions / elapsed),
        "actions_per_s": round(actions / elapsed),
        "cpu_us_per_session": round(cpu / sessions * 1e6, 1),
        "sessions": sessions,
    }


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def library_load(numbers: int, programs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        routing = generate_library(Path(tmp), numbers, programs)
        gc.collect()
        before = rss_mb()
        started = time.perf_counter()
        library = load_library(routing)
        elapsed = time.perf_counter() - started
        gc.collect()
        after = rss_mb()
        assert len(library.numbers) == numbers
        entry = library.find_number("0970000042")
        assert entry is not None
        return {
            "load_s": round(elapsed, 2),
            "rss_before_mb": round(before, 1),
            "rss_after_mb": round(after, 1),
            "library_mb": round(after - before, 1),
            "numbers": numbers,
            "programs": programs,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="decision loop duration")
    parser.add_argument("--numbers", type=int, default=10_000)
    parser.add_argument("--programs", type=int, default=1_000)
    args = parser.parse_args()
    result = {"bench": "routing", **decisions(args.seconds)}
    result.update(library_load(args.numbers, args.programs))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
