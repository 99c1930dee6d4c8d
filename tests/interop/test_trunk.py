"""Calls through the trunk ``carrier`` (127.0.0.1:5090 in config/example) with SIPp
playing the carrier and a real pjsua2 phone playing line 401.

- SIPp UAC from 127.0.0.1:5090 (a trunk source: not challenged) calls the direct
  number +33140000401; the phone answers; SIPp sees the 200 and hangs up.
- The phone calls a public number: the switch sends it to SIPp UAS at 5090, which
  challenges 407 (digest answered with the trunk's credentials) then answers.
- SIPp UAS answering 486 / 408 / never: outcomes busy / no_answer / no_answer in
  the CDR, read through ``aiguilleur cdr --format jsonl``.
- No open relay: an unknown source calling out gets 403; the trunk calling a
  number that is not ours gets 404.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from switch.sip.auth import ha1, parse_credentials, response_digest
from tests.interop.conftest import SIPP_STARTED, require_binary
from tests.interop.phone import Phone
from tests.sip_support import (
    ROOT,
    SwitchProcess,
    free_port,
    options,
    status_of,
)

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).parent / "scenarios"
TRUNK_PORT = 5090  # config/example/switch.yaml: trunk `carrier`
RING_TIMEOUT = 3


@pytest.fixture
def switch_extra() -> str:
    """A short ring timeout (the no-answer case)."""
    return f"calls:\n  ring_timeout: {RING_TIMEOUT}\n"


@pytest.fixture
def phone(switch_process: SwitchProcess, tmp_path: Path) -> Iterator[Phone]:
    with Phone(name="401", log_path=str(tmp_path / "401.log")) as p401:
        p401.command(
            "init", transport="udp", codec="PCMU/8000", log_level=int(os.environ.get("PJ_LOG", "0"))
        )
        result = p401.command(
            "register",
            registrar=f"sip:127.0.0.1:{switch_process.sip_port}",
            user="401",
            password="secret401",
        )
        assert result["status"] == 200, result
        yield p401


def sipp(
    scenario: str,
    tmp_path: Path,
    *,
    switch: SwitchProcess | None = None,
    service: str = "",
    timeout: float = 30.0,
    calls: int = 1,
) -> subprocess.Popen[bytes]:
    """SIPp as the trunk (source port 5090) for ``calls`` calls, then it exits; UAC
    when ``switch`` is given."""
    binary = require_binary("sipp")
    work = tmp_path / scenario.removesuffix(".xml")
    work.mkdir(exist_ok=True)
    args = [
        binary,
        "-sf",
        str(SCENARIOS / scenario),
        "-t",
        "u1",
        "-i",
        "127.0.0.1",
        "-p",
        str(TRUNK_PORT),
        "-mi",
        "127.0.0.1",
        "-mp",
        str(free_port()),
        "-cp",
        str(free_port()),
        "-m",
        str(calls),
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-trace_err",
        "-trace_msg",
        "-nostdin",
    ]
    if switch is not None:
        args += ["-s", service, "-d", "1000", f"127.0.0.1:{switch.sip_port}"]
    proc = subprocess.Popen(
        args, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    SIPP_STARTED.append(proc)
    return proc


def finish(proc: subprocess.Popen[bytes], timeout: float = 40.0) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    return out.decode(errors="replace")[-3000:]


def wait_bound(proc: subprocess.Popen[bytes], port: int = TRUNK_PORT, within: float = 5.0) -> None:
    """Until SIPp (another process: polled, from /proc) has its UDP socket on ``port``."""
    deadline = time.monotonic() + within
    local = f"0100007F:{port:04X}"  # 127.0.0.1:port as /proc/net/udp writes it
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"sipp exited with {proc.returncode}:\n{finish(proc)}")
        fds = Path(f"/proc/{proc.pid}/fd")
        with contextlib.suppress(OSError):
            sockets = {os.readlink(fd) for fd in fds.iterdir()}
            for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1] == local and f"socket:[{fields[9]}]" in sockets:
                    return
        assert time.monotonic() < deadline, f"sipp not bound to {port} in {within}s"
        time.sleep(0.02)


def messages(tmp_path: Path, scenario: str) -> str:
    found = list((tmp_path / scenario.removesuffix(".xml")).glob("*_messages.log"))
    return found[0].read_text(errors="replace") if found else ""


def cdr_export(switch: SwitchProcess, *extra: str) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "switch", "cdr", str(switch.data_dir), "--format", "jsonl", *extra],
        cwd=ROOT,
        capture_output=True,
        timeout=20,
        check=True,
    )
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def wait_rows(switch: SwitchProcess, count: int, timeout: float = 5.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    rows = cdr_export(switch)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = cdr_export(switch)
    return rows


def test_trunk_calls_a_direct_number_and_the_phone_answers(
    phone: Phone, switch_process: SwitchProcess, tmp_path: Path
) -> None:
    proc = sipp("uac-trunk-expect-200.xml", tmp_path, switch=switch_process, service="+33140000401")
    invite = phone.command("answer", timeout=15)["invite"]
    assert "c=IN IP4 127.0.0.1" in invite
    out = finish(proc)
    assert proc.returncode == 0, out
    phone.command("wait_state", state="DISCONNECTED")  # SIPp's BYE relayed
    log = messages(tmp_path, "uac-trunk-expect-200.xml")
    # A trunk source is not challenged (a status line, not any "407" in the
    # log: random SSRCs and tags contain those digits too).
    assert "SIP/2.0 407" not in log
    (row,) = wait_rows(switch_process, 1)
    assert row["outcome"] == "answered"
    assert row["caller"] == "+33612345678"
    assert row["called"] == "+33140000401"


def test_phone_calls_out_through_the_trunk_with_digest(
    phone: Phone, switch_process: SwitchProcess, tmp_path: Path
) -> None:
    scenario = "uas-digest-407-expect-200.xml"
    proc = sipp(scenario, tmp_path)
    wait_bound(proc)
    phone.command("call", target=f"sip:0612345678@127.0.0.1:{switch_process.sip_port}")
    phone.command("wait_state", state="CONFIRMED", timeout=15)
    phone.command("sleep", seconds=0.5)
    phone.command("hangup")
    phone.command("wait_state", state="DISCONNECTED")
    out = finish(proc)
    assert proc.returncode == 0, out
    log = messages(tmp_path, scenario)
    assert "INVITE sip:+33612345678@127.0.0.1:5090" in log  # E.164 (number_format)
    assert "From: <sip:+33140000401@pbx.test>" in log  # the line's direct number
    value = next(
        line.split(":", 1)[1].strip()
        for line in log.splitlines()
        if line.startswith("Proxy-Authorization:")
    )
    creds = parse_credentials(value)
    assert (creds.username, creds.realm) == ("pbx-test", "carrier.test")
    expected = response_digest(
        ha1("pbx-test", "carrier.test", "carrier-secret"),
        algorithm="MD5",
        method="INVITE",
        uri=creds.uri,
        nonce=creds.nonce,
        nc=creds.nc,
        cnonce=creds.cnonce,
        qop=creds.qop,
    )
    assert creds.response == expected
    (row,) = wait_rows(switch_process, 1)
    assert (row["outcome"], row["caller"], row["called"]) == (
        "answered",
        "401@pbx.test",
        "0612345678",
    )
    legs = row["legs"]
    assert isinstance(legs, list)
    assert any(leg["target"] == "trunk:carrier:+33612345678" for leg in legs)


@pytest.mark.parametrize(
    ("scenario", "outcome", "cause", "heard"),
    [
        ("uas-expect-486.xml", "busy", "486", 486),
        ("uas-expect-408.xml", "no_answer", "408", 480),
        ("uas-expect-no-answer.xml", "no_answer", "ring-timeout", 480),
    ],
)
def test_trunk_failures_map_to_outcomes(
    phone: Phone,
    switch_process: SwitchProcess,
    tmp_path: Path,
    scenario: str,
    outcome: str,
    cause: str,
    heard: int,
) -> None:
    started = time.time()
    proc = sipp(scenario, tmp_path)
    wait_bound(proc)
    phone.command("call", target=f"sip:+33612345678@127.0.0.1:{switch_process.sip_port}")
    states = phone.command("wait_state", state="DISCONNECTED", timeout=RING_TIMEOUT + 10)
    assert states["states"][-1]["status"] == heard
    out = finish(proc)
    assert proc.returncode == 0, out
    rows = wait_rows(switch_process, 1)
    assert [(r["outcome"], r["cause"]) for r in rows] == [(outcome, cause)]
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started - 1))
    assert len(cdr_export(switch_process, "--since", since)) == 1
    assert cdr_export(switch_process, "--since", "2999-01-01") == []


def invite_final(data: bytes, switch: SwitchProcess, *, port: int = 0) -> int:
    """Send an INVITE from 127.0.0.1:``port`` (0: any); the first final status."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.bind(("127.0.0.1", port))
        own = sock.getsockname()[1]
        sock.sendto(data.replace(b":5099;", f":{own};".encode()), ("127.0.0.1", switch.sip_port))
        for _ in range(5):
            status = status_of(sock.recv(65535))
            if status >= 200:
                return status
    raise AssertionError("no final response")


def test_no_open_relay(switch_process: SwitchProcess) -> None:
    def invite(called: str, caller: str) -> bytes:
        return options(
            method="INVITE",
            ruri=f"sip:{called}@pbx.test",
            extra="Contact: <sip:x@127.0.0.1:5099>\r\n",
        ).replace(b"From: <sip:probe@pbx.test>", f"From: <sip:{caller}>".encode())

    # An unknown caller (not one of our lines) calling a public number: 403.
    assert invite_final(invite("+33612345678", "scanner@evil.test"), switch_process) == 403
    # A line's user from an unknown source is challenged (digest), never relayed.
    assert invite_final(invite("+33612345678", "401@pbx.test"), switch_process) == 407
    # The trunk may only reach our direct numbers: not out again, not extensions.
    for called in ("+33612345678", "0612345678", "401"):
        status = invite_final(
            invite(called, "+33612345678@carrier.test"), switch_process, port=TRUNK_PORT
        )
        assert status == 404, called
