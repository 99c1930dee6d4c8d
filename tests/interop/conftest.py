"""``aiguilleur run`` as a real process for tests that talk to it from real peers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.sip_support import SwitchConfig, SwitchProcess


@pytest.fixture
def switch_args() -> tuple[str, ...]:
    """More ``aiguilleur run`` options (a test module overrides it)."""
    return ()


@pytest.fixture
def switch_process(
    switch_config: SwitchConfig, switch_args: tuple[str, ...]
) -> Iterator[SwitchProcess]:
    """A running switch, ready (it answered an OPTIONS); stopped by SIGTERM, exit 0 asserted."""
    proc = SwitchProcess(
        config_dir=switch_config.config_dir,
        data_dir=switch_config.data_dir,
        sip_port=switch_config.sip_port,
        tls_port=switch_config.tls_port,
        log_path=switch_config.data_dir.parent / "switch.log",
    ).start(args=switch_args)
    try:
        yield proc
    finally:
        status = proc.stop()
    assert status == 0, f"switch exit status {status}:\n{proc.log()}"
    assert "stopped" in proc.log()


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (bash deploy/ensure-debs.sh sip-tester)")
    return path
