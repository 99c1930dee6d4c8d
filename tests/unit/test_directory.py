"""The company directory: the example, every error with its exact line, lookups, rewriting."""

from __future__ import annotations

import os
import shutil
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.restrictions import NO_TABLE
from routing.source import ConfigErrors, load_yaml
from switch.directory import (
    DIRECTORY_FILE,
    STANDARD_GROUP,
    Directory,
    Ha1,
    hash_pin,
    load_directory,
    normalize_mac,
    rewrite_clear_passwords,
    verify_pin,
)
from switch.sip.auth import ha1

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example"
INVALID = Path(__file__).resolve().parent / "directory_invalid"
CASES = sorted(p.name for p in INVALID.iterdir() if p.is_dir())

SMALL = """\
# A company typed by hand, clear secrets included.
companies:
  - id: acme
    name: Acme
    domain: Acme.Test
    contract: {id: C-1, name: Acme}
    main_number: "01 40 00 04 01"
    lines:
      # the reception desk
      - extension: 401
        name: Alice
        direct_number: "01 40 00 04 01"
        password: "s3cret"   # given on the phone
        # her desk phone
        device: {model: vvx, mac: "00:04:F2:AB:CD:EF"}
        voicemail: {pin: "0123"}
      - extension: 601
        name: Atelier
        password: other
        device: {model: softphone}
        voicemail:
          pin: 4321
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / DIRECTORY_FILE
    path.write_text(text, encoding="utf-8")
    return path


# -- the example ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Directory:
    return load_directory(EXAMPLE)


@pytest.mark.parametrize("extension", ["401", "402", "403", "404", "405", "601"])
@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_example_passwords_are_the_documented_ones(
    example: Directory, extension: str, algorithm: str
) -> None:
    expected = ha1(extension, "pbx.test", f"secret{extension}", algorithm)
    assert example.ha1_for(extension, "pbx.test", algorithm) == expected


def test_example_stores_no_clear_secret() -> None:
    data = load_yaml(EXAMPLE / DIRECTORY_FILE).data
    for company in data["companies"]:
        for line in company["lines"]:
            assert "password" not in line
            assert "ha1" in line
            assert "pin" not in line.get("voicemail", {})


def test_example_lines(example: Directory) -> None:
    company = example.company_for_domain("pbx.test")
    assert company is not None
    assert [ln.extension for ln in company.lines] == ["401", "402", "403", "404", "405", "601"]
    for ext in ("401", "402", "403"):
        line = company.line(ext)
        assert line is not None
        assert line.direct_number == f"+331400004{ext[1:]}"
        assert (line.restrictions.direct, line.restrictions.forwarded) == (10, 10)
        assert line.device.model == "softphone"
        assert line.device.mac is None
    internal = company.line("601")
    assert internal is not None
    assert internal.direct_number is None
    assert (internal.restrictions.direct, internal.restrictions.forwarded) == (1, 1)
    vvx, aastra = company.line("404"), company.line("405")
    assert vvx is not None
    assert aastra is not None
    assert (vvx.device.model, vvx.device.mac) == ("vvx", "0004f2000404")
    assert (aastra.device.model, aastra.device.mac) == ("67i", "00085d000405")
    assert aastra.max_calls == 2
    assert vvx.max_calls == 5
    assert company.main_line is not None
    assert company.main_line.extension == "401"
    assert [ln.extension for ln in company.group_members("500")] == ["402", "403"]
    assert len(company.group_members(STANDARD_GROUP)) == 6
    assert company.speed_dial(700) is not None
    assert company.speed_dial("701") is not None
    assert company.speed_dial("702") is None
    assert internal.voicemail.enabled is False
    line401 = company.line("401")
    assert line401 is not None
    assert line401.voicemail.check_pin("1234")
    assert not line401.voicemail.check_pin("1235")


def test_lookups(example: Directory) -> None:
    found = example.line_for("402", "PBX.TEST.")
    assert found is not None
    company, line = found
    assert (company.id, line.key, line.aor) == ("exemple-pme", "402@pbx.test", "sip:402@pbx.test")
    assert line.contract == "C-2000-SAV"
    assert example.line_for("499", "pbx.test") is None
    assert example.line_for("401", "other.test") is None
    assert example.ha1_for("499", "pbx.test", "MD5") is None
    assert example.ha1_for("401", "pbx.test", "SHA-512-256") is None
    assert example.ha1_for("401", "pbx.test", "md5-sess") == example.ha1_for(
        "401", "pbx.test", "MD5"
    )
    by_number = example.line_by_direct_number("+33140000403")
    assert by_number is not None
    assert by_number[1].extension == "403"
    by_national = example.line_by_direct_number("01 40 00 04 03")
    assert by_national is not None
    assert by_national[1].extension == "403"
    by_spaced = example.line_by_direct_number("+33 1 40 00 04 03")
    assert by_spaced is not None
    assert by_spaced[1].extension == "403"
    assert example.line_by_direct_number("+33140000499") is None
    assert example.line_by_direct_number("garbage") is None
    by_mac = example.line_by_mac("00-04-F2-00-04-04")
    assert by_mac is not None
    assert by_mac[1].extension == "404"
    assert example.line_by_mac("not a mac") is None
    assert len(example) == 6
    assert example.company("exemple-pme") is company


def test_directory_is_immutable(example: Directory) -> None:
    company, line = next(iter(example))
    with pytest.raises(AttributeError):
        line.max_calls = 9  # type: ignore[misc]
    with pytest.raises(AttributeError):
        company.lines = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        example.extra = 1  # type: ignore[attr-defined]


def test_absent_file_is_an_empty_directory(tmp_path: Path) -> None:
    directory = load_directory(tmp_path)
    assert len(directory) == 0
    assert directory.line_for("401", "pbx.test") is None
    assert directory.ha1_for("401", "pbx.test", "MD5") is None


# -- the company's restriction table --------------------------------------------------

TABLE = """\
companies:
  - id: acme
    name: Acme
    domain: acme.test
    contract: {id: C-1, name: Acme}
    main_number: "+33140000401"
    restrictions:
      profiles:
        8: {name: "Commerciaux", classes: [free, shared_cost, national, azur, mobile],
            allow: ["+32", "+41"], deny: ["0970"]}
        9: {classes: [emergency, free, national]}
      allow: ["+234", "00 53"]
      deny: ["+44 9", "08.97", "3639", "06"]
  - id: other
    name: Other
    domain: other.test
    contract: {id: C-2, name: Other}
    main_number: "+33140000402"
"""


def test_the_company_table_is_built_once_at_load(tmp_path: Path) -> None:
    write(tmp_path, TABLE)
    directory = load_directory(tmp_path)
    acme = directory.company("acme")
    assert acme is not None
    table = acme.restriction_table
    p8, p9 = table.profile(8), table.profile(9)
    assert p8 is not None
    assert p9 is not None
    assert (p8.name, sorted(p8.classes)) == (
        "Commerciaux",
        ["azur", "free", "mobile", "national", "shared_cost"],
    )
    assert [p.value for p in p8.allow.prefixes] == ["+32", "+41"]
    assert [p.value for p in p8.deny.prefixes] == ["+33970"]
    # A profile without a name keeps the operator's.
    assert (p9.name, sorted(p9.classes)) == (
        "Profil modifiable 2",
        ["emergency", "free", "national"],
    )
    assert not p9.allow
    assert [p.value for p in table.allow.prefixes] == ["+234", "+53"]
    deny = [p.value for p in table.deny.prefixes]
    # "06" stands for the overseas mobile blocks too (0692 → +262692...).
    assert deny[:4] == ["+449", "+33897", "3639", "+336"]
    assert "+262692" in deny
    # A company without the block: the operator's table only.
    other = directory.company("other")
    assert other is not None
    assert other.restriction_table == NO_TABLE
    assert not other.restriction_table


def test_the_example_defines_no_company_table(example: Directory) -> None:
    company = example.company("exemple-pme")
    assert company is not None
    assert company.restriction_table == NO_TABLE


# -- invalid files -------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_invalid_file_gives_its_exact_errors(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ``directory_invalid/<case>/directory.yaml`` fails with ``expected.txt``."""
    monkeypatch.chdir(INVALID / case)
    expected = (INVALID / case / "expected.txt").read_text(encoding="utf-8").splitlines()
    with pytest.raises(ConfigErrors) as info:
        load_directory(Path())
    assert [str(e) for e in info.value.errors] == expected


def test_there_is_one_case_per_error_kind() -> None:
    assert len(CASES) >= 40
    for case in CASES:
        assert (INVALID / case / "expected.txt").is_file(), case


# -- clear secrets -------------------------------------------------------------------


def test_clear_secrets_load_as_hashes(tmp_path: Path) -> None:
    write(tmp_path, SMALL)
    directory = load_directory(tmp_path)
    company = directory.company_for_domain("acme.test")
    assert company is not None
    assert company.domain == "acme.test"
    assert company.main_number == "+33140000401"
    assert company.company_number == "+33140000401"
    line = company.line("401")
    assert line is not None
    # The realm is the domain as loaded: lower-case.
    assert line.ha1.md5 == ha1("401", "acme.test", "s3cret", "MD5")
    assert line.ha1.sha256 == ha1("401", "acme.test", "s3cret", "SHA-256")
    assert line.voicemail.pin_hash is not None
    assert line.voicemail.check_pin("0123")
    internal = company.line("601")
    assert internal is not None
    assert internal.voicemail.check_pin("4321")  # an unquoted PIN is still its digits
    assert line.device.mac == "0004f2abcdef"


def test_rewrite_replaces_secrets_and_keeps_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    before = load_directory(tmp_path)
    assert rewrite_clear_passwords(path) == 4
    text = path.read_text(encoding="utf-8")
    assert "password" not in text
    assert "pin:" not in text
    assert "s3cret" not in text
    assert "0123" not in text
    # Comments, order, quotes and layout stay.
    assert text.startswith("# A company typed by hand, clear secrets included.\n")
    assert "      # the reception desk\n      - extension: 401\n" in text
    assert '        direct_number: "01 40 00 04 01"\n        ha1:\n          md5: ' in text
    assert "\n        # her desk phone\n        device:" in text
    assert "given on the phone" not in text  # the secret's own comment goes with it
    after = load_directory(tmp_path)
    for (_, old), (_, new) in zip(before, after, strict=True):
        assert old.ha1 == new.ha1
        assert new.voicemail.pin_hash != old.voicemail.pin_hash  # random salt in the file
    line = after.line_for("401", "acme.test")
    assert line is not None
    assert line[1].voicemail.check_pin("0123")
    # Nothing left to do the second time; the file is not touched.
    mtime = path.stat().st_mtime_ns
    assert rewrite_clear_passwords(path) == 0
    assert path.stat().st_mtime_ns == mtime


def test_rewrite_keeps_file_mode(tmp_path: Path) -> None:
    path = write(tmp_path, SMALL)
    path.chmod(0o640)
    assert rewrite_clear_passwords(path) == 4
    assert path.stat().st_mode & 0o777 == 0o640


def test_rewrite_leaves_a_file_it_may_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, SMALL)
    monkeypatch.setattr(os, "access", lambda *_args, **_kw: False)
    assert rewrite_clear_passwords(path) == 0
    assert path.read_text(encoding="utf-8") == SMALL


def test_rewrite_of_the_example_changes_nothing(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE / DIRECTORY_FILE, tmp_path / DIRECTORY_FILE)
    assert rewrite_clear_passwords(tmp_path / DIRECTORY_FILE) == 0
    assert rewrite_clear_passwords(tmp_path / "absent.yaml") == 0


def test_rewrite_leaves_invalid_entries_to_the_loader(tmp_path: Path) -> None:
    text = SMALL.replace('password: "s3cret"', 'password: "s3cret"\n        ha1: {md5: x}')
    path = write(tmp_path, text)
    assert rewrite_clear_passwords(path) == 3  # 401 has both: left alone
    assert 'password: "s3cret"' in path.read_text(encoding="utf-8")
    with pytest.raises(ConfigErrors):
        load_directory(tmp_path)


def test_rewrite_reports_yaml_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "companies:\n  - password: [x\n")
    with pytest.raises(ConfigErrors) as info:
        rewrite_clear_passwords(path)
    assert str(info.value.errors[0]).startswith(f"{path}:3:1: YAML:")


def test_rewrite_with_other_indentation(tmp_path: Path) -> None:
    text = """\
companies:
- id: acme
  name: Acme
  domain: acme.test
  contract:
      id: C-1
  main_number: "+33140000401"
  lines:
  - extension: 401
    name: Alice
    direct_number: "+33140000401"
    password: s3cret
    device:
        model: softphone
"""
    path = write(tmp_path, text)
    before = load_directory(tmp_path)
    assert rewrite_clear_passwords(path) == 1
    assert path.read_text(encoding="utf-8") == text.replace(
        "    password: s3cret\n",
        f"    ha1:\n        md5: {ha1('401', 'acme.test', 's3cret')}\n"
        f"        sha256: {ha1('401', 'acme.test', 's3cret', 'SHA-256')}\n",
    )
    after = load_directory(tmp_path)
    assert [ln.ha1 for _, ln in before] == [ln.ha1 for _, ln in after]


# -- small pieces --------------------------------------------------------------------


def test_pin_hash_round_trip() -> None:
    stored = hash_pin("2468", b"0123456789abcdef")
    assert stored.startswith("pbkdf2-sha256$20000$")
    assert verify_pin("2468", stored)
    assert not verify_pin("2469", stored)
    assert not verify_pin("2468", "plain-text")
    with pytest.raises(ValueError, match="salt"):
        hash_pin("2468", b"short")


def test_ha1_needs_one_algorithm() -> None:
    only_sha = Ha1(sha256="a" * 64)
    assert only_sha.for_algorithm("SHA-256") == "a" * 64
    assert only_sha.for_algorithm("MD5") is None
    assert Ha1.from_password("401", "PBX.test", "x").md5 == ha1("401", "pbx.test", "x")


_HEX = "0123456789abcdefABCDEF"


@given(
    st.binary(min_size=6, max_size=6),
    st.sampled_from(["", ":", "-", " "]),
    st.booleans(),
)
def test_mac_normalisation(raw: bytes, separator: str, upper: bool) -> None:
    text = separator.join(f"{b:02x}" for b in raw)
    if upper:
        text = text.upper()
    assert normalize_mac(text) == raw.hex()
    dotted = raw.hex()[:4] + "." + raw.hex()[4:8] + "." + raw.hex()[8:]
    assert normalize_mac(dotted) == raw.hex()


@given(st.text(alphabet=_HEX + ":-. g" + string.punctuation, max_size=24))
def test_mac_normalisation_never_raises(text: str) -> None:
    result = normalize_mac(text)
    assert result is None or (len(result) == 12 and result == result.lower())


# -- groups and mobiles (switch.line_call) ---------------------------------------------

GROUPS = """\
companies:
  - id: acme
    name: Acme
    domain: acme.test
    contract: {id: C-1, name: Acme}
    main_number: "+33140000401"
    standard: {ring_s: 8, overflow: "601"}
    groups:
      - number: 500
        name: Vente
        strategy: sequential
        ring_s: 4
        overflow: "0612345678"
        night:
          destination: "601"
          calendar:
            periods:
              ouvert: [{days: [mon, tue, wed, thu, fri], ranges: ["08:00-18:00"]}]
    lines:
      - extension: 401
        name: Alice
        direct_number: "+33140000401"
        password: a
        device: {model: softphone}
        groups: [999, 500]
        mobile: {number: "+33612345678", mode: after, rings: 2}
      - extension: 601
        name: Atelier
        password: b
        device: {model: softphone}
"""


def test_groups_and_mobile_are_read(tmp_path: Path) -> None:
    write(tmp_path, GROUPS)
    company = load_directory(tmp_path).companies[0]
    group = company.group("500")
    assert group is not None
    assert (group.strategy, group.ring_s, group.overflow) == ("sequential", 4, "+33612345678")
    assert group.night is not None
    assert group.night.destination == "601"
    assert group.night.calendar is not None
    standard = company.group(STANDARD_GROUP)
    assert standard is not None
    assert (standard.ring_s, standard.overflow, standard.night) == (8, "601", None)
    line = company.line("401")
    assert line is not None
    assert line.mobile is not None
    assert (line.mobile.number, line.mobile.mode, line.mobile.delay_s) == (
        "+33612345678",
        "after",
        10.0,
    )
    other = company.line("601")
    assert other is not None
    assert other.mobile is None


def test_example_groups_keep_their_defaults(example: Directory) -> None:
    company = example.companies[0]
    group = company.group("500")
    assert group is not None
    assert (group.ring_s, group.overflow, group.night) == (20, None, None)


@pytest.mark.parametrize("value", ["off", "offer", "require"])
def test_device_srtp_is_read(tmp_path: Path, value: str) -> None:
    text = SMALL.replace(
        "device: {model: softphone}", f"device: {{model: softphone, srtp: {value}}}"
    )
    write(tmp_path, text)
    company = load_directory(tmp_path).company_for_domain("acme.test")
    assert company is not None
    line = company.line("601")
    assert line is not None
    assert line.device.srtp == value  # ``off`` unquoted stays a word (YAML 1.2)


def test_device_srtp_defaults_to_off(example: Directory) -> None:
    assert {line.device.srtp for _, line in example} == {"off"}


def test_device_srtp_refuses_other_values(tmp_path: Path) -> None:
    write(
        tmp_path,
        SMALL.replace("device: {model: softphone}", "device: {model: softphone, srtp: yes}"),
    )
    with pytest.raises(ConfigErrors, match=r"lines\[1\]\.device\.srtp"):
        load_directory(tmp_path)
