"""Fixtures shared by every ring: free ports and a switch configuration on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sip_support import SwitchConfig, free_port, write_config


@pytest.fixture
def switch_extra() -> str:
    """switch.yaml sections that replace the example's (a test module overrides it)."""
    return ""


@pytest.fixture
def switch_config(tmp_path: Path, switch_extra: str) -> SwitchConfig:
    """config/example copied to a temp dir, its listeners moved to free ports."""
    sip_port, tls_port = free_port(), free_port()
    while tls_port == sip_port:
        tls_port = free_port()
    config_dir = write_config(
        tmp_path / "config", sip_port=sip_port, tls_port=tls_port, extra=switch_extra
    )
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return SwitchConfig(config_dir, data_dir, sip_port, tls_port)
