"""REGISTER load: ``aiguilleur run`` against Kamailio's registrar, same run; memory per binding.

Registrations/s. SIPp (``tests/interop/scenarios/uac-register-digest-expect-200.xml``,
UDP, one socket) registers with digest: REGISTER → 401 → REGISTER with MD5
credentials (``[authentication]`` from an injection file) → 200, at stepped
rates, against each server in turn. The users are ``USERS`` lines of a
generated directory (ten companies, domains ``cN.bench.test``, lines 400-499),
all with the password ``benchpw``. Kamailio runs ``bench/kamailio-registrar.cfg``
(``auth`` + ``registrar`` + ``usrloc`` in memory, nonce-count checks on, one
worker, ``-x tlsf``). Both servers are pinned to the same core, SIPp to
another. A step passes when fewer than 1 % of registrations fail and SIPp
reached 95 % of the asked rate; the result is the highest passing rate (x1.5
steps, then bisection), as in ``bench/options.py``.

Memory. The switch is started on data directories holding 0, 10,000 and
100,000 bindings (written through ``SqliteLocationStore``; the switch loads
them into its index at start), and its RSS is read from ``/proc``:
``rss_kb_per_10k_bindings`` and ``bytes_per_binding`` come from the
difference with the empty start.

One JSON line on stdout::

    {"bench": "register", "aiguilleur_rps": ..., "kamailio_rps": ..., "ratio": ...,
     "aiguilleur_cpu_us_per_reg": ..., "kamailio_cpu_us_per_reg": ...,
     "rss_mb_empty": ..., "rss_mb_10k": ..., "rss_mb_100k": ...,
     "rss_kb_per_10k_bindings": ..., "bytes_per_binding": ...}

A "registration" is the whole exchange (two requests, two responses). Bounded
to about four minutes. Run: ``.venv/bin/python bench/register.py`` (needs
sipp, kamailio, taskset).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.sipp import (  # noqa: E402
    Step,
    cpu_seconds,
    log,
    missing_tools,
    rss_kb,
    run_step,
    search,
    start_kamailio,
    start_switch,
    stop,
    wait_ready,
)
from switch.location import SqliteLocationStore, location_db_path  # noqa: E402
from switch.registrar import Binding  # noqa: E402
from switch.sip.auth import ha1  # noqa: E402
from switch.sip.endpoint import Endpoint  # noqa: E402
from tests.sip_support import free_port, write_config  # noqa: E402

SCENARIO = ROOT / "tests" / "interop" / "scenarios" / "uac-register-digest-expect-200.xml"
KAMAILIO_CFG = ROOT / "bench" / "kamailio-registrar.cfg"
PASSWORD = "benchpw"
COMPANIES = 10  # x 100 lines (400-499) = USERS
USERS = COMPANIES * 100
BENCH_SETTINGS = """
registrar:
  keepalive: {interval: 0}
  # SIPp comes from one address: never ban it.
  admission: {allow: [127.0.0.0/8]}
"""


def directory_yaml() -> str:
    """Ten companies of 100 lines each, every line with the password ``benchpw``."""
    out = ["companies:"]
    for c in range(COMPANIES):
        domain = f"c{c}.bench.test"
        first = f"+331400{c:02d}000"
        out += [
            f"  - id: bench-{c}",
            f"    name: Bench {c}",
            f"    domain: {domain}",
            f"    contract: {{id: B-{c}, name: Bench {c}}}",
            f'    main_number: "{first}"',
            "    lines:",
        ]
        for e in range(100):
            ext = str(400 + e)
            out += [
                f"      - extension: {ext}",
                f"        name: Line {ext}",
                f'        direct_number: "+331400{c:02d}0{e:02d}"',
                "        ha1:",
                f"          md5: {ha1(ext, domain, PASSWORD, 'MD5')}",
                f"          sha256: {ha1(ext, domain, PASSWORD, 'SHA-256')}",
                "        device: {model: softphone}",
            ]
    return "\n".join(out) + "\n"


def users_csv(path: Path) -> Path:
    lines = ["SEQUENTIAL"]
    for c in range(COMPANIES):
        for e in range(100):
            ext = 400 + e
            lines.append(
                f"{ext};c{c}.bench.test;[authentication username={ext} password={PASSWORD}]"
            )
    path.write_text("\n".join(lines) + "\n")
    return path


def fill_store(data: Path, count: int) -> None:
    """``count`` bindings (UDP, distinct AORs and source ports) in a fresh data dir."""
    data.mkdir(parents=True, exist_ok=True)
    store = SqliteLocationStore(location_db_path(data), synchronous="OFF")
    at = time.time()
    try:
        batch: list[Binding] = []
        for i in range(count):
            user = f"u{i}"
            port = 10_000 + i % 50_000
            batch.append(
                Binding(
                    aor=f"sip:{user}@c{i % COMPANIES}.bench.test",
                    contact=f"sip:{user}@192.0.2.{i % 250 + 1}:{port};transport=udp",
                    expires_at=at + 3600,
                    call_id=f"{i:08x}-bench@192.0.2.1",
                    cseq=1,
                    source=Endpoint("UDP", f"198.51.100.{i % 250 + 1}", port),
                    received_at=at,
                    user_agent="PolycomVVX-VVX_411-UA/6.3.1.8427",
                )
            )
            if len(batch) == 5000:
                store.apply(batch)
                batch.clear()
        if batch:
            store.apply(batch)
    finally:
        store.close()


def measure_rss(work: Path, config: Path, port: int, count: int, core: str) -> int:
    data = work / f"data-{count}"
    fill_store(data, count)
    proc = start_switch(config, data, core, work / f"aiguilleur-rss-{count}.log")
    try:
        wait_ready(port, proc, timeout=60)
        time.sleep(0.5)  # let the start-up garbage settle
        return rss_kb(proc.pid)
    finally:
        stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.5, help="load per step")
    parser.add_argument("--budget", type=float, default=70.0, help="seconds per server")
    parser.add_argument("--server-core", default="1")
    parser.add_argument("--sipp-core", default="0")
    parser.add_argument("--only", choices=("aiguilleur", "kamailio", "memory"), default=None)
    args = parser.parse_args()
    missing = missing_tools(need_kamailio=args.only in (None, "kamailio"))
    if missing:
        print(missing, file=sys.stderr)
        return 2

    def measure(
        name: str, port: int, proc: subprocess.Popen[bytes], start: int, work: Path, users: Path
    ) -> tuple[int, Step | None, bool]:
        return search(
            name,
            lambda rate: run_step(
                ["-sf", str(SCENARIO), "-inf", str(users), "-p", str(free_port())],
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
            resolution=50,
            floor=20,
        )

    result: dict[str, object] = {"bench": "register", "transport": "udp", "users": USERS}
    with tempfile.TemporaryDirectory(prefix="bench-register-") as tmp:
        work = Path(tmp)
        port, tls_port = free_port(), free_port()
        config = write_config(
            work / "config", sip_port=port, tls_port=tls_port, extra=BENCH_SETTINGS
        )
        (config / "directory.yaml").write_text(directory_yaml())
        users = users_csv(work / "users.csv")
        if args.only in (None, "aiguilleur"):
            proc = start_switch(config, work / "data", args.server_core, work / "aiguilleur.log")
            try:
                wait_ready(port, proc)
                rps, best, bracketed = measure("aiguilleur", port, proc, 200, work, users)
                result["aiguilleur_rss_mb_after_load"] = round(rss_kb(proc.pid) / 1024, 1)
            finally:
                result["aiguilleur_exit"] = stop(proc)
            result["aiguilleur_rps"] = rps
            result["aiguilleur_max_found"] = bracketed
            if best is not None:
                result["aiguilleur_cpu_us_per_reg"] = best.cpu_us_per_call
        if args.only in (None, "kamailio"):
            kport = free_port()
            kam = start_kamailio(KAMAILIO_CFG, kport, args.server_core, work, shm_mb=1024)
            try:
                wait_ready(kport, kam)
                rps, best, bracketed = measure("kamailio", kport, kam, 1000, work, users)
            finally:
                stop(kam)
            result["kamailio_rps"] = rps
            result["kamailio_max_found"] = bracketed
            if best is not None:
                result["kamailio_cpu_us_per_reg"] = best.cpu_us_per_call
        if args.only in (None, "memory"):
            empty = measure_rss(work, config, port, 0, args.server_core)
            rss = {
                n: measure_rss(work, config, port, n, args.server_core) for n in (10_000, 100_000)
            }
            log(f"memory: empty={empty} kB 10k={rss[10_000]} kB 100k={rss[100_000]} kB")
            result["rss_mb_empty"] = round(empty / 1024, 1)
            result["rss_mb_10k"] = round(rss[10_000] / 1024, 1)
            result["rss_mb_100k"] = round(rss[100_000] / 1024, 1)
            result["rss_kb_per_10k_bindings"] = round((rss[100_000] - empty) / 10)
            result["bytes_per_binding"] = round((rss[100_000] - empty) * 1024 / 100_000)
    a, k = result.get("aiguilleur_rps"), result.get("kamailio_rps")
    if isinstance(a, int) and isinstance(k, int) and k:
        result["ratio"] = round(a / k, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
