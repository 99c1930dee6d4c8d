"""What every SIPp-driven benchmark shares: servers, SIPp steps, the rate search.

A benchmark compares ``aiguilleur run`` with a real peer (Kamailio) on the same
SIPp scenario, in the same run, each server pinned to the same core:

- ``start_switch`` / ``start_kamailio`` start a server, ``wait_ready`` waits for
  it to answer OPTIONS, ``stop`` ends it by its PID, ``cpu_seconds`` reads its
  CPU time (all its processes: Kamailio forks workers);
- ``run_step`` runs SIPp once at a fixed rate for a fixed number of calls and
  returns a ``Step``; a step passes when fewer than 1 % of the calls fail and
  SIPp reached 95 % of the asked rate;
- ``search`` finds the highest passing rate: x1.5 steps up, then a bisection
  between the last pass and the first failure, within a time budget.

A result without a failing step is a lower bound (the budget or SIPp ran out
first): ``search`` says so, and the benchmarks print it as ``*_max_found``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.sip_support import free_port, options, status_of, udp_exchange  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")

_COUNTER = re.compile(
    r"^\s*(Successful call|Failed call|Outgoing calls created)\s*\|[^|]*\|\s*(\d+)"
)


@dataclass
class Step:
    """One SIPp run at a fixed rate."""

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

    @property
    def cpu_us_per_call(self) -> float:
        return round(1e6 * self.cpu_s / self.sent, 1)


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its live descendants."""
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


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Until the server answers OPTIONS 200 on ``port`` (UDP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        answer = udp_exchange(options(), port, timeout=0.2)
        if answer is not None and status_of(answer) == 200:
            return
    raise RuntimeError("server not ready")


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM by PID, then SIGKILL if it does not exit within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(5)


def start_switch(config: Path, data: Path, core: str, log: Path) -> subprocess.Popen[bytes]:
    """``aiguilleur run`` on ``config`` pinned to ``core``, logging warnings to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            ["taskset", "-c", core, sys.executable, "-m", "switch", "run",
             "--config", str(config), "--data-dir", str(data), "--log-level", "warning"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def start_kamailio(
    cfg: Path, port: int, core: str, work: Path, *, shm_mb: int, defines: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """Kamailio with the TLSF allocator (the strongest form of the peer), one core."""
    args = ["taskset", "-c", core, "kamailio", "-f", str(cfg), "-l", f"udp:127.0.0.1:{port}",
            "-DD", "-E", "-x", "tlsf", "-m", str(shm_mb), "-M", "32"]  # fmt: skip
    for define in defines:
        args += ["-A", define]
    args += ["-P", str(work / "kamailio.pid"), "-Y", str(work)]
    with (work / "kamailio.log").open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def sipp(core: str, *args: str) -> list[str]:
    """A SIPp command line on ``core``: UDP, one socket, its own control port."""
    return ["taskset", "-c", core, "sipp", "-t", "u1", "-i", "127.0.0.1",
            "-cp", str(free_port()), "-buff_size", "4194304", "-nostdin", *args]  # fmt: skip


def run_step(
    scenario: Sequence[str],
    target: int,
    rate: int,
    seconds: float,
    *,
    workdir: Path,
    cpu: Callable[[], float],
    core: str,
    recv_timeout_ms: int = 2000,
    drain: float = 0.15,
) -> Step:
    """SIPp ``scenario`` arguments (``-sf FILE``, ``-p PORT``...) at ``rate`` for ``seconds``."""
    count = max(1, int(rate * seconds))
    command = sipp(
        core, *scenario,
        "-r", str(rate), "-m", str(count), "-l", str(max(2000, rate)),
        "-recv_timeout", str(recv_timeout_ms), "-timeout", f"{int(seconds + 12)}s",
        "-timeout_error", "-trace_err", f"127.0.0.1:{target}",
    )  # fmt: skip
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
    sent = counters.get("Outgoing calls created", 0) or count
    # Calls neither successful nor failed when SIPp stopped were lost: count them.
    failed = max(counters.get("Failed call", 0), sent - ok)
    # SIPp's run time includes draining the last answers; the rate it achieved
    # is what it sent over the time it took to send it.
    achieved = sent / max(elapsed - drain, 1e-3)
    return Step(rate, count, ok, failed, min(achieved, float(rate) * 1.5), cpu_used, elapsed)


def search(
    name: str,
    step: Callable[[int], Step],
    *,
    start: int,
    seconds: float,
    budget: float,
    log: Callable[[str], None],
    resolution: int,
    floor: int,
    pause: float = 0.0,
) -> tuple[int, Step | None, bool]:
    """Highest passing rate within ``budget`` seconds: (rate, its step, a failure was seen).

    Stops when the bracket is within ``resolution`` (or 5 %) or the rate would go
    under ``floor``; ``pause`` lets a step's last calls drain before the next.
    """
    deadline = time.monotonic() + budget
    best: Step | None = None
    rate = start
    failed_at: int | None = None
    while time.monotonic() + seconds + 3 + pause < deadline:
        result = step(rate)
        log(
            f"{name}: rate={rate} ok={result.ok}/{result.sent} failed={result.failed} "
            f"achieved={result.achieved:.0f}/s cpu={result.cpu_s:.2f}s pass={result.passed}"
        )
        if result.passed:
            best = result if best is None or result.rate > best.rate else best
            if failed_at is None:
                rate = int(rate * 1.5)
                time.sleep(pause)
                continue
        else:
            failed_at = rate if failed_at is None else min(failed_at, rate)
        low = best.rate if best is not None else 0
        if failed_at - low <= max(resolution, low // 20):
            break
        rate = (low + failed_at) // 2 if low else failed_at // 2
        if rate < floor:
            break
        time.sleep(pause)
    return (best.rate if best else 0), best, failed_at is not None


def missing_tools(need_kamailio: bool) -> str | None:
    """The first tool a benchmark needs that is not installed, with how to get it."""
    for tool in ("sipp", "taskset") + (("kamailio",) if need_kamailio else ()):
        if shutil.which(tool) is None:
            return f"{tool} not found: bash deploy/ensure-debs.sh sip-tester kamailio"
    return None


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
