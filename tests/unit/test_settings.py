"""switch.yaml: the example stays valid and stable; errors point at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.source import ConfigErrors
from switch.settings import Listener, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "switch.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def errors_of(config_dir: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_settings(config_dir)
    return [str(e) for e in info.value.errors]


def test_example_values_are_the_documented_ones() -> None:
    """Docs, examples and acceptance checks rely on these: keep them stable."""
    settings = load_settings(EXAMPLE)
    assert settings.sip.domain == "pbx.test"
    assert settings.sip.listen == [
        Listener(transport="udp", host="127.0.0.1", port=5060),
        Listener(transport="tcp", host="127.0.0.1", port=5060),
        Listener(transport="tls", host="127.0.0.1", port=5061),
    ]
    assert settings.sip.tls.certificate is None  # self-signed, generated at start
    assert (settings.sip.timers.t1, settings.sip.timers.t2, settings.sip.timers.t4) == (
        0.5,
        4.0,
        5.0,
    )
    assert settings.config_dir == EXAMPLE.resolve()


def test_smallest_file_gets_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "sip:\n  domain: Example.COM.\n"))
    assert settings.sip.domain == "example.com"
    assert [(li.transport, li.port) for li in settings.sip.listen] == [
        ("udp", 5060),
        ("tcp", 5060),
        ("tls", 5061),
    ]
    assert settings.sip.limits.max_message_size == 65535
    assert settings.log_level == "info"
    assert (settings.admin.host, settings.admin.port) == ("127.0.0.1", 8080)


def test_data_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(write(tmp_path, "sip: {domain: pbx.test}\ndata_dir: state\n"))
    assert settings.data_path() == tmp_path / "state"
    assert settings.data_path(Path("/var/lib/x")) == Path("/var/lib/x")
    bare = load_settings(write(tmp_path, "sip: {domain: pbx.test}\n"))
    assert bare.data_path() == tmp_path / "data"


def test_errors_are_located(tmp_path: Path) -> None:
    text = (
        "sip:\n"
        "  domain: pbx.test\n"
        "  listen:\n"
        "    - {transport: udp, host: 127.0.0.1, port: 5060}\n"
        "    - {transport: sctp, host: 127.0.0.1, port: 70000}\n"
        "  colour: blue\n"
    )
    errors = errors_of(write(tmp_path, text))
    path = tmp_path / "switch.yaml"
    assert f"{path}:6:3: sip.colour: unknown field" in errors
    assert any(e.startswith(f"{path}:5:") and "sip.listen[1].transport" in e for e in errors)
    assert any("sip.listen[1].port" in e and "65535" in e for e in errors)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("log_level: info\n", "sip: Field required"),
        ("sip: {domain: 'pbx test'}\n", "not a host name"),
        ("sip: {domain: pbx.test, listen: [{transport: udp, host: localhost}]}\n", "IP address"),
        ("sip: {domain: pbx.test, listen: []}\n", "at least 1"),
        ("sip: {domain: pbx.test, timers: {t1: 5, t2: 4}}\n", "t2 must not be smaller"),
        ("sip: {domain: pbx.test, tls: {certificate: c.pem}}\n", "go together"),
        ("sip: {domain: pbx.test, tls: {certificate: c.pem, private_key: k.pem}}\n", "not found"),
        ("sip: {domain: pbx.test}\nlog_level: loud\n", "log_level"),
        (
            "sip:\n  domain: pbx.test\n  listen:\n"
            "    - {transport: tcp, port: 5060}\n    - {transport: tcp, port: 5060}\n",
            "listed twice",
        ),
        ("sip: {domain: pbx.test\n", "YAML"),
        ("sip: {domain: pbx.test}\nmedia: {address: 0.0.0.0}\n", "where it means hold"),
        ("sip: {domain: pbx.test}\nmedia: {address: '::'}\n", "where it means hold"),
    ],
)
def test_invalid_files(tmp_path: Path, text: str, expected: str) -> None:
    errors = errors_of(write(tmp_path, text))
    assert any(expected in e for e in errors), errors


def test_missing_file(tmp_path: Path) -> None:
    assert errors_of(tmp_path) == [f"{tmp_path / 'switch.yaml'}:1:1: file not found"]


def test_tls_files_are_relative_to_the_config_dir(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    (tmp_path / "tls" / "c.pem").write_text("x")
    (tmp_path / "tls" / "k.pem").write_text("x")
    text = "sip:\n  domain: pbx.test\n  tls: {certificate: tls/c.pem, private_key: tls/k.pem}\n"
    settings = load_settings(write(tmp_path, text))
    assert settings.sip.tls.certificate is not None
    assert settings.resolve(settings.sip.tls.certificate) == tmp_path.resolve() / "tls" / "c.pem"
