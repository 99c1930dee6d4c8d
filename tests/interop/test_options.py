"""``aiguilleur run`` against real peers in their own processes: SIPp, pjsua2, raw sockets."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.interop.conftest import require_binary
from tests.interop.phone import Phone
from tests.sip_support import SwitchProcess, free_port, header, options, status_of, udp_exchange

pytestmark = pytest.mark.interop

SCENARIO = Path(__file__).parent / "scenarios" / "uac-options-expect-200.xml"


def run_sipp(tmp_path: Path, transport: str, port: int, calls: int = 20) -> None:
    """SIPp's UAC scenario, bounded in calls and time; its logs stay in tmp_path."""
    sipp = require_binary("sipp")
    command = [
        sipp,
        "-sf",
        str(SCENARIO),
        "-t",
        transport,
        "-i",
        "127.0.0.1",
        "-p",
        str(free_port()),
        "-cp",
        str(free_port()),
        "-m",
        str(calls),
        "-r",
        "50",
        "-timeout",
        "20s",
        "-timeout_error",
        "-recv_timeout",
        "5000",
        "-trace_err",
        "-trace_msg",
        "-nostdin",
        f"127.0.0.1:{port}",
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=40,
        check=False,
    )
    evidence = "\n".join(p.name for p in tmp_path.iterdir())
    assert result.returncode == 0, (
        f"sipp exit {result.returncode}\n{result.stdout.decode()[-2000:]}\nlogs: {evidence}"
    )


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_sipp_options_gets_200(
    switch_process: SwitchProcess, tmp_path: Path, transport: str
) -> None:
    run_sipp(tmp_path, transport, switch_process.sip_port)


def test_pjsua2_options_over_tls_gets_200(switch_process: SwitchProcess, tmp_path: Path) -> None:
    with Phone(log_path=str(tmp_path / "phone.log")) as phone:
        phone.command("init", transport="tls")
        result = phone.command(
            "options", target=f"sip:127.0.0.1:{switch_process.tls_port};transport=tls"
        )
    assert result["status"] == 200, result
    assert "Allow: OPTIONS" in result["message"]
    assert (header(result["message"].encode(), "Via") or "").startswith("SIP/2.0/TLS ")


def test_raw_malformed_datagram_gets_400(switch_process: SwitchProcess) -> None:
    bad = options().replace(b"CSeq: ", b"CSeq: not-a-number ")
    answer = udp_exchange(bad, switch_process.sip_port)
    assert answer is not None
    assert status_of(answer) == 400
    assert b"CSeq" in answer.split(b"\r\n", 1)[0]


def mutations(rng: random.Random, count: int) -> list[bytes]:
    """Random datagrams: noise, and valid requests with bytes flipped, cut or repeated."""
    base = [
        options(),
        options(method="INVITE", extra="Contact: <sip:a@127.0.0.1>\r\n"),
        options(extra="Content-Type: application/sdp\r\n").replace(
            b"Content-Length: 0\r\n\r\n", b"Content-Length: 4\r\n\r\nv=0\n"
        ),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:b@c>\r\nCall-ID: r\r\nCSeq: 1 OPTIONS\r\n\r\n",
    ]
    out = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            out.append(rng.randbytes(rng.randint(1, 600)))
            continue
        data = bytearray(rng.choice(base))
        if kind == 1:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 2:
            del data[rng.randrange(len(data)) :]
            data += rng.choice([b"", b"\r\n", b":", b";", b"<", b'"', b"\x00"])
        else:
            start = rng.randrange(len(data))
            piece = data[start : start + rng.randint(1, 40)]
            at = rng.randrange(len(data))
            data[at:at] = piece * rng.randint(1, 5)
        out.append(bytes(data))
    return out


def test_keeps_serving_after_10000_malformed_datagrams(switch_process: SwitchProcess) -> None:
    datagrams = mutations(random.Random(4475), 10_000)
    deadline = time.monotonic() + 30
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        for i, data in enumerate(datagrams):
            sock.sendto(data, ("127.0.0.1", switch_process.sip_port))
            if i % 500 == 499:
                time.sleep(0.005)  # pacing only: lets the kernel buffer drain
            assert time.monotonic() < deadline
    # Still serving: an OPTIONS gets its 200 (poll: the switch may be busy with the backlog).
    answer = None
    while answer is None and time.monotonic() < deadline:
        answer = udp_exchange(options(call_id="after-flood"), switch_process.sip_port, timeout=0.5)
    assert answer is not None
    assert status_of(answer) == 200
    assert switch_process.proc is not None
    assert switch_process.proc.poll() is None
    assert "internal.error" not in switch_process.log(), switch_process.log()[-3000:]
