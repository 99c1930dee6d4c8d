"""``aiguilleur run`` as a real process for tests that talk to it from real peers."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.interop.phone import Phone
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
    """The path of a peer the tests drive; ``make test`` installs them, so a missing
    one is a failure, never a skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (make test installs it: deploy/ensure-debs.sh)")
    return path


SIPP_STARTED: list[subprocess.Popen[bytes]] = []
"""SIPp processes a test started (``tests.interop.test_trunk.sipp``), ended after it."""


@pytest.fixture(autouse=True)
def _no_sipp_left() -> Iterator[None]:
    yield
    while SIPP_STARTED:
        proc = SIPP_STARTED.pop()
        if proc.poll() is None:
            proc.kill()  # by its Popen handle (its PID), never by name
        proc.communicate(timeout=5)


@contextmanager
def registered_phones(switch: SwitchProcess, tmp_path: Path, *users: str) -> Iterator[list[Phone]]:
    """pjsua2 phones (UDP, PCMU), each registered to ``switch`` as its line
    (password ``secret<user>``, 200 asserted); closed on leaving."""
    registrar = f"sip:127.0.0.1:{switch.sip_port}"
    with ExitStack() as stack:
        phones = [
            stack.enter_context(Phone(name=user, log_path=str(tmp_path / f"{user}.log")))
            for user in users
        ]
        for phone, user in zip(phones, users, strict=True):
            phone.command(
                "init",
                transport="udp",
                codec="PCMU/8000",
                log_level=int(os.environ.get("PJ_LOG", "0")),
            )
            result = phone.command(
                "register", registrar=registrar, user=user, password=f"secret{user}"
            )
            assert result["status"] == 200, result
        yield phones


@pytest.fixture
def phones(switch_process: SwitchProcess, tmp_path: Path) -> Iterator[tuple[Phone, Phone, str]]:
    """401 and 402 registered; the URI that calls 402."""
    with registered_phones(switch_process, tmp_path, "401", "402") as (p401, p402):
        yield p401, p402, f"sip:402@127.0.0.1:{switch_process.sip_port}"


@pytest.fixture
def three(
    switch_process: SwitchProcess, tmp_path: Path
) -> Iterator[tuple[Phone, Phone, Phone, str]]:
    with registered_phones(switch_process, tmp_path, "401", "402", "403") as (p401, p402, p403):
        yield p401, p402, p403, f"127.0.0.1:{switch_process.sip_port}"
