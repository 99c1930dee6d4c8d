"""``aiguilleur passwd``: the ha1 snippet, PIN hashes, and rewriting a directory file."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from switch.directory import DIRECTORY_FILE, Ha1, load_directory, verify_pin
from switch.passwd import ha1_snippet, passwd_command
from switch.sip.auth import ha1


def args(**kwargs: object) -> argparse.Namespace:
    defaults: dict[str, object] = {
        "extension": None,
        "domain": None,
        "password": None,
        "pin": False,
        "rewrite": None,
    }
    return argparse.Namespace(**(defaults | kwargs))


def run(namespace: argparse.Namespace, stdin: str = "") -> tuple[int, str]:
    out = io.StringIO()
    status = passwd_command(namespace, stdin=io.StringIO(stdin), stdout=out)
    return status, out.getvalue()


def test_snippet_is_yaml_for_the_line() -> None:
    text = ha1_snippet("401", "pbx.test", "secret401")
    assert text == (
        "ha1:\n"
        "  md5: 967c95f0275e9b3e2587b380f5fb7d8a\n"
        "  sha256: 1e98944690d4a6b1cf0594b6c001fd4b08c1ab30d65debf3316e7f207173c6e7\n"
    )
    data = YAML(typ="safe").load(text)
    assert Ha1(**data["ha1"]) == Ha1.from_password("401", "pbx.test", "secret401")


def test_password_from_stdin() -> None:
    status, out = run(args(extension="402", domain="PBX.test"), stdin="secret402\n")
    assert status == 0
    assert f"md5: {ha1('402', 'pbx.test', 'secret402')}" in out  # realm lower-cased
    assert f"sha256: {ha1('402', 'pbx.test', 'secret402', 'SHA-256')}" in out


def test_password_from_the_option() -> None:
    status, out = run(args(extension="601", domain="pbx.test", password="secret601"))
    assert status == 0
    assert out == ha1_snippet("601", "pbx.test", "secret601")


@pytest.mark.parametrize(
    ("namespace", "stdin", "message"),
    [
        (args(domain="pbx.test"), "x\n", "extension"),
        (args(extension="40", domain="pbx.test"), "x\n", "extension"),
        (args(extension="401"), "x\n", "--domain"),
        (args(extension="401", domain="bad domain"), "x\n", "--domain"),
        (args(extension="401", domain="pbx.test"), "\n", "empty password"),
        (args(pin=True), "12\n", "4 to 8 digits"),
        (args(rewrite="/nonexistent/dir"), "", "no such file"),
    ],
)
def test_errors(
    namespace: argparse.Namespace, stdin: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(namespace, stdin)
    assert status == 1
    assert out == ""
    assert message in capsys.readouterr().err


def test_pin_hash() -> None:
    status, out = run(args(pin=True), stdin="0042\n")
    assert status == 0
    assert out.startswith("pin_hash: pbkdf2-sha256$")
    assert verify_pin("0042", out.split(": ", 1)[1].strip())


def test_rewrite_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / DIRECTORY_FILE).write_text(
        "companies:\n"
        "  - id: acme\n"
        "    name: Acme\n"
        "    domain: acme.test\n"
        "    contract: {id: C-1}\n"
        '    main_number: "+33140000401"\n'
        "    lines:\n"
        "      - extension: 401\n"
        "        name: Alice\n"
        '        direct_number: "+33140000401"\n'
        "        password: s3cret  # temporary\n"
        "        device: {model: softphone}\n",
        encoding="utf-8",
    )
    status, out = run(args(rewrite=str(tmp_path)))
    assert status == 0
    assert out == f"{tmp_path / DIRECTORY_FILE}: 1 clear secret(s) replaced by their hash\n"
    assert "s3cret" not in (tmp_path / DIRECTORY_FILE).read_text(encoding="utf-8")
    assert load_directory(tmp_path).ha1_for("401", "acme.test", "MD5") == ha1(
        "401", "acme.test", "s3cret"
    )
    # A file path works too, and a second run has nothing to do.
    status, out = run(args(rewrite=str(tmp_path / DIRECTORY_FILE)))
    assert status == 0
    assert ": 0 clear secret(s)" in out


def test_rewrite_reports_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / DIRECTORY_FILE).write_text("companies: [password: x\n", encoding="utf-8")
    status, _ = run(args(rewrite=str(tmp_path)))
    assert status == 1
    assert f"{tmp_path / DIRECTORY_FILE}:2:1: YAML:" in capsys.readouterr().err
