"""Star-code transactions per second against a running switch.

One transaction is what a phone does when its user dials ``*65*1``: INVITE
(digest-authenticated, the nonce reused with a growing nonce-count as phones
do), the switch stores the setting (SQLite, ``synchronous=FULL``: one fsync),
answers 200, plays the *accepted* tone (0.4 s silence + 0.6 s + 0.2 s: about
1.2 s of RTP), then sends BYE; the UA answers 200. Codes alternate ``*65*1`` /
``*65*0`` per line, so every transaction writes.

The tone makes each transaction last at least ~1.2 s: the rate is
``concurrency / duration`` until the switch saturates, so the figures that tell
the switch's cost are ``setup_ms`` (INVITE to 200: parse, digest, store, answer)
and ``cpu_us_per_tx`` (the switch process's CPU time per transaction, when its
PID is given), not only ``tps``.

``measure(sip_port, ...)`` runs against a switch already listening on
``127.0.0.1:sip_port`` with the example directory (lines 401-405, 601 and their
passwords), bounded by ``count`` transactions and ``seconds``; ``__main__``
starts one (pinned to a core, lines' call limit raised), measures, and prints
one JSON line::

    {"bench": "star_codes", "tps": ..., "completed": ..., "failed": ...,
     "setup_ms_p50": ..., "setup_ms_p90": ..., "total_ms_p50": ...,
     "cpu_us_per_tx": ..., "concurrency": ...}

Run: ``.venv/bin/python bench/star_codes.py [--count 300 --concurrency 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.sipp import cpu_seconds, start_switch, stop, wait_ready  # noqa: E402
from tests.adapter.raw_ua import RawUa  # noqa: E402
from tests.sip_support import free_port, write_config  # noqa: E402

LINES = (
    ("401", "secret401"),
    ("402", "secret402"),
    ("403", "secret403"),
    ("404", "secret404"),
    ("405", "secret405"),
    ("601", "secret601"),
)
CODES = ("*65*1", "*65*0")


class _Sink(asyncio.DatagramProtocol):
    """Where the switch's tone goes (a real socket: nothing sent to a stranger's port)."""


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def _transaction(ua: RawUa, code: str, rtp_port: int) -> tuple[float, float]:
    """One star-code call; (ms to the 200, ms to the switch's BYE)."""
    started = time.perf_counter()
    out = await ua.call(code, rtp_port=rtp_port)
    await out.answered()
    setup = time.perf_counter()
    await out.bye_received()
    done = time.perf_counter()
    return (setup - started) * 1000, (done - started) * 1000


async def _measure(
    sip_port: int, count: int, concurrency: int, seconds: float, pid: int | None
) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    uas = [await RawUa.open(user, password, sip_port) for user, password in LINES]
    sinks = [
        (await loop.create_datagram_endpoint(_Sink, local_addr=("127.0.0.1", 0)))[0]
        for _ in range(concurrency)
    ]
    setups: list[float] = []
    totals: list[float] = []
    failed = 0
    toggles = dict.fromkeys(range(len(uas)), 0)
    try:
        # Warm-up, one per line, in turn: each UA answers its first 407 alone.
        port0 = int(sinks[0].get_extra_info("sockname")[1])
        for ua in uas:
            await _transaction(ua, CODES[1], port0)
        started_cpu = cpu_seconds(pid) if pid is not None else 0.0
        started = time.perf_counter()
        deadline = started + seconds
        issued = 0

        async def worker(index: int) -> None:
            nonlocal issued, failed
            ua_index = index % len(uas)
            port = int(sinks[index].get_extra_info("sockname")[1])
            while issued < count and time.perf_counter() < deadline:
                issued += 1
                code = CODES[toggles[ua_index] % 2]
                toggles[ua_index] += 1
                try:
                    setup, total = await _transaction(uas[ua_index], code, port)
                except (AssertionError, TimeoutError):
                    failed += 1
                    continue
                setups.append(setup)
                totals.append(total)

        async with asyncio.timeout(seconds + 10):
            await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - started_cpu if pid is not None else 0.0
    finally:
        for ua in uas:
            ua.close()
        for sink in sinks:
            sink.close()
    completed = len(totals)
    result = {
        "tps": round(completed / elapsed, 2) if elapsed > 0 else 0.0,
        "completed": float(completed),
        "failed": float(failed),
        "setup_ms_p50": round(_percentile(setups, 0.5), 2),
        "setup_ms_p90": round(_percentile(setups, 0.9), 2),
        "total_ms_p50": round(_percentile(totals, 0.5), 2),
        "concurrency": float(concurrency),
    }
    if pid is not None and completed:
        result["cpu_us_per_tx"] = round(cpu / completed * 1e6, 1)
    return result


def measure(
    sip_port: int,
    *,
    count: int = 200,
    concurrency: int = 20,
    seconds: float = 30.0,
    pid: int | None = None,
) -> dict[str, float]:
    """Star-code transactions against the switch on ``127.0.0.1:sip_port`` (see the
    module docstring); at most ``count`` transactions, ``seconds`` of load (plus a
    warm-up call per line). ``pid``: the switch's, for its CPU time per transaction.

    Each line takes ``concurrency / 6`` calls at once: the switch's lines need a
    call limit that high (``__main__`` raises it). Call it from outside an event loop.
    """
    return asyncio.run(_measure(sip_port, count, concurrency, seconds, pid))


def bench_config(work: Path, port: int) -> Path:
    """config/example on ``port``, every line allowed 1000 calls at once."""
    config = write_config(work / "config", sip_port=port, tls_port=free_port())
    directory = config / "directory.yaml"
    text = directory.read_text(encoding="utf-8").replace("        max_calls: 2\n", "")
    marker = "        device: {model:"
    text = text.replace(marker, "        max_calls: 1000\n" + marker)
    directory.write_text(text, encoding="utf-8")
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--count", type=int, default=300, help="transactions at most")
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=30.0, help="load duration at most")
    parser.add_argument("--server-core", default="1")
    args = parser.parse_args()
    result: dict[str, Any] = {"bench": "star_codes"}
    with tempfile.TemporaryDirectory(prefix="bench-star-") as tmp:
        work = Path(tmp)
        port = free_port()
        config = bench_config(work, port)
        proc = start_switch(config, work / "data", args.server_core, work / "aiguilleur.log")
        try:
            wait_ready(port, proc)
            result.update(
                measure(
                    port,
                    count=args.count,
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    pid=proc.pid,
                )
            )
        finally:
            result["exit"] = stop(proc)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
