"""ATP playback load: how many announcement streams one core paces at 20 ms, p99 jitter < 2 ms.

The switch side is this process, pinned to core 0: Aiguilleur's ``MediaRelay``
(on uvloop by default, as in production) with N sessions, each of whose caller
leg plays the same announcement (``ivr.announcements``: a 1 kHz WAV, PCMU by
default) through ``RelayLeg.play``, i.e. the production path: one
``loop.call_at`` timer per stream, ``Player.due`` building the packets, one
``sendto`` each. The N streams start evenly staggered over one 20 ms period,
as calls arriving at random times would be.

The floor, run interleaved with it at every step: the same N streams from the
same process and loop, as bare ``call_at`` timers and ``socket.sendto`` of a
packed header (no player, no relay). What the floor cannot do, the machine
cannot do; the difference is what the switch's own code costs.

The receiver is a child process pinned to core 1 (so it does not steal the
player's core), with eight UDP sockets on 127.0.0.1 (stream i goes to socket
i mod 8: eight kernel buffers rather than one). It takes the arrival time of
every packet from the kernel (``SO_TIMESTAMPNS``), so its own scheduling does
not count as the switch's jitter. On loopback that time is, to within
microseconds, when the sender called ``sendto``.

Figures, per run, over every pair of consecutive packets of every stream
after the first 10 of each (warm-up):

- ``d_us``: RFC 3550 §6.4.1's transit difference |D(i,j)| = |(Rj - Ri) -
  (Sj - Si)|, arrival spacing against RTP timestamp spacing (20 ms here), as
  p50/p99/max in µs.
- ``j_us``: the RFC 3550 interarrival jitter J (J += (|D| - J)/16) at the end of
  each stream, p50/p99 over the streams: what the phones would report in RTCP.
- ``late_us``: lateness against the ideal schedule, arrival - (first + k × 20 ms)
  with the stream's best packet as zero, p99: a player that drifts or bursts
  shows here even when consecutive spacing looks fine.
- ``loss`` (packets not received / sent); ``switch_cpu`` (this process's CPU
  time / wall time while playing) and ``core_busy`` (all of core 0 from
  /proc/stat: softirq and any other process included; far above
  ``switch_cpu`` means something else shared the core).

Each step runs ``--repeat`` times (3) and is judged on its median run (by d_us
p99): a step passes when that run's d_us p99 < 2000 and its loss <= 0.1 %.
``max_streams`` is the largest passing step, ``floor_max_streams`` the same for
the floor. Steps: 50, 100, 200, 400, 800, 1600 (``--steps``), all run unless
the switch saturates (CPU >= 95 % or median |D| >= 10 ms); ``--seconds`` of
audio per run (2 s: 100 packets per stream); the whole bounded by ``--budget``
(150 s). ``cpu_us_per_packet`` (process CPU at the largest step that kept pace)
and its projection to one full core are given as well, and ``timer_stalls``:
how often a 1 ms sleep on core 0 overshoots by more than 2 ms (a virtual
machine waking an idle vCPU late), the noise every pacing here meets.

One JSON line on stdout::

    {"bench": "atp", "codec": "PCMU", "loop": "uvloop", "max_streams": ...,
     "floor_max_streams": ..., "at_max": {"d_us": {"p50":..,"p99":..,"max":..},
     "switch_cpu": .., ...}, "cpu_us_per_packet": .., "projected_streams_one_core": ..,
     "steps": [...], "timer_stalls": {...}, "timestamps": "kernel", ...}

Run: ``.venv/bin/python bench/atp.py`` (two cores for the pinning; traffic only
on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import wave
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.relay import percentile, stop_child  # noqa: E402

HOST = "127.0.0.1"
SWITCH_CORE, RECEIVER_CORE = 0, 1
RELAY_PORTS = (40000, 49999)
RECEIVER_SOCKETS = 8
WARMUP_PACKETS = 10
LEAD_SECONDS = 0.3  # between arming the players and the first packet
JITTER_LIMIT_US = 2000
OVERLOAD_US = 10_000  # median |D| this high: the loop is half a period behind, saturated
LOSS_LIMIT = 0.001
RECEIVER_LIFETIME = 900.0  # an orphaned receiver exits on its own
REPORT_GRACE = 1.0  # for packets still in flight when the switch side has sent its last
PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9}
TICK_NS = 125_000  # one tick of the 8 kHz RTP clock
# Linux: SO_TIMESTAMPNS (and its control message type SCM_TIMESTAMPNS) is 35.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_HEADER = struct.Struct("!HII")  # sequence number, timestamp, SSRC (from byte 2)
_RTP_HEADER = struct.Struct("!BBHII")
_PAYLOAD = bytes(160)
_TIMESPEC = struct.Struct("@qq")


# -------------------------------------------------------------------- receiver


def _stream_stats(
    records: dict[int, list[tuple[int, int, int]]],
) -> tuple[list[int], list[int], list[int], int]:
    """|D| of every consecutive pair, final J per stream, lateness; and packets received."""
    d_all: list[int] = []
    j_final: list[int] = []
    late_all: list[int] = []
    received = 0
    for packets in records.values():
        received += len(packets)
        packets = packets[WARMUP_PACKETS:]
        if len(packets) < 2:
            continue
        jitter = 0.0
        ts0 = packets[0][1]
        ideal = [t - ((ts - ts0) & 0xFFFFFFFF) * TICK_NS for _, ts, t in packets]
        best = min(ideal)
        late_all.extend(i - best for i in ideal)
        for (seq_i, ts_i, t_i), (seq_j, ts_j, t_j) in itertools.pairwise(packets):
            if (seq_j - seq_i) & 0xFFFF != 1:
                continue  # a loss: no pair to compare
            d = abs((t_j - t_i) - ((ts_j - ts_i) & 0xFFFFFFFF) * TICK_NS) // 1000
            d_all.append(d)
            jitter += (d - jitter) / 16
        j_final.append(round(jitter))
    return d_all, j_final, late_all, received


def _receive() -> int:
    """The receiver child: record every packet, report on ``report``, exit at EOF."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {RECEIVER_CORE})
    socks = []
    kernel_time = True
    for _ in range(RECEIVER_SOCKETS):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for option in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            if option is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, 8 << 20)
                break
            except OSError:
                continue  # SO_RCVBUFFORCE needs CAP_NET_ADMIN
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            kernel_time = False
        sock.bind((HOST, 0))
        sock.setblocking(False)
        socks.append(sock)
    print(json.dumps({"ports": [s.getsockname()[1] for s in socks]}), flush=True)
    records: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    ancillary = socket.CMSG_SPACE(_TIMESPEC.size)
    unpack_header, unpack_time = _HEADER.unpack_from, _TIMESPEC.unpack
    clock = time.time_ns

    def drain(sock: socket.socket) -> None:
        nonlocal kernel_time
        recvmsg = sock.recvmsg
        while True:
            try:
                data, anc, _, _ = recvmsg(64, ancillary)
            except BlockingIOError:
                return
            now = clock()
            if len(data) < 12:
                continue
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = unpack_time(cdata[: _TIMESPEC.size])
                    now = sec * 1_000_000_000 + nsec
                    break
            else:
                kernel_time = False
            seq, ts, ssrc = unpack_header(data, 2)
            records[ssrc].append((seq, ts, now))

    by_fd = {sock.fileno(): sock for sock in socks}
    stdin = sys.stdin.fileno()
    deadline = time.monotonic() + RECEIVER_LIFETIME
    while time.monotonic() < deadline:
        ready, _, _ = select.select([*by_fd, stdin], [], [], 1.0)
        for fd in ready:
            if fd != stdin:
                drain(by_fd[fd])
                continue
            command = sys.stdin.readline().split()
            if not command:  # EOF: the switch side is done
                return 0
            if command[0] == "report":
                # ``report N``: N packets were sent; wait for the last ones in
                # flight, up to REPORT_GRACE (what is still missing then is lost).
                expected, grace = int(command[1]), time.monotonic() + REPORT_GRACE
                while True:
                    for sock in socks:
                        drain(sock)
                    arrived = sum(map(len, records.values()))
                    if arrived >= expected or time.monotonic() >= grace:
                        break
                    select.select(socks, [], [], 0.01)
                d, j, late, received = _stream_stats(records)
                report = {
                    "received": received,
                    "streams": len(records),
                    "d_us": {
                        "p50": percentile(d, 0.5),
                        "p99": percentile(d, 0.99),
                        "max": max(d, default=0),
                    },
                    "j_us": {"p50": percentile(j, 0.5), "p99": percentile(j, 0.99)},
                    "late_us": {"p99": percentile(late, 0.99) // 1000},
                    "timestamps": "kernel" if kernel_time else "user",
                }
                records.clear()
                print(json.dumps(report), flush=True)
    return 0


class Receiver:
    """The child process running ``_receive``."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--receive"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ports: list[int] = self._read()["ports"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the receiver exited")
        result: dict[str, Any] = json.loads(line)
        return result

    def report(self, sent: int) -> dict[str, Any]:
        """What arrived since the last report, once ``sent`` packets are in (or a grace)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"report {sent}\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> None:
        stop_child(self.proc)  # the receiver exits at the end of its stdin


# ---------------------------------------------------------------------- switch


def _tone_file(directory: Path, seconds: float) -> Path:
    from media import tone

    path = directory / "atp.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(tone.sine(1000, round(seconds * 1000), 8000))
    return path


class _FloorStream:
    """The floor: one stream as bare timers and ``sendto``, no player, no relay."""

    __slots__ = ("count", "dest", "k", "loop", "on_done", "sock", "ssrc", "start")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        dest: tuple[str, int],
        ssrc: int,
        count: int,
        start: float,
        on_done: Callable[[], None],
    ) -> None:
        self.loop, self.sock, self.dest, self.ssrc = loop, sock, dest, ssrc
        self.count, self.start, self.on_done = count, start, on_done
        self.k = 0
        loop.call_at(start, self.tick)

    def tick(self) -> None:
        k = self.k
        header = _RTP_HEADER.pack(0x80, 0, k & 0xFFFF, k * 160, self.ssrc)
        self.sock.sendto(header + _PAYLOAD, self.dest)
        self.k = k + 1
        if self.k == self.count:
            self.on_done()
        else:
            self.loop.call_at(self.start + self.k * 0.02, self.tick)


def _core_ticks(core: int) -> tuple[int, int]:
    """(busy, total) jiffies of ``core`` from /proc/stat: softirq included.

    The loopback receive path runs in softirq on the sender's core and is not
    always charged to the sending process, so the core, not the process, tells
    whether the switch side is saturated.
    """
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]  # idle + iowait
            return sum(values) - idle, sum(values)
    return 0, 0


def _completion(n: int) -> tuple[asyncio.Future[None], Callable[[], None]]:
    all_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    remaining = n

    def finished() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0 and not all_done.done():
            all_done.set_result(None)

    return all_done, finished


async def _measure(base: float, all_done: asyncio.Future[None], seconds: float) -> dict[str, float]:
    """Wait for every stream to end: this process's CPU share and its core's, from ``base`` on."""
    loop = asyncio.get_running_loop()
    marks: dict[str, Any] = {}

    def mark() -> None:
        marks["cpu"], marks["wall"] = time.process_time(), time.monotonic()
        marks["core"] = _core_ticks(SWITCH_CORE)

    loop.call_at(base, mark)
    await asyncio.wait_for(all_done, LEAD_SECONDS + seconds + 30)
    wall = time.monotonic() - marks["wall"]
    busy, total = _core_ticks(SWITCH_CORE)
    ticks = total - marks["core"][1]
    return {
        "switch_cpu": round((time.process_time() - marks["cpu"]) / wall, 3),
        "core_busy": round((busy - marks["core"][0]) / ticks, 3) if ticks else 0.0,
    }


class _Bench:
    """The switch side: relay sessions and floor sockets, opened once, reused by every step."""

    def __init__(self, args: argparse.Namespace, receiver: Receiver) -> None:
        from ivr.announcements import Announcements
        from media.ports import PortAllocator
        from media.relay import MediaRelay

        self.args = args
        self.receiver = receiver
        with tempfile.TemporaryDirectory(prefix="atp-bench-") as tmp:
            self.announcements = Announcements({"atp": _tone_file(Path(tmp), args.seconds)})
            errors = self.announcements.preload()
        if errors:
            raise RuntimeError(f"cannot load the announcement: {errors}")
        self.frames = len(self.announcements.frames("atp", args.codec))
        self.relay = MediaRelay(address=HOST, ports=PortAllocator(*RELAY_PORTS), rtp_timeout=3600.0)
        self.sessions: list[Any] = []
        self.floor_socks: list[socket.socket] = []

    def _dest(self, i: int) -> tuple[str, int]:
        return HOST, self.receiver.ports[i % len(self.receiver.ports)]

    async def aiguilleur(self, n: int) -> dict[str, Any]:
        """Play the announcement on n relay sessions at once."""
        while len(self.sessions) < n:
            session = await self.relay.open_session(f"atp-{len(self.sessions)}")
            session.a.set_remote(self._dest(len(self.sessions)))
            self.sessions.append(session)
        loop = asyncio.get_running_loop()
        all_done, finished = _completion(n)
        rng = random.Random(n)
        base = loop.time() + LEAD_SECONDS
        for i, session in enumerate(self.sessions[:n]):
            player = self.announcements.player(
                "atp",
                self.args.codec,
                PAYLOAD_TYPES[self.args.codec],
                ssrc=i,
                seq0=rng.randrange(1 << 16),
                ts0=rng.randrange(1 << 32),
                start=base + 0.02 * i / n,
            )
            session.a.play(player, on_done=finished)
        return self._judge(n, await _measure(base, all_done, self.args.seconds))

    async def floor(self, n: int) -> dict[str, Any]:
        """The same streams from bare timers: what this machine allows at all."""
        while len(self.floor_socks) < n:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((HOST, 0))
            self.floor_socks.append(sock)
        loop = asyncio.get_running_loop()
        all_done, finished = _completion(n)
        base = loop.time() + LEAD_SECONDS
        for i, sock in enumerate(self.floor_socks[:n]):
            start = base + 0.02 * i / n
            _FloorStream(loop, sock, self._dest(i), i, self.frames, start, finished)
        return self._judge(n, await _measure(base, all_done, self.args.seconds))

    def _judge(self, n: int, mine: dict[str, Any]) -> dict[str, Any]:
        sent = n * self.frames
        theirs = self.receiver.report(sent)
        result: dict[str, Any] = {"streams": n, **mine, **theirs}
        result["loss"] = round(max(0.0, 1 - theirs["received"] / sent), 5)
        result["passed"] = (
            theirs["d_us"]["p99"] < JITTER_LIMIT_US
            and result["loss"] <= LOSS_LIMIT
            and theirs["streams"] == n
        )
        return result

    async def close(self) -> None:
        await self.relay.close()
        for sock in self.floor_socks:
            sock.close()


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose d_us p99 is the median (the upper one of an even count)."""
    ordered = sorted(runs, key=lambda r: r["d_us"]["p99"])
    return ordered[len(ordered) // 2]


def _timer_stalls(seconds: float = 1.0) -> dict[str, float]:
    """How this core wakes from a 1 ms sleep: the noise floor of any pacing here.

    A virtual machine may take milliseconds to wake an idle vCPU; every stream
    due during such a stall is late, whatever the switch does.
    """
    late: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        before = time.monotonic()
        time.sleep(0.001)
        late.append(time.monotonic() - before - 0.001)
    over = sum(x > JITTER_LIMIT_US / 1e6 for x in late)
    return {
        "wakeups": len(late),
        "over_2ms_per_s": round(over / seconds, 1),
        "max_ms": round(max(late, default=0.0) * 1e3, 2),
    }


async def _run(args: argparse.Namespace, receiver: Receiver, started: float) -> dict[str, Any]:
    bench = _Bench(args, receiver)
    steps: list[dict[str, Any]] = []
    try:
        for n in args.steps:
            if time.monotonic() - started > args.budget:
                break
            runs: dict[str, list[dict[str, Any]]] = {"aiguilleur": [], "floor": []}
            # Interleaved, so both meet the same conditions on the machine.
            for _ in range(args.repeat):
                runs["aiguilleur"].append(await bench.aiguilleur(n))
                if not args.no_floor:
                    runs["floor"].append(await bench.floor(n))
            step: dict[str, Any] = {"streams": n}
            for kind, results in runs.items():
                if not results:
                    continue
                step[kind] = _median_run(results)
                step[kind]["runs_p99_us"] = [r["d_us"]["p99"] for r in results]
                print(f"# atp {kind}: {json.dumps(step[kind])}", file=sys.stderr)
            steps.append(step)
            ours = step["aiguilleur"]
            if ours["switch_cpu"] >= 0.95 or ours["d_us"]["p50"] >= OVERLOAD_US:
                break  # saturated: more streams can only be worse
    finally:
        await bench.close()
    return _summary(steps, bench.frames, args.seconds)


def _summary(steps: list[dict[str, Any]], frames: int, seconds: float) -> dict[str, Any]:
    keys = ("streams", "d_us", "j_us", "late_us", "loss", "switch_cpu", "core_busy")

    def best(kind: str) -> dict[str, Any] | None:
        passed = [s[kind] for s in steps if kind in s and s[kind]["passed"]]
        return max(passed, key=lambda r: r["streams"]) if passed else None

    ours, floor = best("aiguilleur"), best("floor")
    out: dict[str, Any] = {
        "max_streams": ours["streams"] if ours else 0,
        "floor_max_streams": floor["streams"] if floor else (0 if "floor" in steps[0] else None),
        "at_max": {k: ours[k] for k in keys} if ours else None,
    }
    # CPU per packet at the largest step that kept pace (the process's own CPU:
    # the loopback receive path the kernel runs for the receiver is not the
    # switch's cost): meaningful even when the machine's jitter, not CPU, was
    # the limit; the projection is where one core would be saturated.
    paced = [s["aiguilleur"] for s in steps if s["aiguilleur"]["d_us"]["p50"] < OVERLOAD_US]
    last = paced[-1] if paced else None
    if last and last["switch_cpu"] > 0:
        pps = last["streams"] * frames / seconds
        us = last["switch_cpu"] * 1e6 / pps
        out["cpu_us_per_packet"] = round(us, 2)
        out["cpu_measured_at_streams"] = last["streams"]
        out["projected_streams_one_core"] = round(1e6 / us / 50)
    out["timestamps"] = steps[0]["aiguilleur"]["timestamps"] if steps else None
    out["steps"] = [
        {
            "streams": s["streams"],
            **{
                kind: {
                    k: s[kind][k]
                    for k in ("passed", "d_us", "runs_p99_us", "loss", "switch_cpu", "core_busy")
                }
                for kind in ("aiguilleur", "floor")
                if kind in s
            },
        }
        for s in steps
    ]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--receive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--steps",
        type=lambda s: sorted({int(x) for x in s.split(",")}),
        default=[50, 100, 200, 400, 800, 1600],
        help="stream counts to try, comma-separated (default 50,100,200,400,800,1600)",
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per run (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per step (default 3)")
    parser.add_argument("--codec", choices=sorted(PAYLOAD_TYPES), default="PCMU")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--budget", type=float, default=150.0, help="seconds for the whole run")
    parser.add_argument("--no-floor", action="store_true", help="skip the bare-timer baseline")
    args = parser.parse_args()
    if args.receive:
        return _receive()
    if not (0.5 <= args.seconds <= 60 and 1 <= args.repeat <= 9):
        parser.error("--seconds must be 0.5..60 and --repeat 1..9")
    if max(args.steps) > 5000 or min(args.steps) < 1:
        parser.error("--steps must be 1..5000")

    started = time.monotonic()
    pinned = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1
    receiver = Receiver()  # spawned before pinning: it pins itself to the other core
    if pinned:
        os.sched_setaffinity(0, {SWITCH_CORE})
    try:
        stalls = _timer_stalls()
        if args.loop == "uvloop":
            import uvloop

            results = uvloop.run(_run(args, receiver, started))
        else:
            results = asyncio.run(_run(args, receiver, started))
    finally:
        receiver.stop()
    print(
        json.dumps(
            {
                "bench": "atp",
                "codec": args.codec,
                "loop": args.loop,
                "pinned": pinned,
                "seconds_per_run": args.seconds,
                "repeat": args.repeat,
                "criterion": f"median-run p99 |D| < {JITTER_LIMIT_US} us, loss <= {LOSS_LIMIT:.1%}",
                **results,
                "timer_stalls": stalls,
                "seconds": round(time.monotonic() - started, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
