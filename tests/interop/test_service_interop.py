"""Service number ``0800100100`` of config/example, end to end with real peers.

- SIPp as the trunk (127.0.0.1:5090) places 3 calls that stay up; the GNR's
  first target, line 401, is a SIPp UAS (registered with digest) answering at once.
- The 4th call comes from a pjsua2 phone, line 601: the limiter (3) is full, so
  it hears the network message (early media: 183, audio recorded before the
  call ends) and then gets ``486``.
- After everything ends, the metrics scraped from the admin port count exactly
  what the run did: 4 offered, 3 answered, 1 limiter rejection, 1 overflow for
  ``limit``, no active call.

The switch runs with ``--clock`` on a Tuesday at 10:00 (open hours of the
``horaires`` calendar), so the result does not depend on when the test runs.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
import wave
from pathlib import Path

import pytest

from media.tone import detect
from switch.settings import load_settings
from tests.interop.conftest import require_binary
from tests.interop.phone import Phone
from tests.sip_support import SwitchConfig, SwitchProcess, free_port

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).parent / "scenarios"
TRUNK_PORT = 5090
NUMBER = "0800100100"
OPEN_HOURS = "2026-11-24T10:00:00+01:00"  # a Tuesday
HOLD_MS = 8000  # how long the trunk's calls stay up


@pytest.fixture
def switch_extra() -> str:
    # No keep-alive probes: line 401 is a SIPp UAS started after its REGISTER, and a
    # probe in between would find nobody and mark the binding unreachable.
    return "registrar:\n  keepalive: {interval: 0}\n"


@pytest.fixture
def switch_args() -> tuple[str, ...]:
    return ("--clock", OPEN_HOURS)


def admin_url(config_dir: Path) -> str:
    admin = load_settings(config_dir).admin
    return f"http://{admin.host}:{admin.port}"


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
    return values


def metric(values: dict[str, float], name: str, **labels: str) -> float:
    """The sample ``name`` with (at least) ``labels``; 0 when absent."""
    for key, value in values.items():
        base, _, rest = key.partition("{")
        if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return value
    return 0.0


def until(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.05)


def sipp(*args: str) -> list[str]:
    return [require_binary("sipp"), *args]


def register_401_uas(
    switch_process: SwitchProcess, port: int, work: Path
) -> subprocess.Popen[bytes]:
    users = work / "users.csv"
    users.write_text("SEQUENTIAL\n401;pbx.test;[authentication username=401 password=secret401]\n")
    done = subprocess.run(
        sipp(
            "-sf", str(SCENARIOS / "uac-register-digest-expect-200.xml"), "-inf", str(users),
            "-p", str(port), "-m", "1", "-timeout", "10s", "-timeout_error",
            f"127.0.0.1:{switch_process.sip_port}",
        ),
        cwd=work, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout.decode()[-1500:]
    return subprocess.Popen(
        sipp("-sn", "uas", "-p", str(port), "-timeout", "60s"),
        cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_limiter_3_then_network_message_and_486_and_exact_metrics(
    switch_process: SwitchProcess, switch_config: SwitchConfig, tmp_path: Path
) -> None:
    url = admin_url(switch_config.config_dir)
    uas = register_401_uas(switch_process, free_port(), tmp_path)
    trunk = None
    try:
        trunk = subprocess.Popen(
            sipp(
                "-sf", str(SCENARIOS / "uac-trunk-expect-200.xml"), "-s", NUMBER,
                "-p", str(TRUNK_PORT), "-m", "3", "-l", "3", "-r", "10",
                "-d", str(HOLD_MS), "-timeout", "40s", "-timeout_error",
                f"127.0.0.1:{switch_process.sip_port}",
            ),
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        until(
            lambda: metric(scrape(url), "aiguilleur_calls_active", number=NUMBER) == 3,
            10,
            "3 trunk calls connected",
        )
        record = tmp_path / "601.wav"
        with Phone(name="601", log_path=str(tmp_path / "601.log")) as p601:
            p601.command(
                "init", transport="udp", codec="PCMU/8000",
                log_level=int(os.environ.get("PJ_LOG", "0")),
            )  # fmt: skip
            registered = p601.command(
                "register",
                registrar=f"sip:127.0.0.1:{switch_process.sip_port}",
                user="601",
                password="secret601",
            )
            assert registered["status"] == 200, registered
            p601.command("call", target=f"sip:{NUMBER}@127.0.0.1:{switch_process.sip_port}")
            p601.command("record", path=str(record), timeout=5.0)  # early media is up
            states = p601.command("wait_state", state="DISCONNECTED", timeout=15.0)["states"]
        statuses = [s["status"] for s in states]
        assert 183 in statuses, states
        assert statuses[-1] == 486, states
        assert 200 not in statuses, states
        with wave.open(str(record)) as heard:
            pcm = heard.readframes(heard.getnframes())
            rate = heard.getframerate()
        assert detect(pcm, rate, 425) > 0.3  # the network message (message-reseau.wav)

        output, _ = trunk.communicate(timeout=40)
        assert trunk.returncode == 0, output.decode()[-2000:]
        trunk = None
        until(
            lambda: metric(scrape(url), "aiguilleur_calls_active", number=NUMBER) == 0,
            10,
            "all calls ended",
        )
        values = scrape(url)
        assert metric(values, "aiguilleur_calls_offered_total", number=NUMBER) == 4
        assert metric(values, "aiguilleur_calls_answered_total", number=NUMBER) == 3
        assert metric(values, "aiguilleur_limiter_rejections_total", number=NUMBER) == 1
        assert (
            metric(values, "aiguilleur_calls_overflowed_total", number=NUMBER, cause="limit") == 1
        )
        assert (
            metric(
                values, "aiguilleur_messages_played_total", number=NUMBER, message="message-reseau"
            )
            == 1
        )
    finally:
        for proc in (trunk, uas):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
