"""RTP relay load: Aiguilleur's ``MediaRelay`` against rtpengine and a bare asyncio forwarder.

Three relays are measured in turn, each pinned to core 0 with taskset:

- ``aiguilleur``: ``media.relay.MediaRelay`` on uvloop (latching, counters, taps:
  the production fast path, without SRTP);
- ``forwarder``: the floor of Python + uvloop: one ``DatagramProtocol`` per
  socket, ``sendto`` to a fixed address, nothing else (what the relay's own
  logic costs is the difference);
- ``rtpengine``: Debian's ``rtpengine-daemon`` in userspace (``--table=-1``,
  one worker thread), sessions created through its ng control protocol
  (bencode over UDP, the tiny client below), when the binary is installed.

The load generator is this process, pinned to core 1: G.711 20 ms streams,
each call two directions of 50 packets/s (100 pps per call), all streams
evenly staggered over the 20 ms. All caller legs share one generator socket and
all callee legs another (the relay latches each leg on that address: it is the
address in the leg's "SDP"). Each packet carries its stream, sequence number and
``CLOCK_MONOTONIC`` send time in the payload: one-way added latency is
receive time minus send time (loopback, so it is the relay's queueing and
processing plus two kernel hops).

Search: calls step up geometrically (x2) from 100 while loss stays at or below
0.1 % and the relay's CPU is below 98 %; then three bisection steps between the
last pass and the first failure. A step sends for 2.5 s after 0.5 s of warm-up
and drains for 0.3 s. When the generator cannot reach 95 % of the asked rate the
step is reported as ``generator_limited`` and the search stops there (the
result is then a lower bound). Latency p50/p99 are reported at 100 calls and at
the highest passing step. Total time bounded to about 3 minutes.

One JSON line on stdout::

    {"bench": "relay", "aiguilleur": {"max_calls": ..., "max_pps": ...,
     "cpu_us_per_packet": ..., "latency_us_100_calls": {"p50":..,"p99":..}, ...},
     "forwarder": {...}, "rtpengine": {...}, "ratio_vs_rtpengine": ...,
     "ratio_vs_forwarder": ...}

Run: ``.venv/bin/python bench/relay.py`` (needs taskset; rtpengine optional).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLK_TCK = os.sysconf("SC_CLK_TCK")
RELAY_CORE, GENERATOR_CORE = 0, 1
HOST = "127.0.0.1"
FRAME = 160
PPS_PER_CALL = 100
STEP_SECONDS = 2.5
WARMUP_SECONDS = 0.5
DRAIN_SECONDS = 0.3
LOSS_LIMIT = 0.001
FIRST_STEP = 100
MAX_CALLS = 3000
RELAY_PORTS = (30000, 59999)
RTPENGINE_PORTS = (16000, 29999)  # 4 ports per call: room for MAX_CALLS
BUDGET_SECONDS = 170.0
_HDR = struct.Struct("!BBHII")
_STAMP = struct.Struct("!IQ")  # stream index, send time (ns)


# --------------------------------------------------------------------- servers


async def _serve(kind: str) -> None:
    """A relay child: reads ``open N A_HOST A_PORT B_HOST B_PORT`` lines, answers ports."""
    from media.ports import PortAllocator
    from media.relay import MediaRelay

    loop = asyncio.get_running_loop()
    relay = MediaRelay(ports=PortAllocator(*RELAY_PORTS))
    keep: list[Any] = []
    forward_ports = iter(range(RELAY_PORTS[0], RELAY_PORTS[1], 2))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    count = 0
    while line := await reader.readline():
        _, n, a_host, a_port, b_host, b_port = line.split()
        a = (a_host.decode(), int(a_port))
        b = (b_host.decode(), int(b_port))
        pairs = []
        for _ in range(int(n)):
            if kind == "aiguilleur":
                session = await relay.open_session(f"c{count}")
                session.a.set_remote(a)
                session.b.set_remote(b)
                pairs.append((session.a.rtp_port, session.b.rtp_port))
            else:
                pa, pb = await _forwarder_pair(loop, forward_ports, a, b, keep)
                pairs.append((pa, pb))
            count += 1
        sys.stdout.write(json.dumps(pairs) + "\n")
        sys.stdout.flush()
    await relay.close()


class _Forward(asyncio.DatagramProtocol):
    """The baseline: what arrives is sent out of the peer socket to a fixed address."""

    __slots__ = ("dest", "peer", "transport")

    def __init__(self, dest: tuple[str, int]) -> None:
        self.dest = dest
        self.peer: _Forward | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        peer = self.peer
        if peer is not None:
            peer.transport.sendto(data, peer.dest)


async def _forwarder_pair(
    loop: asyncio.AbstractEventLoop,
    ports: Any,
    a: tuple[str, int],
    b: tuple[str, int],
    keep: list[Any],
) -> tuple[int, int]:
    legs = []
    for dest in (a, b):
        while True:
            port = next(ports)
            try:
                transport, proto = await loop.create_datagram_endpoint(
                    functools.partial(_Forward, dest), local_addr=(HOST, port)
                )
            except OSError:
                continue
            break
        keep.append(transport)
        legs.append((port, proto))
    (pa, fa), (pb, fb) = legs
    fa.peer, fb.peer = fb, fa
    return pa, pb


class PythonRelay:
    """A child process running ``_serve`` (aiguilleur or forwarder) on RELAY_CORE."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(RELAY_CORE), sys.executable, __file__, "--serve", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid

    def open(self, n: int, a: tuple[str, int], b: tuple[str, int]) -> list[tuple[int, int]]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(f"open {n} {a[0]} {a[1]} {b[0]} {b[1]}\n")
        self.proc.stdin.flush()
        return [(int(pa), int(pb)) for pa, pb in json.loads(self.proc.stdout.readline())]

    def stop(self) -> None:
        stop_child(self.proc)


def stop_child(proc: subprocess.Popen[str]) -> None:
    """End a child that exits at the end of its stdin: close it, wait; kill after 10 s."""
    if proc.poll() is None:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------- rtpengine ng client


def bencode(value: Any) -> bytes:
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    def parse(i: int) -> tuple[Any, int]:
        c = data[i : i + 1]
        if c == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1 : end]), end + 1
        if c in (b"l", b"d"):
            i += 1
            items = []
            while data[i : i + 1] != b"e":
                item, i = parse(i)
                items.append(item)
            if c == b"l":
                return items, i + 1
            return {items[k].decode(): items[k + 1] for k in range(0, len(items), 2)}, i + 1
        colon = data.index(b":", i)
        length = int(data[i:colon])
        return data[colon + 1 : colon + 1 + length], colon + 1 + length

    return parse(0)[0]


class NgClient:
    """rtpengine's ng protocol: ``<cookie> <bencoded dict>`` request/response over UDP."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((HOST, port))
        self.sock.settimeout(2.0)
        self.n = 0

    def command(self, **fields: Any) -> dict[str, Any]:
        self.n += 1
        cookie = f"c{os.getpid()}_{self.n}".encode()
        self.sock.send(cookie + b" " + bencode(fields))
        while True:
            reply = self.sock.recv(65536)
            got, _, body = reply.partition(b" ")
            if got == cookie:
                result: dict[str, Any] = bdecode(body)
                return result

    def close(self) -> None:
        self.sock.close()


def _sdp(port: int) -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )


def _sdp_port(sdp: bytes) -> int:
    match = re.search(rb"m=audio (\d+)", sdp)
    assert match is not None, sdp
    return int(match.group(1))


class Rtpengine:
    def __init__(self, workdir: Path) -> None:
        self.ng_port = _free_udp_port()
        self.log = (workdir / "rtpengine.log").open("wb")
        self.proc = subprocess.Popen(
            [
                "taskset",
                "-c",
                str(RELAY_CORE),
                shutil.which("rtpengine") or "rtpengine",
                "--config-file=none",
                "--foreground",
                "--log-stderr",
                "--log-level=3",
                "--table=-1",
                f"--interface={HOST}",
                f"--listen-ng={HOST}:{self.ng_port}",
                f"--port-min={RTPENGINE_PORTS[0]}",
                f"--port-max={RTPENGINE_PORTS[1]}",
                "--num-threads=1",
                f"--pidfile={workdir / 'rtpengine.pid'}",
            ],
            stdout=self.log,
            stderr=self.log,
        )
        self.pid = self.proc.pid
        self.ng = NgClient(self.ng_port)
        self.calls = 0
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.ng.command(command="ping").get("result") == b"pong":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("rtpengine did not answer ping")
            time.sleep(0.1)

    def open(self, n: int, a: tuple[str, int], b: tuple[str, int]) -> list[tuple[int, int]]:
        pairs = []
        for _ in range(n):
            call = f"bench-{self.calls}"
            self.calls += 1
            offer = self.ng.command(
                command="offer", **{"call-id": call, "from-tag": "a", "sdp": _sdp(a[1])}
            )
            answer = self.ng.command(
                command="answer",
                **{"call-id": call, "from-tag": "a", "to-tag": "b", "sdp": _sdp(b[1])},
            )
            if offer.get("result") != b"ok" or answer.get("result") != b"ok":
                raise RuntimeError(f"rtpengine refused: {offer!r} {answer!r}")
            # The offer's SDP goes to B: its port is where B sends; the answer's to A.
            pairs.append((_sdp_port(answer["sdp"]), _sdp_port(offer["sdp"])))
        return pairs

    def stop(self) -> None:
        self.ng.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


# ------------------------------------------------------------------ generator


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    return sock


def percentile(values: list[int], q: float) -> int:
    """The ``q`` quantile (0..1) of ``values`` by rank; 0 when there are none."""
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_step(
    relay_pid: int,
    pairs: list[tuple[int, int]],
    socks: tuple[socket.socket, socket.socket],
) -> dict[str, Any]:
    """Send 2 x len(pairs) streams for WARMUP + STEP seconds; count what comes back."""
    sock_a, sock_b = socks
    # Stream 2i: A -> relay leg a of call i (arrives at B); 2i+1: B -> leg b (arrives at A).
    targets = []
    for pa, pb in pairs:
        targets.append((sock_a, (HOST, pa)))
        targets.append((sock_b, (HOST, pb)))
    streams = len(targets)
    rate = streams * 50.0
    payload_pad = bytes(FRAME - _STAMP.size)
    seqs = [0] * streams
    sent = received = sent_counted = received_counted = 0
    latencies: list[int] = []
    monotonic_ns = time.monotonic_ns
    pack_hdr, pack_stamp, unpack_stamp = _HDR.pack, _STAMP.pack, _STAMP.unpack_from
    for sock in socks:  # stale packets of an earlier step
        try:
            while True:
                sock.recv(2048)
        except BlockingIOError:
            pass
    start = time.monotonic()
    measure_from = start + WARMUP_SECONDS
    stop_at = measure_from + STEP_SECONDS
    measure_from_ns = int(measure_from * 1e9)
    cpu0 = t_cpu0 = 0.0
    measuring = False
    k = 0

    def drain() -> None:
        nonlocal received, received_counted
        for sock in socks:
            recv = sock.recv
            try:
                while True:
                    data = recv(2048)
                    now_ns = monotonic_ns()
                    _, sent_ns = unpack_stamp(data, 12)
                    received += 1
                    if sent_ns >= measure_from_ns:  # sent during the measured window
                        received_counted += 1
                        if received_counted % 8 == 0:
                            latencies.append((now_ns - sent_ns) // 1000)
            except BlockingIOError:
                pass

    while True:
        now = time.monotonic()
        if now >= stop_at:
            break
        if not measuring and now >= measure_from:
            measuring = True
            cpu0, t_cpu0 = cpu_seconds(relay_pid), time.monotonic()
        due = int((now - start) * rate)
        # Never more than one period behind: a stalled generator is reported, not bursted.
        if due - k > streams:
            k = due - streams
        while k < due:
            index = k % streams
            sock, dest = targets[index]
            seq = seqs[index]
            seqs[index] = (seq + 1) & 0xFFFF
            data = (
                pack_hdr(0x80, 0, seq, seq * FRAME & 0xFFFFFFFF, index)
                + pack_stamp(index, monotonic_ns())
                + payload_pad
            )
            k += 1
            try:
                sock.sendto(data, dest)
            except BlockingIOError:
                continue  # the generator's own socket is full: not the relay's loss
            sent += 1
            if measuring:
                sent_counted += 1
        drain()
        wait = start + (k + 1) / rate - time.monotonic()
        if wait > 0:
            select.select(socks, [], [], min(wait, 0.002))
    cpu1, t_cpu1 = cpu_seconds(relay_pid), time.monotonic()
    end_drain = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < end_drain:
        select.select(socks, [], [], 0.01)
        drain()
    elapsed = t_cpu1 - t_cpu0
    asked = rate * STEP_SECONDS
    loss = 1 - received_counted / sent_counted if sent_counted else 1.0
    return {
        "calls": len(pairs),
        "asked_pps": int(rate),
        "sent_pps": round(sent_counted / STEP_SECONDS),
        "relayed_pps": round(received_counted / STEP_SECONDS),
        "loss": round(max(loss, 0.0), 5),
        "relay_cpu": round((cpu1 - cpu0) / elapsed, 3) if elapsed else 0.0,
        "generator_limited": sent_counted < 0.95 * asked,
        "latency_us": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99)},
    }


def measure(name: str, relay: Any, deadline: float) -> dict[str, Any]:
    socks = (_udp_socket(), _udp_socket())
    a, b = socks[0].getsockname(), socks[1].getsockname()
    pairs: list[tuple[int, int]] = []

    def ensure(n: int) -> list[tuple[int, int]]:
        if n > len(pairs):
            pairs.extend(relay.open(n - len(pairs), a, b))
        return pairs[:n]

    steps: list[dict[str, Any]] = []

    def step(n: int) -> dict[str, Any]:
        result = run_step(relay.pid, ensure(n), socks)
        result["passed"] = (
            result["loss"] <= LOSS_LIMIT
            and not result["generator_limited"]
            and result["relay_cpu"] < 0.98
        )
        steps.append(result)
        print(f"# {name}: {json.dumps(result)}", file=sys.stderr)
        return result

    try:
        best: dict[str, Any] | None = None
        failed: dict[str, Any] | None = None
        n = FIRST_STEP
        at_100 = step(n)
        if at_100["passed"]:
            best = at_100
        while best is not None and failed is None and n < MAX_CALLS:
            if time.monotonic() > deadline:
                break
            n = min(n * 2, MAX_CALLS)
            result = step(n)
            if result["passed"]:
                best = result
            else:
                failed = result
        for _ in range(3):
            if best is None or failed is None or time.monotonic() > deadline:
                break
            if failed["generator_limited"]:
                break
            mid = (best["calls"] + failed["calls"]) // 2
            if mid - best["calls"] < max(10, best["calls"] // 20):
                break
            result = step(mid)
            if result["passed"]:
                best = result
            else:
                failed = result
        out: dict[str, Any] = {
            "max_calls": best["calls"] if best else 0,
            "max_pps": best["relayed_pps"] if best else 0,
            "max_found": failed is not None and not failed["generator_limited"],
            "latency_us_100_calls": at_100["latency_us"],
            "latency_us_at_max": best["latency_us"] if best else None,
            "cpu_at_max": best["relay_cpu"] if best else None,
        }
        # CPU per relayed packet at the best step: meaningful even when the
        # generator, not the relay, was the limit; 1e6 / it is the one-core ceiling.
        if best and best["relay_cpu"] > 0:
            us = best["relay_cpu"] * 1e6 / best["relayed_pps"]
            out["cpu_us_per_packet"] = round(us, 2)
            out["projected_pps_one_core"] = round(1e6 / us)
        if failed is not None:
            out["first_failure"] = {
                k: failed[k] for k in ("calls", "loss", "relay_cpu", "generator_limited")
            }
        return out
    finally:
        for sock in socks:
            sock.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--serve", choices=("aiguilleur", "forwarder"))
    parser.add_argument("--skip-rtpengine", action="store_true")
    args = parser.parse_args()
    if args.serve:
        import uvloop

        uvloop.run(_serve(args.serve))
        return 0

    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        print("needs taskset and two cores", file=sys.stderr)
        return 1
    os.sched_setaffinity(0, {GENERATOR_CORE})
    started = time.monotonic()
    results: dict[str, Any] = {"bench": "relay", "pps_per_call": PPS_PER_CALL}
    peers = ["aiguilleur", "forwarder"]
    if args.skip_rtpengine:
        results["rtpengine"] = "skipped (--skip-rtpengine)"
    elif shutil.which("rtpengine"):
        peers.append("rtpengine")
    else:
        results["rtpengine"] = "not installed (apt-get install rtpengine-daemon)"
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        for i, name in enumerate(peers):
            share = (BUDGET_SECONDS - (time.monotonic() - started)) / (len(peers) - i)
            deadline = time.monotonic() + share - 12  # the last step must fit in
            relay: Any = Rtpengine(Path(tmp)) if name == "rtpengine" else PythonRelay(name)
            try:
                results[name] = measure(name, relay, deadline)
            except Exception as exc:  # a peer that fails is reported, not fatal
                results[name] = f"failed: {exc!r}"
            finally:
                relay.stop()
    ours = results.get("aiguilleur")
    for peer in ("rtpengine", "forwarder"):
        theirs = results.get(peer)
        if isinstance(ours, dict) and isinstance(theirs, dict) and theirs.get("max_pps"):
            results[f"ratio_vs_{peer}"] = round(ours["max_pps"] / theirs["max_pps"], 3)
            if ours.get("cpu_us_per_packet") and theirs.get("cpu_us_per_packet"):
                results[f"cpu_ratio_vs_{peer}"] = round(
                    theirs["cpu_us_per_packet"] / ours["cpu_us_per_packet"], 3
                )
    results["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
