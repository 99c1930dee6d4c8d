"""CPU per call of the trunk-in call path, in process, without SIPp: deterministic.

The same call as ``bench/cps.py`` (trunk ``carrier`` → direct number of line 401
→ its registered binding: INVITE / 180 / 200 / ACK / BYE / 200, SDP on both
legs, one relay session, one CDR row), driven through the real ``Server`` of
``aiguilleur run``: every datagram goes in through the transport's receiving
entry point (the ban gate, then the stack) exactly as a UDP datagram would,
and what the switch sends is captured at the transport's UDP ``sendto`` instead
of leaving the process. So the figure is the switch's own Python path per call:
parse, transactions, dialogs, the call core, SDP, relay session (real sockets),
CDR commit (real SQLite); not the SIP ``sendto``/``recvmsg`` system calls, and
not the peers' work.

Calls run one after the other (``--calls`` of them, after ``--warmup``); only
the switch's work is timed (process CPU time from a message's delivery until
the switch has sent what it answers), not the building of the peers' messages.
One JSON line on stdout::

    {"bench": "call_path", "us_per_call": ..., "us_per_message": ...,
     "us_per_input": {"INVITE": ..., "180": ..., "200/INVITE": ..., ...}, ...}

``us_per_message`` divides by the 13 messages a call takes through the switch
(6 in, 7 out: the 100 Trying to the trunk included); ``us_per_input`` splits
the call by the message delivered (with what it makes the switch do). ``--profile FILE`` writes
a cProfile of the timed calls. Needs no free 5090 port (nothing is sent).

CPU time moves by 10-30 % with whatever else runs on the machine; instructions
do not. For A/B comparisons, count them with callgrind (about 20 s for 100
calls; the count includes the building of the peers' messages, the same in A
and B)::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=cg.out \
        .venv/bin/python bench/call_path.py --calls 100 --callgrind
    callgrind_annotate cg.out | grep TOTALS   # divided by --calls: instructions per call

Run: ``.venv/bin/python bench/call_path.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.cps import CALLED, bench_config  # noqa: E402
from switch.app import Server, loop_factory  # noqa: E402
from switch.log import configure_logging  # noqa: E402
from switch.settings import load_settings  # noqa: E402
from switch.sip.auth import answer_challenge, parse_challenge  # noqa: E402
from switch.sip.endpoint import Endpoint  # noqa: E402
from tests.sip_support import free_port  # noqa: E402

TRUNK = Endpoint("UDP", "127.0.0.1", 5090)  # the trunk `carrier` of config/example
UAS = Endpoint("UDP", "127.0.0.1", 40401)  # line 401's phone (never bound: nothing is sent)
MESSAGES_PER_CALL = 13
SDP = (
    "v=0\r\no={user} 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
)


def _header(data: bytes, name: str) -> str:
    match = re.search(rb"\r\n" + name.encode() + rb"[ \t]*:[ \t]*([^\r\n]*)", data, re.I)
    assert match is not None, (name, data[:300])
    return match.group(1).decode()


def _headers(data: bytes, name: str) -> list[str]:
    return [
        m.decode() for m in re.findall(rb"\r\n" + name.encode() + rb"[ \t]*:[ \t]*([^\r\n]*)", data)
    ]


def _response(request: bytes, status: str, to_tag: str, extra: str = "", body: str = "") -> bytes:
    """A UAS's response to ``request`` (RFC 3261 §8.2.6: Via, From, To, Call-ID, CSeq)."""
    to = _header(request, "To")
    if ";tag=" not in to:
        to += f";tag={to_tag}"
    vias = "".join(f"Via: {v}\r\n" for v in _headers(request, "Via"))
    rrs = "".join(f"Record-Route: {v}\r\n" for v in _headers(request, "Record-Route"))
    return (
        f"SIP/2.0 {status}\r\n{vias}{rrs}From: {_header(request, 'From')}\r\nTo: {to}\r\n"
        f"Call-ID: {_header(request, 'Call-ID')}\r\nCSeq: {_header(request, 'CSeq')}\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


class Bench:
    """The switch in this process, its input entry point and its captured output."""

    def __init__(self, server: Server) -> None:
        assert server.stack is not None
        self.server = server
        self.stack = server.stack
        self.entry = server.stack.transport.user
        self.sent: list[tuple[bytes, Endpoint]] = []
        self.cpu = 0.0
        self.steps: dict[str, float] = {}  # CPU time per message kind delivered
        self.port = server.stack.transport.port_of("UDP")
        # Captured where the UDP datagram would be handed to the kernel.
        transport: Any = server.stack.transport
        transport._send_udp = lambda data, dest: self.sent.append((data, dest))

    async def deliver(self, data: bytes, source: Endpoint, expect: int) -> list[bytes]:
        """Hand ``data`` to the switch and run the loop until it has sent ``expect``
        datagrams (the setup task of an INVITE runs on the loop); the switch's CPU time
        is added to ``cpu``."""
        sent = self.sent
        sent.clear()
        t0 = time.process_time()
        self.entry.datagram_received(data, source)
        for _ in range(1000):
            if len(sent) >= expect:
                break
            await asyncio.sleep(0)
        spent = time.process_time() - t0
        self.cpu += spent
        first = data[: data.index(b"\r")].decode()
        kind = first.split(" ")[0] if not first.startswith("SIP/") else first[8:11]
        if kind == "200":
            kind += "/" + _header(data, "CSeq").split()[-1]
        self.steps[kind] = self.steps.get(kind, 0.0) + spent
        if len(sent) < expect:
            raise RuntimeError(f"expected {expect} datagrams, got {[d[:40] for d, _ in sent]}")
        return [d for d, _ in sent]

    async def register(self) -> None:
        """REGISTER line 401 from ``UAS`` (digest), as bench/cps.py's UAS does."""
        contact = f"<sip:401@{UAS.host}:{UAS.port}>"

        def register(cseq: int, extra: str = "") -> bytes:
            return (
                f"REGISTER sip:pbx.test SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {UAS.host}:{UAS.port};branch=z9hG4bK-reg{cseq}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:401@pbx.test>;tag=reg\r\n"
                f"To: <sip:401@pbx.test>\r\nCall-ID: bench-register\r\n"
                f"CSeq: {cseq} REGISTER\r\nContact: {contact}\r\nExpires: 3600\r\n"
                f"{extra}Content-Length: 0\r\n\r\n"
            ).encode()

        (challenge,) = await self.deliver(register(1), UAS, 1)
        assert challenge.startswith(b"SIP/2.0 401"), challenge[:80]
        authorization = answer_challenge(
            parse_challenge(_header(challenge, "WWW-Authenticate")),
            username="401",
            password="secret401",
            method="REGISTER",
            uri="sip:pbx.test",
            cnonce="bench",
        )
        (ok,) = await self.deliver(register(2, f"Authorization: {authorization}\r\n"), UAS, 1)
        assert ok.startswith(b"SIP/2.0 200"), ok[:80]

    async def call(self, n: int) -> None:
        """One call as SIPp's UAC (the trunk) and built-in UAS (line 401) make it."""
        host, port = "127.0.0.1", self.port
        call_id = f"{n}-bench@127.0.0.1"
        a_from = f"<sip:+33612345678@127.0.0.1:5090>;tag=a{n}"
        sdp_a = SDP.format(user="carrier", port=6000)

        def a_request(
            method: str, uri: str, cseq: int, to: str, branch: str, body: str = ""
        ) -> str:
            ctype = "Content-Type: application/sdp\r\n" if body else ""
            return (
                f"{method} {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-{branch}{n};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: {a_from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
                f"CSeq: {cseq} {method}\r\nContact: <sip:carrier@127.0.0.1:5090>\r\n"
                f"{ctype}Content-Length: {len(body)}\r\n\r\n{body}"
            )

        invite = a_request(
            "INVITE", f"sip:{CALLED}@{host}:{port}", 1, f"<sip:{CALLED}@{host}:{port}>", "i", sdp_a
        )
        # INVITE in: 100 Trying to the trunk, INVITE to the phone.
        out = await self.deliver(invite.encode(), TRUNK, 2)
        b_invite = next(d for d in out if d.startswith(b"INVITE "))
        b_tag = f"b{n}"
        contact = f"Contact: <sip:401@{UAS.host}:{UAS.port}>\r\n"
        await self.deliver(_response(b_invite, "180 Ringing", b_tag, contact), UAS, 1)
        sdp_b = SDP.format(user="uas", port=7000)
        ctype = "Content-Type: application/sdp\r\n"
        # B's 200: ACKed to the phone at once, relayed to the trunk.
        out = await self.deliver(
            _response(b_invite, "200 OK", b_tag, contact + ctype, sdp_b), UAS, 2
        )
        ok = next(d for d in out if d.startswith(b"SIP/2.0 200"))
        a_to = _header(ok, "To")
        a_contact = _header(ok, "Contact").strip("<>")
        await self.deliver(a_request("ACK", a_contact, 1, a_to, "a").encode(), TRUNK, 0)
        out = await self.deliver(a_request("BYE", a_contact, 2, a_to, "b").encode(), TRUNK, 1)
        b_bye = next(d for d in out if d.startswith(b"BYE "))
        await self.deliver(_response(b_bye, "200 OK", b_tag), UAS, 2 - len(out))


async def run(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-call-path-") as tmp:
        work = Path(tmp)
        config = bench_config(work, free_port())
        settings = load_settings(config)
        server = Server(settings, work / "data", tune_gc=True)
        serving = asyncio.ensure_future(server.serve())
        await asyncio.wait_for(server.ready.wait(), 15)
        bench = Bench(server)
        try:
            await bench.register()
            for n in range(args.warmup):
                await bench.call(n)
            bench.cpu = 0.0
            bench.steps.clear()
            gc.collect()
            if args.callgrind:
                _callgrind("on")
            profile = cProfile.Profile() if args.profile else None
            if profile is not None:
                profile.enable()
            for n in range(args.warmup, args.warmup + args.calls):
                await bench.call(n)
            if args.callgrind:
                _callgrind("off")
            if profile is not None:
                profile.disable()
                profile.dump_stats(args.profile)
            cdr_rows = _cdr_rows(server)
        finally:
            server.should_exit.set()
            server.force_exit.set()
            status = await serving
    us = 1e6 * bench.cpu / args.calls
    return {
        "bench": "call_path",
        "us_per_call": round(us, 1),
        "us_per_message": round(us / MESSAGES_PER_CALL, 1),
        "calls": args.calls,
        "us_per_input": {k: round(1e6 * v / args.calls, 1) for k, v in bench.steps.items()},
        "cdr_rows": cdr_rows,
        "exit": status,
        "profiled": bool(args.profile),
    }


def _callgrind(state: str) -> None:
    """Instrumentation on or off when running under ``valgrind --tool=callgrind
    --instr-atstart=no``: instructions counted for the timed calls only."""
    subprocess.run(["callgrind_control", "-i", state, str(os.getpid())], check=True)


def _cdr_rows(server: Server) -> int | None:
    cdr = server.b2bua.cdr if server.b2bua is not None else None
    if cdr is None:
        return None
    return len(cdr.rows())


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--profile", default=None, help="write a cProfile of the timed calls")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="under valgrind --tool=callgrind --instr-atstart=no: count the timed calls only",
    )
    args = parser.parse_args()
    configure_logging("warning")
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        result = runner.run(run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
