"""REGISTER from real peers in their own processes: pjsua2 phones, SIPp, sipvicious.

Every peer is 127.0.0.1, so each test that gets the address banned has its own
switch (``registrar_switch`` appends a ``registrar:`` section to switch.yaml).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from switch.sip.auth import answer_challenge, parse_challenge
from tests.interop.conftest import require_binary
from tests.interop.phone import Phone
from tests.sip_support import (
    SwitchConfig,
    SwitchProcess,
    free_port,
    status_of,
    udp_exchange,
    without_section,
)

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).parent / "scenarios"
REGISTER_SCENARIO = SCENARIOS / "uac-register-digest-expect-200.xml"

# Three failures ban; an unanswered challenge counts after one second (scanners).
STRICT = """
registrar:
  admission: {max_failures: 3, window: 60, ban_seconds: 60, challenge_grace: 1}
"""
SILENT = """
registrar:
  admission: {max_failures: 5, window: 60, ban_seconds: 60, challenge_grace: 1, silent: true}
"""

Starter = Callable[[str], SwitchProcess]


@pytest.fixture
def registrar_switch(switch_config: SwitchConfig) -> Iterator[Starter]:
    """Start the switch with extra settings; stopped (exit 0 asserted) afterwards."""
    started: list[SwitchProcess] = []

    def start(settings: str) -> SwitchProcess:
        path = switch_config.config_dir / "switch.yaml"
        path.write_text(without_section(path.read_text(), "registrar") + settings)
        proc = SwitchProcess(
            config_dir=switch_config.config_dir,
            data_dir=switch_config.data_dir,
            sip_port=switch_config.sip_port,
            tls_port=switch_config.tls_port,
            log_path=switch_config.data_dir.parent / "switch.log",
        )
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        # One SIGTERM: answered REGISTERs do not hold a graceful stop (Timer J
        # absorbs retransmissions only). A second one could arrive once the
        # switch has removed its handlers and kill it (status -15).
        status = proc.stop()
        assert status == 0, f"switch exit status {status}:\n{proc.log()}"
        assert "stopped" in proc.log()


def registrar_uri(switch: SwitchProcess, transport: str) -> str:
    port = switch.tls_port if transport == "tls" else switch.sip_port
    return f"sip:127.0.0.1:{port};transport={transport}"


# -- pjsua2 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_pjsua2_phones_register_401_and_402(
    registrar_switch: Starter, tmp_path: Path, transport: str
) -> None:
    switch_process = registrar_switch("")
    with (
        Phone(name="401", log_path=str(tmp_path / "401.log")) as p401,
        Phone(name="402", log_path=str(tmp_path / "402.log")) as p402,
    ):
        for phone, user in ((p401, "401"), (p402, "402")):
            phone.command("init", transport=transport)
            result = phone.command(
                "register",
                registrar=registrar_uri(switch_process, transport),
                user=user,
                password=f"secret{user}",
            )
            assert result["status"] == 200, result
        listing = subprocess.run(
            [
                sys.executable,  # the interpreter running the tests, wherever it lives
                "-m",
                "switch",
                "registrations",
                str(switch_process.config_dir),
                "--data-dir",
                str(switch_process.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
        ).stdout
    assert "sip:401@pbx.test" in listing
    assert "sip:402@pbx.test" in listing
    assert f"{transport}:127.0.0.1:" in listing


@pytest.mark.parametrize(
    ("user", "password"),
    [("401", "wrong-password"), ("499", "secret401")],
    ids=["wrong-password", "unknown-user"],
)
def test_pjsua2_wrong_password_401_then_403_after_limit(
    registrar_switch: Starter, tmp_path: Path, user: str, password: str
) -> None:
    switch = registrar_switch(STRICT)
    with Phone(log_path=str(tmp_path / "phone.log")) as phone:
        phone.command("init", transport="udp")
        first = phone.command(
            "register", registrar=registrar_uri(switch, "udp"), user=user, password=password
        )
        answers = [first["status"]]
        answers += [phone.command("reregister")["status"] for _ in range(3)]
    # Unknown users get exactly the answers a wrong password gets.
    assert answers == [401, 401, 403, 403]
    assert "event=admission.ban address=127.0.0.1 kind=source" in switch.log()


# -- SIPp -----------------------------------------------------------------------------------


def test_sipp_register_with_digest_succeeds_over_udp(
    registrar_switch: Starter, tmp_path: Path
) -> None:
    switch_process = registrar_switch("")
    sipp = require_binary("sipp")
    users = tmp_path / "users.csv"
    users.write_text(
        "SEQUENTIAL\n"
        + "".join(
            f"{ext};pbx.test;[authentication username={ext} password=secret{ext}]\n"
            for ext in ("401", "402", "403", "601")
        )
    )
    result = subprocess.run(
        [
            sipp,
            "-sf",
            str(REGISTER_SCENARIO),
            "-inf",
            str(users),
            "-t",
            "u1",
            "-i",
            "127.0.0.1",
            "-p",
            str(free_port()),
            "-cp",
            str(free_port()),
            "-m",
            "8",
            "-r",
            "20",
            "-timeout",
            "20s",
            "-timeout_error",
            "-recv_timeout",
            "5000",
            "-trace_err",
            "-trace_msg",
            "-nostdin",
            f"127.0.0.1:{switch_process.sip_port}",
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=40,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode()[-2000:]
    messages = next(tmp_path.glob("*_messages.log")).read_text()
    assert messages.count("SIP/2.0 200 OK") == 8
    assert "algorithm=MD5" in messages  # SIPp answers the first challenge: MD5


def test_replayed_nonce_count_is_refused(registrar_switch: Starter) -> None:
    switch_process = registrar_switch("")

    def register(n: int, authorization: str = "") -> bytes:
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        request = (
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-replay{n};rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:403@pbx.test>;tag=r\r\nTo: <sip:403@pbx.test>\r\n"
            "Call-ID: replay@127.0.0.1\r\n"
            f"CSeq: {n} REGISTER\r\n"
            "Contact: <sip:403@127.0.0.1:5099>\r\n"
            f"{auth}Content-Length: 0\r\n\r\n"
        ).encode()
        answer = udp_exchange(request, switch_process.sip_port, timeout=2.0)
        assert answer is not None
        return answer

    challenge = register(1)
    assert status_of(challenge) == 401
    md5 = re.search(rb"WWW-Authenticate: (Digest [^\r]*algorithm=MD5[^\r]*)", challenge)
    assert md5 is not None
    authorization = answer_challenge(
        parse_challenge(md5.group(1).decode()),
        username="403",
        password="secret403",
        method="REGISTER",
        uri="sip:127.0.0.1",
        cnonce="abc",
        nc=1,
    )
    assert status_of(register(2, authorization)) == 200
    assert status_of(register(3, authorization)) == 403  # same nonce, same nc=1


# -- sipvicious -----------------------------------------------------------------------------


def run_sipvicious(tool: str, args: list[str], port: int, cwd: Path) -> str:
    binary = require_binary(tool)
    result = subprocess.run(
        [binary, *args, "--domain", "pbx.test", "-p", str(port), "127.0.0.1"],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"HOME": str(cwd), "PATH": "/usr/bin:/bin"},
    )
    return result.stdout + result.stderr


def test_svwar_enumerates_nothing_and_gets_banned(
    registrar_switch: Starter, tmp_path: Path
) -> None:
    switch = registrar_switch(SILENT.replace("max_failures: 5", "max_failures: 3"))
    scan = ["-e", "400-699", "--maximumtime", "3"]
    # Forced past its sanity check, svwar sees the same 401 for every extension.
    forced = run_sipvicious("svwar", [*scan, "--force"], switch.sip_port, tmp_path)
    assert "found nothing" in forced, forced
    # Its default run gives up at once: unknown users are challenged too. Each run
    # leaves unanswered challenges; after challenge_grace they count as failures
    # and the scanner is banned: then it gets no answer at all.
    deadline = time.monotonic() + 30
    outputs = []
    while "event=admission.ban" not in switch.log() and time.monotonic() < deadline:
        outputs.append(run_sipvicious("svwar", scan, switch.sip_port, tmp_path))
    assert "event=admission.ban address=127.0.0.1 kind=source" in switch.log()
    for output in [forced, *outputs]:
        assert "exists" not in output, output
        assert "| Extension" not in output, output
    silenced = run_sipvicious("svwar", scan, switch.sip_port, tmp_path)
    assert "timed out" in silenced, silenced  # no answer at all
    assert (
        udp_exchange(b"OPTIONS sip:pbx.test SIP/2.0\r\n\r\n", switch.sip_port, timeout=0.3) is None
    )


def test_svcrack_finds_no_password_and_gets_banned(
    registrar_switch: Starter, tmp_path: Path
) -> None:
    switch = registrar_switch(SILENT)
    # The right password comes after the limit: the ban must stop the guessing first.
    dictionary = tmp_path / "passwords.txt"
    dictionary.write_text("".join(f"guess{i}\n" for i in range(8)) + "secret401\n")
    output = run_sipvicious(
        "svcrack",
        ["-u", "401", "-d", str(dictionary), "--maximumtime", "3"],
        switch.sip_port,
        tmp_path,
    )
    assert "secret401" not in output, output
    assert "event=admission.ban address=127.0.0.1 kind=source" in switch.log()
