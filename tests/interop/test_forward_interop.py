"""Forwards and hunt groups end to end with real peers (``aiguilleur run`` process).

- Line 401 forwards unconditionally to a mobile (written to the settings store, as
  ``*21*`` would): a pjsua2 phone (402) calls 401 and the call reaches SIPp playing
  the carrier on 127.0.0.1:5090, whose scenario requires ``Diversion`` and
  ``History-Info`` on the INVITE. Port 5090 is shared: run under
  ``flock /tmp/aiguilleur-5090.lock``.
- Group 500 (402 then 403, sequential; 1 s per member here): pjsua2 phone 401 calls
  500, pjsua2 phone 402 rings and is given up, pjsua2 phone 403 answers; the audio
  each way is checked by its dominant frequency.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from routing.linesettings import Forwarding, LineSettings
from switch.line_settings import SqliteLineSettingsStore, line_settings_db_path
from tests.interop.phone import Phone
from tests.interop.test_calls import cdr_rows, heard, tone_file
from tests.interop.test_trunk import finish, messages, sipp, wait_bound
from tests.sip_support import SwitchConfig, SwitchProcess, free_port, write_config

pytestmark = pytest.mark.interop

MOBILE = "+33612345678"
GROUP_500 = "      - {number: 500, name: Commercial, strategy: sequential}\n"
TEST_500 = "      - {number: 500, name: Commercial, strategy: sequential, ring_s: 1}\n"


@pytest.fixture
def switch_extra() -> str:
    # No keep-alive probes between REGISTER and the test's calls.
    return "registrar:\n  keepalive: {interval: 0}\n"


@pytest.fixture
def switch_config(tmp_path: Path, switch_extra: str) -> SwitchConfig:
    """config/example on free ports, group 500 ringing each member for 1 s."""
    sip_port, tls_port = free_port(), free_port()
    while tls_port == sip_port:
        tls_port = free_port()
    config_dir = write_config(
        tmp_path / "config", sip_port=sip_port, tls_port=tls_port, extra=switch_extra
    )
    directory = config_dir / "directory.yaml"
    text = directory.read_text(encoding="utf-8")
    assert GROUP_500 in text
    directory.write_text(text.replace(GROUP_500, TEST_500), encoding="utf-8")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return SwitchConfig(config_dir, data_dir, sip_port, tls_port)


def phone(name: str, switch: SwitchProcess, tmp_path: Path) -> Phone:
    p = Phone(name=name, log_path=str(tmp_path / f"{name}.log"))
    p.__enter__()
    p.command(
        "init", transport="udp", codec="PCMU/8000", log_level=int(os.environ.get("PJ_LOG", "0"))
    )
    result = p.command(
        "register",
        registrar=f"sip:127.0.0.1:{switch.sip_port}",
        user=name,
        password=f"secret{name}",
    )
    assert result["status"] == 200, result
    return p


@pytest.fixture
def phones(switch_process: SwitchProcess, tmp_path: Path) -> Iterator[dict[str, Phone]]:
    started: dict[str, Phone] = {}
    try:
        for name in ("401", "402", "403"):
            started[name] = phone(name, switch_process, tmp_path)
        yield started
    finally:
        for p in started.values():
            p.__exit__(None, None, None)


def test_forward_to_a_mobile_reaches_the_carrier_with_diversion(
    phones: dict[str, Phone], switch_process: SwitchProcess, tmp_path: Path
) -> None:
    store = SqliteLineSettingsStore(line_settings_db_path(switch_process.data_dir))
    try:
        store.save("401@pbx.test", LineSettings(forwarding=Forwarding(unconditional=MOBILE)))
    finally:
        store.close()
    scenario = "uas-expect-diversion-200.xml"
    proc = sipp(scenario, tmp_path)
    wait_bound(proc)
    caller = phones["402"]
    caller.command("call", target=f"sip:401@127.0.0.1:{switch_process.sip_port}")
    caller.command("wait_state", state="CONFIRMED", timeout=15)
    caller.command("hangup")
    caller.command("wait_state", state="DISCONNECTED")
    out = finish(proc)
    assert proc.returncode == 0, out
    log = messages(tmp_path, scenario)
    assert f"INVITE sip:{MOBILE}@127.0.0.1:5090" in log
    assert (
        "Diversion: <sip:+33140000401@pbx.test;user=phone>;reason=unconditional;counter=1;"
        "privacy=off" in log
    )
    assert f"<sip:{MOBILE}@pbx.test;user=phone;cause=302>;index=1.1;mp=1" in log
    assert "From: <sip:+33140000402@pbx.test>" in log  # the first caller, presented
    rows = cdr_rows(switch_process, 1)
    assert rows[-1]["outcome"] == "answered"
    assert "renvoi immédiat de 401 vers" in rows[-1]["because"]


def test_sequential_group_500_rings_402_then_403_answers_with_audio(
    phones: dict[str, Phone], switch_process: SwitchProcess, tmp_path: Path
) -> None:
    p401, p402, p403 = phones["401"], phones["402"], phones["403"]
    p401.command("call", target=f"sip:500@127.0.0.1:{switch_process.sip_port}")
    first = p402.command("answer", code=180, timeout=10)["invite"]  # it rings
    assert "INVITE sip:402@" in first
    p402.command("wait_state", state="DISCONNECTED", timeout=10)  # given up after 1 s
    p403.command("answer", timeout=10)
    p401.command("wait_state", state="CONFIRMED")
    p403.command("wait_state", state="CONFIRMED")

    p401.command("play", path=tone_file(tmp_path / "1k.wav", 1000))
    p403.command("play", path=tone_file(tmp_path / "2k.wav", 2000))
    p401.command("record", path=str(tmp_path / "at401.wav"))
    p403.command("record", path=str(tmp_path / "at403.wav"))
    p403.command("sleep", seconds=1.5)
    p401.command("sleep", seconds=0.2)
    assert heard(tmp_path / "at403.wav") == 1000
    assert heard(tmp_path / "at401.wav") == 2000

    p401.command("hangup")
    p403.command("wait_state", state="DISCONNECTED")
    rows = cdr_rows(switch_process, 1)
    assert rows[-1]["outcome"] == "answered"
    assert rows[-1]["called"] == "500"
