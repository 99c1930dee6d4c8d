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
import os
import re
import shutil
import signal
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

from tests.sip_support import free_port, options, status_of, udp_exchange, write_config  # noqa: E402

SCENARIO = ROOT / "tests" / "interop" / "scenarios" / "uac-options-expect-200.xml"
KAMAILIO_CFG = ROOT / "bench" / "kamailio-options.cfg"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    rate: int
    sent: int
    ok: int
    failed: int
    achieved: float
    cpu_s: float
    seconds: float

    @property
    def passed(self) -> bool:
        return (
            self.sent > 0
            and self.failed <= 0.01 * self.sent
            and self.ok >= 0.99 * self.sent
            and self.achieved >= 0.95 * self.rate
        )


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants (Kamailio forks workers)."""
    total = 0.0
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        p = int(entry.name)
        stats[p] = fields
        children.setdefault(int(fields[1]), []).append(p)
    todo = [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += (int(stats[p][11]) + int(stats[p][12])) / CLK_TCK
        todo.extend(children.get(p, []))
    return total


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        answer = udp_exchange(options(), port, timeout=0.2)
        if answer is not None and status_of(answer) == 200:
            return
    raise RuntimeError("server not ready")


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(5)


_COUNTER = re.compile(
    r"^\s*(Successful call|Failed call|Outgoing calls created)\s*\|[^|]*\|\s*(\d+)"
)


def run_step(
    port: int, rate: int, seconds: float, workdir: Path, cpu: Callable[[], float], core: str
) -> Step:
    count = max(1, int(rate * seconds))
    command = [
        "taskset",
        "-c",
        core,
        "sipp",
        "-sf",
        str(SCENARIO),
        "-t",
        "u1",
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-cp",
        str(free_port()),
        "-r",
        str(rate),
        "-m",
        str(count),
        "-l",
        str(max(2000, rate)),
        "-recv_timeout",
        "2000",
        "-timeout",
        f"{int(seconds + 10)}s",
        "-timeout_error",
        "-buff_size",
        "4194304",
        "-trace_err",
        "-nostdin",
        f"127.0.0.1:{port}",
    ]
    cpu_before = cpu()
    started = time.monotonic()
    result = subprocess.run(
        command,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=seconds + 15,
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
    # SIPp's own run time includes draining the last answers; the rate it
    # achieved is what it sent over the time it took to send it.
    achieved = sent / max(elapsed - 0.15, 1e-3)
    return Step(rate, count, ok, failed, min(achieved, float(rate) * 1.5), cpu_used, elapsed)


def search(
    name: str,
    port: int,
    workdir: Path,
    cpu: Callable[[], float],
    *,
    start: int,
    seconds: float,
    budget: float,
    sipp_core: str,
    log: Callable[[str], None],
) -> tuple[int, Step | None, bool]:
    """Highest passing rate: x1.5 steps up, then bisection, within ``budget`` seconds."""
    deadline = time.monotonic() + budget
    best: Step | None = None
    rate = start
    failed_at: int | None = None
    while time.monotonic() + seconds + 3 < deadline:
        step = run_step(port, rate, seconds, workdir, cpu, sipp_core)
        log(
            f"{name}: rate={rate} ok={step.ok}/{step.sent} failed={step.failed} "
            f"achieved={step.achieved:.0f}/s cpu={step.cpu_s:.2f}s pass={step.passed}"
        )
        if step.passed:
            best = step if best is None or step.rate > best.rate else best
            if failed_at is None:
                rate = int(rate * 1.5)
                continue
        else:
            failed_at = rate if failed_at is None else min(failed_at, rate)
        low = best.rate if best is not None else 0
        if failed_at - low <= max(100, low // 20):  # within 5 %: good enough
            break
        rate = (low + failed_at) // 2 if low else failed_at // 2
        if rate < 50:
            break
    # Without a failing step, the figure is only a lower bound (budget or SIPp ran out).
    return (best.rate if best else 0), best, failed_at is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    for tool in ("sipp", "taskset") + (("kamailio",) if args.only != "aiguilleur" else ()):
        if shutil.which(tool) is None:
            print(
                f"{tool} not found: bash deploy/ensure-debs.sh sip-tester kamailio", file=sys.stderr
            )
            return 2

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    result: dict[str, object] = {"bench": "options", "transport": "udp"}
    with tempfile.TemporaryDirectory(prefix="bench-options-") as tmp:
        work = Path(tmp)
        if args.only != "kamailio":
            port, tls_port = free_port(), free_port()
            config = write_config(work / "config", sip_port=port, tls_port=tls_port)
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
            spy = None
            try:
                wait_ready(port, proc)
                if args.profile:
                    spy = subprocess.Popen(
                        [
                            shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                            "record",
                            "-f",
                            "raw",
                            "-p",
                            str(proc.pid),
                            "-o",
                            args.profile,
                            "-d",
                            str(int(args.budget)),
                            "-r",
                            "200",
                            "--nonblocking",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                rps, best, bracketed = search(
                    "aiguilleur",
                    port,
                    work,
                    lambda: cpu_seconds(proc.pid),
                    start=1000,
                    seconds=args.seconds,
                    budget=args.budget,
                    sipp_core=args.sipp_core,
                    log=log,
                )
            finally:
                if spy is not None:
                    spy.wait(args.budget + 30)
                status = stop(proc)
                server_log.close()
            result["aiguilleur_rps"] = rps
            result["aiguilleur_max_found"] = bracketed
            result["aiguilleur_exit"] = status
            if best is not None:
                result["aiguilleur_cpu_us_per_req"] = round(1e6 * best.cpu_s / best.sent, 1)
        if args.only != "aiguilleur":
            port = free_port()
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
                    "512",
                    "-M",
                    "32",
                    "-P",
                    str(work / "kamailio.pid"),
                    "-Y",
                    str(work),
                ],
                stdout=kam_log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_ready(port, kam)
                rps, best, bracketed = search(
                    "kamailio",
                    port,
                    work,
                    lambda: cpu_seconds(kam.pid),
                    start=4000,
                    seconds=args.seconds,
                    budget=args.budget,
                    sipp_core=args.sipp_core,
                    log=log,
                )
            finally:
                stop(kam)
                kam_log.close()
            result["kamailio_rps"] = rps
            result["kamailio_max_found"] = bracketed
            if best is not None:
                result["kamailio_cpu_us_per_req"] = round(1e6 * best.cpu_s / best.sent, 1)
    a, k = result.get("aiguilleur_rps"), result.get("kamailio_rps")
    if isinstance(a, int) and isinstance(k, int) and k:
        result["ratio"] = round(a / k, 3)
    result = {key: value for key, value in result.items() if value is not None}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
