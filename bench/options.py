"""OPTIONS load: ``aiguilleur run`` against Kamailio answering statelessly, same run.

SIPp (``tests/interop/scenarios/uac-options-expect-200.xml``, UDP, one socket)
sends OPTIONS at stepped rates to each server in turn. Each server is pinned to
one core with taskset (the same core for both), SIPp to another. A step passes
when fewer than 1 % of the requests fail and SIPp reached at least 95 % of the
asked rate; the result is the highest passing rate (geometric steps up, then a
bisection between the last pass and the first failure). Kamailio runs
``bench/kamailio-options.cfg`` (``sl_send_reply("200", "OK")``, one worker,
``-x tlsf -m 512 -M 32``). Total time is bounded (about 3 minutes at most).

One JSON line on stdout::

    {"bench": "options", "aiguilleur_rps": ..., "kamailio_rps": ..., "ratio": ...,
     "aiguilleur_cpu_us_per_req": ..., "kamailio_cpu_us_per_req": ..., ...}

``*_cpu_us_per_req`` is the server's CPU time (all its processes) per request at
its best step: the figure that stays meaningful when SIPp, not the server, is
the limit. ``*_max_found`` is false when no step failed (the budget or SIPp ran
out first): the rate is then a lower bound, as it usually is for Kamailio.

Run: ``.venv/bin/python bench/options.py`` (needs sipp, kamailio, taskset).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.sipp import (  # noqa: E402
    Step,
    cpu_seconds,
    log,
    missing_tools,
    run_step,
    search,
    start_kamailio,
    start_switch,
    stop,
    wait_ready,
)
from tests.sip_support import free_port, write_config  # noqa: E402

SCENARIO = ROOT / "tests" / "interop" / "scenarios" / "uac-options-expect-200.xml"
KAMAILIO_CFG = ROOT / "bench" / "kamailio-options.cfg"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.5, help="load per step")
    parser.add_argument("--budget", type=float, default=70.0, help="seconds per server")
    parser.add_argument("--server-core", default="1")
    parser.add_argument("--sipp-core", default="0")
    parser.add_argument("--only", choices=("aiguilleur", "kamailio"), default=None)
    parser.add_argument(
        "--profile",
        metavar="FILE",
        default=None,
        help="record aiguilleur with py-spy during its search (collapsed stacks)",
    )
    args = parser.parse_args()
    missing = missing_tools(need_kamailio=args.only != "aiguilleur")
    if missing:
        print(missing, file=sys.stderr)
        return 2

    def measure(
        name: str, port: int, proc: subprocess.Popen[bytes], start: int, work: Path
    ) -> tuple[int, Step | None, bool]:
        return search(
            name,
            lambda rate: run_step(
                ["-sf", str(SCENARIO), "-p", str(free_port())],
                port,
                rate,
                args.seconds,
                workdir=work,
                cpu=lambda: cpu_seconds(proc.pid),
                core=args.sipp_core,
            ),
            start=start,
            seconds=args.seconds,
            budget=args.budget,
            log=log,
            resolution=100,
            floor=50,
        )

    result: dict[str, object] = {"bench": "options", "transport": "udp"}
    with tempfile.TemporaryDirectory(prefix="bench-options-") as tmp:
        work = Path(tmp)
        if args.only != "kamailio":
            port = free_port()
            config = write_config(work / "config", sip_port=port, tls_port=free_port())
            proc = start_switch(config, work / "data", args.server_core, work / "aiguilleur.log")
            spy = None
            try:
                wait_ready(port, proc)
                if args.profile:
                    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                    spy = subprocess.Popen(
                        [py_spy, "record", "-f", "raw", "-p", str(proc.pid), "-o", args.profile,
                         "-d", str(int(args.budget)), "-r", "200", "--nonblocking"],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )  # fmt: skip
                rps, best, bracketed = measure("aiguilleur", port, proc, 1000, work)
            finally:
                if spy is not None:
                    spy.wait(args.budget + 30)
                status = stop(proc)
            result["aiguilleur_rps"] = rps
            result["aiguilleur_max_found"] = bracketed
            result["aiguilleur_exit"] = status
            if best is not None:
                result["aiguilleur_cpu_us_per_req"] = best.cpu_us_per_call
        if args.only != "aiguilleur":
            port = free_port()
            kam = start_kamailio(KAMAILIO_CFG, port, args.server_core, work, shm_mb=512)
            try:
                wait_ready(port, kam)
                rps, best, bracketed = measure("kamailio", port, kam, 4000, work)
            finally:
                stop(kam)
            result["kamailio_rps"] = rps
            result["kamailio_max_found"] = bracketed
            if best is not None:
                result["kamailio_cpu_us_per_req"] = best.cpu_us_per_call
    a, k = result.get("aiguilleur_rps"), result.get("kamailio_rps")
    if isinstance(a, int) and isinstance(k, int) and k:
        result["ratio"] = round(a / k, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
