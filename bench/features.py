"""Feature figures: BLF NOTIFY fan-out (and, later, star-code transactions per second).

**BLF fan-out.** ``aiguilleur run`` in its own process (pinned to ``--server-core``);
in this process, on 127.0.0.1/UDP: 100 raw subscribers watching line 402
(``SUBSCRIBE Event: dialog``, digest answered, every NOTIFY answered 200), line
402 registered by a raw UA that rings (180) on every INVITE, and line 401 calling
402. Each round: 401 calls 402, the callee sends its 180 (the state change,
time-stamped just before the send), every subscriber time-stamps the arrival of
its first NOTIFY showing that call's dialog ``early``; then 401 CANCELs and the
round ends once every subscriber has seen the dialog ``terminated`` (so no NOTIFY
is in flight when the next round starts). The latency of a NOTIFY is its arrival
minus the 180's send: parsing, the B2BUA, the NOTIFY fan-out, 100 datagrams, and
this process's own receive path. Bounded: ``--rounds`` rounds, ``--budget``
seconds in all.

One JSON line on stdout::

    {"bench": "features", "blf_subscribers": 100, "blf_changes": 20,
     "blf_notifies": 2000, "blf_fanout_p50_ms": ..., "blf_fanout_p99_ms": ...,
     "blf_fanout_max_ms": ..., "star_codes_tps": ..., "star_codes_...": ...}

The ``star_codes_*`` figures come from ``bench/star_codes.py`` (``measure()``), run
on a second switch of its own (every line allowed enough calls at once).

Run: ``.venv/bin/python -m bench.features`` (needs taskset).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import star_codes  # noqa: E402
from bench.sipp import start_switch, stop, wait_ready  # noqa: E402
from switch.sip.message import Request  # noqa: E402
from tests.adapter.blf_watcher import Watcher  # noqa: E402
from tests.adapter.raw_ua import RawUa  # noqa: E402
from tests.sip_support import free_port, write_config  # noqa: E402

EXTRA = (
    "registrar:\n  keepalive: {interval: 0}\n"
    "media:\n  address: 127.0.0.1\n  rtp_ports: [44000, 44999]\n  rtp_timeout: 30\n"
    "calls:\n  ring_timeout: 30\n  max_duration: 3600\n"
)


def star_codes_figures(work: Path, server_core: str, seconds: float) -> dict[str, Any]:
    """Star-code transactions per second (``bench.star_codes.measure``) on a switch of
    their own, the figures prefixed ``star_codes_`` (``tps`` kept as it is)."""
    port = free_port()
    config = star_codes.bench_config(work, port)
    proc = start_switch(config, work / "data", server_core, work / "aiguilleur.log")
    try:
        wait_ready(port, proc)
        figures = star_codes.measure(port, count=300, concurrency=30, seconds=seconds, pid=proc.pid)
    finally:
        exit_code = stop(proc)
    out: dict[str, Any] = {
        (k if k.startswith("star_codes_") else f"star_codes_{k}"): v for k, v in figures.items()
    }
    out["star_codes_exit"] = exit_code
    return out


class TimedWatcher(Watcher):
    """A watcher that time-stamps the first NOTIFY showing a dialog in a given state."""

    def __init__(self, user: str, password: str, sip_port: int, domain: str = "pbx.test") -> None:
        super().__init__(user, password, sip_port, domain)
        self.looking_for: tuple[bytes, bytes] | None = None  # (b'call-id="..."' or b"", state)
        self.seen_at: float | None = None
        self.seen = asyncio.Event()

    def _on_request(self, request: Request) -> None:
        wanted = self.looking_for
        if request.method == "NOTIFY" and wanted is not None and self.seen_at is None:
            body = request.body
            call_id, state = wanted
            at = body.find(call_id)
            if at >= 0 and body.find(state, at) >= 0:
                self.seen_at = time.perf_counter()
                self.seen.set()
        super()._on_request(request)

    def look_for(self, state: str, call_id: str = "") -> None:
        """From now on: the first NOTIFY with a dialog (``call_id``'s, if given) in ``state``."""
        self.looking_for = (
            f'call-id="{call_id}"'.encode() if call_id else b"",
            f">{state}<".encode(),
        )
        self.seen_at = None
        self.seen.clear()


class RingingLine(RawUa):
    """Line 402: rings on every INVITE, time-stamping the 180 it sends."""

    def __init__(self, user: str, password: str, sip_port: int, domain: str = "pbx.test") -> None:
        super().__init__(user, password, sip_port, domain)
        self.answer = 180
        self.rang_at: dict[str, float] = {}

    def reply(self, request: Request, status: int, reason: str = "OK", **kw: Any) -> None:
        if status == 180 and request.call_id not in self.rang_at:
            self.rang_at[request.call_id] = time.perf_counter()
        super().reply(request, status, reason, **kw)


async def fan_out(port: int, subscribers: int, rounds: int, deadline: float) -> dict[str, Any]:
    watchers: list[TimedWatcher] = []
    caller = await RawUa.open("401", "secret401", port)
    callee = await RingingLine.open("402", "secret402", port)
    assert isinstance(callee, RingingLine)
    latencies: list[float] = []
    try:
        await callee.register()
        for _ in range(subscribers):
            watcher = await TimedWatcher.open("403", "secret403", port)
            assert isinstance(watcher, TimedWatcher)
            watchers.append(watcher)
            sub, ok = await watcher.subscribe("402", expires=3600)
            if ok.status != 200:
                raise RuntimeError(f"SUBSCRIBE answered {ok.status}")
            await watcher.notify(sub.call_id)  # the idle document
        changes = 0
        for _ in range(rounds):
            if time.monotonic() > deadline:
                break
            # Between rounds no dialog is early: any early one is this round's call.
            for watcher in watchers:
                watcher.look_for("early")
            out = await caller.call("402")
            await out.ringing()
            b_call_id = list(callee.incoming)[-1]
            rang = callee.rang_at[b_call_id]
            await _all_seen(watchers, deadline)
            latencies.extend((w.seen_at or rang) - rang for w in watchers)
            changes += 1
            for watcher in watchers:
                watcher.look_for("terminated", b_call_id)
            await out.cancel()
            await _all_seen(watchers, deadline)
            for watcher in watchers:
                watcher.notifies.clear()
    finally:
        for ua in (caller, callee, *watchers):
            ua.close()
    ms = sorted(1000 * x for x in latencies)
    return {
        "blf_subscribers": subscribers,
        "blf_changes": changes,
        "blf_notifies": len(ms),
        "blf_fanout_p50_ms": round(statistics.median(ms), 2) if ms else None,
        "blf_fanout_p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2) if ms else None,
        "blf_fanout_max_ms": round(ms[-1], 2) if ms else None,
    }


async def _all_seen(watchers: list[TimedWatcher], deadline: float) -> None:
    async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
        for watcher in watchers:
            await watcher.seen.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds in all")
    parser.add_argument("--server-core", default="1")
    args = parser.parse_args()
    if shutil.which("taskset") is None:
        print("taskset is missing (util-linux)", file=sys.stderr)
        return 2
    result: dict[str, Any] = {"bench": "features"}
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        work = Path(tmp)
        port = free_port()
        config = write_config(work / "config", sip_port=port, tls_port=free_port(), extra=EXTRA)
        proc = start_switch(config, work / "data", args.server_core, work / "aiguilleur.log")
        try:
            wait_ready(port, proc)
            deadline = time.monotonic() + args.budget
            result.update(asyncio.run(fan_out(port, args.subscribers, args.rounds, deadline)))
        finally:
            result["exit"] = stop(proc)
    with tempfile.TemporaryDirectory(prefix="bench-features-star-") as tmp:
        result.update(star_codes_figures(Path(tmp), args.server_core, seconds=30.0))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
