"""Calls per second to a service number, against the plain B2BUA, same switch, same run.

Each call is INVITE / 180 / 200 / ACK / BYE / 200 (SDP, no RTP), from SIPp as
the trunk ``carrier`` (127.0.0.1:5090) to a SIPp UAS registered as line 401
(as in ``bench/cps.py``). Two searches on one switch process pinned to one core:

- **plain**: the direct number +33140000401 (trunk in → line 401): the B2BUA alone;
- **service**: ``0800100100``, whose program has a limiter, a calendar (open every
  day), a callers step and a GNR whose target is 401 (SIPp answers at once): the
  routing engine runs on every call, with its CDR trace.

The figure is the ratio service / plain (the routing overhead; the target is ≥ 0.8).
One JSON line on stdout::

    {"bench": "service_cps", "plain_cps": ..., "service_cps": ..., "ratio": ...,
     "plain_cpu_us_per_call": ..., "service_cpu_us_per_call": ..., "cpu_ratio": ...}

Run: ``.venv/bin/python bench/service_cps.py`` (needs sipp and taskset).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cps import (  # noqa: E402
    CALLED,
    TRUNK_PORT,
    bench_config,
    call_step,
    measure,
    register_uas,
    start_uas,
)
from bench.sipp import (  # noqa: E402
    missing_tools,
    start_switch,
    stop,
    wait_ready,
)
from tests.sip_support import free_port  # noqa: E402

SERVICE = "0800100100"

ROUTING = """\
calendars:
  toujours:
    timezone: Europe/Paris
    periods:
      ouvert:
        - days: [mon, tue, wed, thu, fri, sat, sun]
          ranges: ["00:00-24:00"]
programs:
  bench:
    steps:
      - type: calendar
        calendar: toujours
        branches:
          ouvert:
            - type: callers
              branches:
                - nature: [anonymous]
                  steps:
                    - {type: hangup, cause: refused}
              others:
                - type: gnr
                  strategy: sequential
                  targets: ["401"]
                  ring_s: 10
                  rounds: 1
numbers:
  "0800100100":
    program: bench
    limit: 100000
    domain: pbx.test
"""


def service_config(work: Path, port: int) -> Path:
    config = bench_config(work, port)
    routing = config / "routing"
    shutil.rmtree(routing)
    routing.mkdir()
    (routing / "bench.yaml").write_text(ROUTING, encoding="utf-8")
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="load per step")
    parser.add_argument("--budget", type=float, default=80.0, help="seconds per search")
    parser.add_argument("--server-core", default="1")
    parser.add_argument("--sipp-core", default="0")
    args = parser.parse_args()
    missing = missing_tools(need_kamailio=False)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    result: dict[str, object] = {"bench": "service_cps", "transport": "udp", "rtp": False}
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        work = Path(tmp)
        port = free_port()
        config = service_config(work, port)
        proc = start_switch(config, work / "data", args.server_core, work / "aiguilleur.log")
        uas = None
        try:
            wait_ready(port, proc)
            uas_port = free_port()
            register_uas(args.sipp_core, port, uas_port, work)
            uas = start_uas(args.sipp_core, uas_port, work)
            time.sleep(0.5)  # the UAS process binds its port; nothing to poll on it
            for name, called in (("plain", CALLED), ("service", SERVICE)):
                rate, best, bracketed = measure(
                    name,
                    functools.partial(
                        call_step,
                        port,
                        seconds=args.seconds,
                        work=work,
                        pid=proc.pid,
                        core=args.sipp_core,
                        uac_port=TRUNK_PORT,
                        called=called,
                    ),
                    100,
                    args.seconds,
                    args.budget,
                )
                result[f"{name}_cps"] = rate
                result[f"{name}_max_found"] = bracketed
                if best is not None:
                    result[f"{name}_cpu_us_per_call"] = best.cpu_us_per_call
        finally:
            if uas is not None:
                stop(uas)
            result["exit"] = stop(proc)
    plain, service = result.get("plain_cps"), result.get("service_cps")
    if isinstance(plain, int) and isinstance(service, int) and plain:
        result["ratio"] = round(service / plain, 3)
    pc, sc = result.get("plain_cpu_us_per_call"), result.get("service_cpu_us_per_call")
    if isinstance(pc, float) and isinstance(sc, float) and sc:
        result["cpu_ratio"] = round(pc / sc, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
