"""Calls per second: SIPp uac -> server -> SIPp uas, aiguilleur and Kamailio, same run.

Each call is INVITE / 180 / 200 / ACK / BYE / 200 (SDP offer/answer, no RTP).

- **aiguilleur** (one process pinned to one core): the SIPp UAC *is the trunk*
  ``carrier`` of ``config/example`` (source 127.0.0.1:5090, so not challenged)
  and calls the direct number +33140000401 of line 401. The SIPp UAS *is line
  401*: it first REGISTERs from its own port with digest
  (``uac-register-digest-expect-200.xml``), then runs SIPp's built-in ``uas``
  on that port. So every call goes the real trunk-in path: trunk source check,
  direct-number lookup, location lookup, relay session (two RTP/RTCP pairs),
  SDP anchoring on both legs, and one CDR row. The bench configuration only
  raises line 401's ``max_calls`` to 1000 (the default, 5, would answer 486).
- **Kamailio** (Debian 5.6, ``bench/kamailio-proxy.cfg``: transaction-stateful
  proxy with record-routing, one worker, ``-x tlsf -m 4096``), pinned to the same
  core, relaying to the same built-in SIPp UAS.

Both get the same UAC scenario (``tests/interop/scenarios/uac-trunk-expect-200.xml``,
``-d 0``: BYE right after the ACK) at stepped rates: x1.5 up, then bisection. A
step passes when fewer than 1 % of the calls fail and SIPp reached 95 % of the
asked rate. The SIPp processes share the other core. Total time bounded
(``--budget`` per server, about 3.5 minutes in all by default).

One JSON line on stdout::

    {"bench": "cps", "aiguilleur_cps": ..., "kamailio_cps": ..., "ratio": ...,
     "aiguilleur_cpu_us_per_call": ..., "kamailio_cpu_us_per_call": ..., ...}

Run: ``.venv/bin/python bench/cps.py`` (needs sipp, kamailio, taskset).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
    sipp,
    start_kamailio,
    start_switch,
    stop,
    wait_ready,
)
from tests.sip_support import free_port, write_config  # noqa: E402

SCENARIOS = ROOT / "tests" / "interop" / "scenarios"
UAC = SCENARIOS / "uac-trunk-expect-200.xml"
REGISTER = SCENARIOS / "uac-register-digest-expect-200.xml"
KAMAILIO_CFG = ROOT / "bench" / "kamailio-proxy.cfg"
TRUNK_PORT = 5090  # config/example: trunk `carrier`
CALLED = "+33140000401"  # line 401's direct number


def start_uas(core: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """SIPp's built-in UAS on ``port`` for the whole search (killed by its PID after)."""
    return subprocess.Popen(
        sipp(core, "-sn", "uas", "-p", str(port), "-timeout", "600s", "-trace_err"),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def register_uas(core: str, server_port: int, uas_port: int, workdir: Path) -> None:
    """REGISTER line 401 from the UAS's port (digest), so that calls reach it."""
    users = workdir / "users.csv"
    users.write_text("SEQUENTIAL\n401;pbx.test;[authentication username=401 password=secret401]\n")
    result = subprocess.run(
        sipp(
            core,
            "-sf",
            str(REGISTER),
            "-inf",
            str(users),
            "-p",
            str(uas_port),
            "-m",
            "1",
            "-timeout",
            "10s",
            "-timeout_error",
            f"127.0.0.1:{server_port}",
        ),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=20,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError("REGISTER of the SIPp UAS failed:\n" + result.stdout.decode()[-1500:])


def call_step(
    port: int,
    rate: int,
    seconds: float,
    work: Path,
    pid: int,
    core: str,
    uac_port: int,
    called: str = CALLED,
) -> Step:
    """One SIPp run of the UAC scenario (BYE right after ACK) from ``uac_port`` to
    ``called`` (line 401's direct number by default)."""
    return run_step(
        ["-sf", str(UAC), "-s", called, "-d", "0", "-p", str(uac_port)],
        port,
        rate,
        seconds,
        workdir=work,
        cpu=lambda: cpu_seconds(pid),
        core=core,
        recv_timeout_ms=3000,
        drain=0.3,
    )


def measure(
    name: str, step: Callable[[int], Step], start: int, seconds: float, budget: float
) -> tuple[int, Step | None, bool]:
    return search(
        name,
        step,
        start=start,
        seconds=seconds,
        budget=budget,
        log=log,
        resolution=20,
        floor=10,
        pause=1.0,  # let the previous step's calls drain
    )


def bench_config(work: Path, port: int) -> Path:
    config = write_config(work / "config", sip_port=port, tls_port=free_port())
    directory = config / "directory.yaml"
    text = directory.read_text(encoding="utf-8")
    line = '        direct_number: "+33140000401"\n'
    assert text.count(line) == 1
    text = text.replace(line, line + "        max_calls: 1000\n")
    # +33140000401 is also the company's main number, whose calls fall over to the
    # Standard (999) after no answer (switch.line_call): that is the routed path,
    # which bench/service_cps.py measures. Here: the plain B2BUA path, so the main
    # number is moved to a number of its own.
    main = '    main_number: "+33140000401"'
    assert text.count(main) == 1
    text = text.replace(main, '    main_number: "+33140000400"')
    directory.write_text(text, encoding="utf-8")
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="load per step")
    parser.add_argument("--budget", type=float, default=95.0, help="seconds per server")
    parser.add_argument("--server-core", default="1")
    parser.add_argument("--sipp-core", default="0")
    parser.add_argument("--only", choices=("aiguilleur", "kamailio"), default=None)
    args = parser.parse_args()
    missing = missing_tools(need_kamailio=args.only != "aiguilleur")
    if missing:
        print(missing, file=sys.stderr)
        return 2

    result: dict[str, object] = {"bench": "cps", "transport": "udp", "rtp": False}
    with tempfile.TemporaryDirectory(prefix="bench-cps-") as tmp:
        work = Path(tmp)
        if args.only != "kamailio":
            port = free_port()
            config = bench_config(work, port)
            proc = start_switch(config, work / "data", args.server_core, work / "aiguilleur.log")
            uas = None
            try:
                wait_ready(port, proc)
                uas_port = free_port()
                register_uas(args.sipp_core, port, uas_port, work)
                uas = start_uas(args.sipp_core, uas_port, work)
                time.sleep(0.5)
                rate, best, bracketed = measure(
                    "aiguilleur",
                    lambda r: call_step(
                        port, r, args.seconds, work, proc.pid, args.sipp_core, TRUNK_PORT
                    ),
                    100,
                    args.seconds,
                    args.budget,
                )
            finally:
                if uas is not None:
                    stop(uas)
                status = stop(proc)
            result["aiguilleur_cps"] = rate
            result["aiguilleur_max_found"] = bracketed
            result["aiguilleur_exit"] = status
            if best is not None:
                result["aiguilleur_cpu_us_per_call"] = best.cpu_us_per_call
        if args.only != "aiguilleur":
            port, uas_port = free_port(), free_port()
            kam = start_kamailio(
                KAMAILIO_CFG,
                port,
                args.server_core,
                work,
                shm_mb=4096,
                defines=(
                    "KCHILDREN=1",
                    f'UAS_URI="sip:127.0.0.1:{uas_port}"',
                    f'CTL_SOCK="unix:{work}/kamailio_ctl"',
                ),
            )
            uas = start_uas(args.sipp_core, uas_port, work)
            try:
                # Not an OPTIONS probe: this proxy relays OPTIONS to the UAS.
                time.sleep(2.0)
                if kam.poll() is not None:
                    raise RuntimeError(f"kamailio exited with {kam.returncode}")
                rate, best, bracketed = measure(
                    "kamailio",
                    lambda r: call_step(
                        port, r, args.seconds, work, kam.pid, args.sipp_core, free_port()
                    ),
                    2000,
                    args.seconds,
                    args.budget,
                )
            finally:
                if uas is not None:
                    stop(uas)
                stop(kam)
            result["kamailio_cps"] = rate
            result["kamailio_max_found"] = bracketed
            if best is not None:
                result["kamailio_cpu_us_per_call"] = best.cpu_us_per_call
    a, k = result.get("aiguilleur_cps"), result.get("kamailio_cps")
    if isinstance(a, int) and isinstance(k, int) and k:
        result["ratio"] = round(a / k, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
