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
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.options import cpu_seconds, stop, wait_ready  # noqa: E402
from tests.sip_support import free_port, write_config  # noqa: E402

SCENARIOS = ROOT / "tests" / "interop" / "scenarios"
UAC = SCENARIOS / "uac-trunk-expect-200.xml"
REGISTER = SCENARIOS / "uac-register-digest-expect-200.xml"
KAMAILIO_CFG = ROOT / "bench" / "kamailio-proxy.cfg"
TRUNK_PORT = 5090  # config/example: trunk `carrier`
CALLED = "+33140000401"  # line 401's direct number

_COUNTER = re.compile(
    r"^\s*(Successful call|Failed call|Outgoing calls created)\s*\|[^|]*\|\s*(\d+)"
)


@dataclass
class Step:
    rate: int
    sent: int
    ok: int
    failed: int
    achieved: float
    cpu_s: float

    @property
    def passed(self) -> bool:
        return (
            self.sent > 0
            and self.failed <= 0.01 * self.sent
            and self.ok >= 0.99 * self.sent
            and self.achieved >= 0.95 * self.rate
        )


def sipp(core: str, *args: str) -> list[str]:
    return [
        "taskset",
        "-c",
        core,
        "sipp",
        "-t",
        "u1",
        "-i",
        "127.0.0.1",
        "-cp",
        str(free_port()),
        "-buff_size",
        "4194304",
        "-nostdin",
        *args,
    ]


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


def run_step(
    port: int,
    rate: int,
    seconds: float,
    workdir: Path,
    cpu: Callable[[], float],
    core: str,
    uac_port: int,
) -> Step:
    count = max(1, int(rate * seconds))
    command = sipp(
        core,
        "-sf",
        str(UAC),
        "-s",
        CALLED,
        "-d",
        "0",
        "-p",
        str(uac_port),
        "-r",
        str(rate),
        "-m",
        str(count),
        "-l",
        str(max(2000, rate)),
        "-recv_timeout",
        "3000",
        "-timeout",
        f"{int(seconds + 12)}s",
        "-timeout_error",
        "-trace_err",
        f"127.0.0.1:{port}",
    )
    cpu_before = cpu()
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=seconds + 20,
        check=False,
    )
    elapsed = time.monotonic() - started
    cpu_used = cpu() - cpu_before
    counters = {}
    for line in result.stdout.decode(errors="replace").splitlines():
        match = _COUNTER.match(line)
        if match:
            counters[match.group(1)] = int(match.group(2))
    ok = counters.get("Successful call", 0)
    failed = counters.get("Failed call", 0)
    sent = counters.get("Outgoing calls created", 0) or count
    failed = max(failed, sent - ok)  # calls neither successful nor failed: lost
    achieved = sent / max(elapsed - 0.3, 1e-3)
    return Step(rate, count, ok, failed, min(achieved, float(rate) * 1.5), cpu_used)


def search(
    name: str,
    step: Callable[[int], Step],
    *,
    start: int,
    seconds: float,
    budget: float,
    log: Callable[[str], None],
) -> tuple[int, Step | None, bool]:
    """Highest passing rate: x1.5 steps up, then bisection, within ``budget`` seconds."""
    deadline = time.monotonic() + budget
    best: Step | None = None
    rate = start
    failed_at: int | None = None
    while time.monotonic() + seconds + 5 < deadline:
        result = step(rate)
        log(
            f"{name}: rate={rate} ok={result.ok}/{result.sent} failed={result.failed} "
            f"achieved={result.achieved:.0f}/s cpu={result.cpu_s:.2f}s pass={result.passed}"
        )
        if result.passed:
            best = result if best is None or result.rate > best.rate else best
            if failed_at is None:
                rate = int(rate * 1.5)
                continue
        else:
            failed_at = rate if failed_at is None else min(failed_at, rate)
        low = best.rate if best is not None else 0
        if failed_at - low <= max(20, low // 20):
            break
        rate = (low + failed_at) // 2 if low else failed_at // 2
        if rate < 10:
            break
        time.sleep(1.0)  # let the previous step's calls drain
    return (best.rate if best else 0), best, failed_at is not None


def bench_config(work: Path, port: int) -> Path:
    config = write_config(work / "config", sip_port=port, tls_port=free_port())
    directory = config / "directory.yaml"
    text = directory.read_text(encoding="utf-8")
    line = '        direct_number: "+33140000401"\n'
    assert text.count(line) == 1
    directory.write_text(text.replace(line, line + "        max_calls: 1000\n"), encoding="utf-8")
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="load per step")
    parser.add_argument("--budget", type=float, default=95.0, help="seconds per server")
    parser.add_argument("--server-core", default="1")
    parser.add_argument("--sipp-core", default="0")
    parser.add_argument("--only", choices=("aiguilleur", "kamailio"), default=None)
    args = parser.parse_args()
    for tool in ("sipp", "taskset") + (("kamailio",) if args.only != "aiguilleur" else ()):
        if shutil.which(tool) is None:
            print(
                f"{tool} not found: bash deploy/ensure-debs.sh sip-tester kamailio", file=sys.stderr
            )
            return 2

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    result: dict[str, object] = {"bench": "cps", "transport": "udp", "rtp": False}
    with tempfile.TemporaryDirectory(prefix="bench-cps-") as tmp:
        work = Path(tmp)
        if args.only != "kamailio":
            port = free_port()
            config = bench_config(work, port)
            server_log = (work / "aiguilleur.log").open("wb")
            proc = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    args.server_core,
                    sys.executable,
                    "-m",
                    "switch",
                    "run",
                    "--config",
                    str(config),
                    "--data-dir",
                    str(work / "data"),
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )
            uas = None
            try:
                wait_ready(port, proc)
                uas_port = free_port()
                register_uas(args.sipp_core, port, uas_port, work)
                uas = start_uas(args.sipp_core, uas_port, work)
                time.sleep(0.5)
                rate, best, bracketed = search(
                    "aiguilleur",
                    lambda r: run_step(
                        port,
                        r,
                        args.seconds,
                        work,
                        lambda: cpu_seconds(proc.pid),
                        args.sipp_core,
                        TRUNK_PORT,
                    ),
                    start=100,
                    seconds=args.seconds,
                    budget=args.budget,
                    log=log,
                )
            finally:
                if uas is not None:
                    stop(uas)
                status = stop(proc)
                server_log.close()
            result["aiguilleur_cps"] = rate
            result["aiguilleur_max_found"] = bracketed
            result["aiguilleur_exit"] = status
            if best is not None:
                result["aiguilleur_cpu_us_per_call"] = round(1e6 * best.cpu_s / best.sent, 1)
        if args.only != "aiguilleur":
            port, uas_port = free_port(), free_port()
            kam_log = (work / "kamailio.log").open("wb")
            kam = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    args.server_core,
                    "kamailio",
                    "-f",
                    str(KAMAILIO_CFG),
                    "-l",
                    f"udp:127.0.0.1:{port}",
                    "-DD",
                    "-E",
                    "-x",
                    "tlsf",
                    "-m",
                    "4096",
                    "-M",
                    "32",
                    "-A",
                    "KCHILDREN=1",
                    "-A",
                    f'UAS_URI="sip:127.0.0.1:{uas_port}"',
                    "-A",
                    f'CTL_SOCK="unix:{work}/kamailio_ctl"',
                    "-P",
                    str(work / "kamailio.pid"),
                    "-Y",
                    str(work),
                ],
                stdout=kam_log,
                stderr=subprocess.STDOUT,
            )
            uas = start_uas(args.sipp_core, uas_port, work)
            try:
                # Not an OPTIONS probe: this proxy relays OPTIONS to the UAS.
                time.sleep(2.0)
                if kam.poll() is not None:
                    raise RuntimeError(f"kamailio exited with {kam.returncode}")
                rate, best, bracketed = search(
                    "kamailio",
                    lambda r: run_step(
                        port,
                        r,
                        args.seconds,
                        work,
                        lambda: cpu_seconds(kam.pid),
                        args.sipp_core,
                        free_port(),
                    ),
                    start=2000,
                    seconds=args.seconds,
                    budget=args.budget,
                    log=log,
                )
            finally:
                if uas is not None:
                    stop(uas)
                stop(kam)
                kam_log.close()
            result["kamailio_cps"] = rate
            result["kamailio_max_found"] = bracketed
            if best is not None:
                result["kamailio_cpu_us_per_call"] = round(1e6 * best.cpu_s / best.sent, 1)
    a, k = result.get("aiguilleur_cps"), result.get("kamailio_cps")
    if isinstance(a, int) and isinstance(k, int) and k:
        result["ratio"] = round(a / k, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
