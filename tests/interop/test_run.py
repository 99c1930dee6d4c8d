"""``aiguilleur run`` as an operator sees it: start, signals, exit status, errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from switch import __version__
from switch.tls import ensure_self_signed
from tests.sip_support import ROOT, SwitchConfig, SwitchProcess, options, status_of, udp_exchange

pytestmark = pytest.mark.interop


def aiguilleur(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switch", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_version() -> None:
    result = aiguilleur("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"aiguilleur {__version__}")


def test_invalid_config_exits_1_with_located_errors(tmp_path: Path) -> None:
    (tmp_path / "switch.yaml").write_text("sip:\n  domain: pbx.test\n  colour: blue\n")
    result = aiguilleur("run", "--config", str(tmp_path), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1
    assert f"{tmp_path / 'switch.yaml'}:3:3: sip.colour: unknown field" in result.stderr


def test_port_in_use_exits_1(switch_process: SwitchProcess, tmp_path: Path) -> None:
    result = aiguilleur(
        "run", "--config", str(switch_process.config_dir), "--data-dir", str(tmp_path)
    )
    assert result.returncode == 1
    assert "listen.failed" in result.stderr


def test_sighup_reloads_routing_and_does_not_stop(switch_process: SwitchProcess) -> None:
    assert switch_process.proc is not None
    switch_process.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "routing.reloaded" not in switch_process.log():
        assert time.monotonic() < deadline, switch_process.log()
        time.sleep(0.02)
    answer = udp_exchange(options(), switch_process.sip_port)
    assert answer is not None
    assert status_of(answer) == 200


def test_sigint_stops_cleanly(switch_config: SwitchConfig) -> None:
    proc = SwitchProcess(
        switch_config.config_dir,
        switch_config.data_dir,
        switch_config.sip_port,
        switch_config.tls_port,
        switch_config.data_dir / "run.log",
    ).start(log_level="debug")
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGINT)
    proc.proc.wait(10)
    assert proc.stop() == 0  # already exited: only collects the status, closes the log
    log = proc.log()
    assert "event=stop.requested signal=SIGINT" in log
    assert "event=stopped" in log
    # Every SIP line carries its Call-ID (the readiness OPTIONS, logged at debug).
    sip_lines = [line for line in log.splitlines() if "event=sip." in line]
    assert sip_lines
    assert all(" call_id=" in line for line in sip_lines)


def test_self_signed_certificate_is_generated_once(switch_process: SwitchProcess) -> None:
    cert = switch_process.data_dir / "tls" / "cert.pem"
    key = switch_process.data_dir / "tls" / "key.pem"
    pem = cert.read_bytes()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert key.stat().st_mode & 0o077 == 0  # private key readable by its owner only
    # Still valid for the domain: the next start reuses it, nothing is generated again.
    assert ensure_self_signed(cert.parent, "pbx.test") == (cert, key)
    assert cert.read_bytes() == pem


def test_unreadable_certificate_exits_1(switch_config: SwitchConfig, tmp_path: Path) -> None:
    (switch_config.config_dir / "cert.pem").write_text("not a certificate")
    (switch_config.config_dir / "key.pem").write_text("not a key")
    yaml = switch_config.config_dir / "switch.yaml"
    yaml.write_text(
        yaml.read_text().replace(
            "    verify_peer: true", "    certificate: cert.pem\n    private_key: key.pem"
        )
    )
    result = aiguilleur(
        "run", "--config", str(switch_config.config_dir), "--data-dir", str(tmp_path / "d")
    )
    assert result.returncode == 1
    assert "tls.failed" in result.stderr
