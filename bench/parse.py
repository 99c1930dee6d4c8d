"""Parse + serialise throughput of ``switch.sip.parser`` on a typical message mix.

Single core, bounded in time (about 5 s by default), one JSON line on stdout::

    {"bench": "parse", "msgs_per_s": ..., "parse_us": ..., "serialize_us": ...}

``msgs_per_s`` counts one parse plus one ``to_bytes()`` per message. The mix is
the corpus of ``tests/unit/corpus`` weighted like a call: INVITE, 180, 200, ACK,
BYE and its 200, REGISTER and its 401. Run: ``.venv/bin/python -m bench.parse``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from switch.sip.message import Request, Response
from switch.sip.parser import parse_message

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "unit" / "corpus"

# (file, weight): one call set-up and tear-down plus a registration refresh.
MIX = (
    ("invite_sdp.sip", 1),
    ("ringing_compact.sip", 1),
    ("ok_record_route.sip", 2),  # 200 to INVITE, 200 to BYE (shape alike)
    ("ack.sip", 1),
    ("bye.sip", 1),
    ("register_digest.sip", 1),
    ("unauthorized.sip", 1),
)


def load_mix() -> list[bytes]:
    out: list[bytes] = []
    for name, weight in MIX:
        out.extend([(CORPUS / name).read_bytes()] * weight)
    return out


def run(seconds: float) -> dict[str, object]:
    mix = load_mix()
    for data in mix:  # warm caches (header names) and check the mix parses
        parse_message(data)
    parsed: list[Request | Response] = []
    n = 0
    parse_time = 0.0
    deadline = time.perf_counter() + seconds / 2
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        parsed = [parse_message(data) for data in mix]
        parse_time += time.perf_counter() - t0
        n += len(mix)
    m = 0
    ser_time = 0.0
    deadline = time.perf_counter() + seconds / 2
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for msg in parsed:
            msg.to_bytes()
        ser_time += time.perf_counter() - t0
        m += len(parsed)
    parse_us = parse_time / n * 1e6
    serialize_us = ser_time / m * 1e6
    return {
        "bench": "parse",
        "msgs_per_s": round(1e6 / (parse_us + serialize_us)),
        "parse_us": round(parse_us, 2),
        "serialize_us": round(serialize_us, 2),
        "mix": len(mix),
        "avg_bytes": round(sum(map(len, mix)) / len(mix)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    print(json.dumps(run(args.seconds)))


if __name__ == "__main__":
    main()
