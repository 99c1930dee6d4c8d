"""Loading routing directories: the example, every error with its exact line, scale."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from routing.loader import Library, LibraryHolder, WavError, load_library, wav_seconds
from routing.program import CalendarStep, GnrStep
from routing.source import ConfigErrors
from tests.routing_support import generate_library

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "example"
INVALID = Path(__file__).resolve().parent / "invalid"
CASES = sorted(p.name for p in INVALID.iterdir() if p.is_dir())


def errors_of(routing_dir: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load_library(routing_dir)
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize("case", CASES)
def test_invalid_directory_gives_its_exact_error(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each ``invalid/<case>/routing`` fails with the lines of ``expected.txt``.

    A first line ``# subset`` means: these lines, possibly among others (errors
    owned by another module that may add follow-up lines).
    """
    monkeypatch.chdir(INVALID / case)
    lines = (INVALID / case / "expected.txt").read_text(encoding="utf-8").splitlines()
    got = errors_of(Path("routing"))
    if lines and lines[0].startswith("# subset"):
        assert set(lines[1:]) <= set(got)
    else:
        assert got == lines


def test_there_is_one_case_per_error_kind() -> None:
    assert len(CASES) >= 35
    for case in CASES:
        assert (INVALID / case / "expected.txt").is_file(), case


def test_example_loads() -> None:
    library = load_library(EXAMPLE / "routing")
    assert set(library.numbers) == {"+33800100100", "+33891100100", "+33970100100"}
    free = library.find_number("0800100100")
    surcharged = library.find_number("08 91 10 01 00")
    assert free is not None
    assert surcharged is not None
    # Mutualisation: both numbers run the same program object of the library.
    assert free.service.program == surcharged.service.program == "centre-appels"
    assert free.service.limit == 3
    assert surcharged.service.atp is not None
    atp = library.messages[surcharged.service.atp.message]
    assert atp.duration_s is not None
    assert atp.duration_s >= 10
    calendar = library.programs["centre-appels"].steps[0]
    assert isinstance(calendar, CalendarStep)
    gnr = calendar.branches["ouvert"][0]
    assert isinstance(gnr, GnrStep)
    assert [t.number for t in gnr.targets] == ["401", "402", "403"]
    assert (gnr.ring_s, gnr.rounds, gnr.strategy.value) == (15, 2, "sequential")
    assert free.service.backup_plans == {"site-hors-service": "secours-403"}
    assert library.main_contract["C-1000-SAV"] == "C-1000"
    assert Library.load(EXAMPLE / "routing").digest == library.digest


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    routing = tmp_path / "routing"
    routing.mkdir()
    (routing / "a.yaml").write_text(
        "programs:\n  p:\n    steps:\n      - {type: gnr, targets: []}\n"
    )
    (routing / "b.yaml").write_text(
        "numbers:\n  '0891000000':\n    program: p\n    contract: X\n"
        "  '0891000001':\n    program: q\n"
    )
    (routing / "c.yaml").write_text("programs: [\n")
    got = [line.replace(str(tmp_path) + "/", "") for line in errors_of(routing)]
    assert got == [
        "routing/a.yaml:4:21: programs.p.steps[0].targets: "
        "a GNR holds 1 to 10 reception numbers, not 0",
        "routing/c.yaml:2:1: YAML: expected the node content, but found '<stream end>'",
        # p is declared (in a.yaml, invalid): no "unknown program 'p'" on top.
        "routing/b.yaml:4:5: numbers.0891000000.contract: unknown contract 'X'",
        "routing/b.yaml:6:5: numbers.0891000001.program: unknown program 'q'",
    ]


def test_missing_directory(tmp_path: Path) -> None:
    assert errors_of(tmp_path / "nope") == [f"{tmp_path / 'nope'}:1:1: not a directory"]


def test_failed_reload_keeps_the_running_library(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "config")
    routing = tmp_path / "config" / "routing"
    holder = LibraryHolder(load_library(routing))
    running = holder.current
    shop = routing / "shop.yaml"
    shop.write_text(shop.read_text().replace("program: boutique", "program: boutik"))
    errors = holder.reload(routing)
    assert [e.message for e in errors] == ["unknown program 'boutik'"]
    assert holder.current is running
    shop.write_text(shop.read_text().replace("program: boutik", "program: centre-appels"))
    assert holder.reload(routing) == []
    assert holder.current is not running
    assert holder.current.digest != running.digest
    number = holder.current.find_number("0970100100")
    assert number is not None
    assert number.service.program == "centre-appels"


def test_backup_plan_switch_is_a_new_library() -> None:
    library = load_library(EXAMPLE / "routing")
    on = library.with_active_backup("0800100100", "site-hors-service")
    entry = on.find_number("0800100100")
    assert entry is not None
    assert on.program_for(entry)[::2] == ("secours-403", "site-hors-service")
    before = library.find_number("0800100100")
    assert before is not None
    assert library.program_for(before)[2] is None
    with pytest.raises(KeyError):
        library.with_active_backup("0800100100", "greve")
    with pytest.raises(KeyError):
        library.with_active_backup("0899999999", None)


def test_ten_thousand_numbers_load(tmp_path: Path) -> None:
    """Speed and memory are measured in bench/routing.py; this checks it loads and resolves."""
    routing = generate_library(tmp_path, numbers=10_000, programs=100)
    library = load_library(routing)
    assert len(library.numbers) == 10_000
    assert len(library.programs) == 100
    entry = library.find_number("0970009999")
    assert entry is not None
    assert entry.service.program == "prog-99"


def test_short_and_e164_number_keys(tmp_path: Path) -> None:
    routing = tmp_path / "routing"
    routing.mkdir()
    (routing / "a.yaml").write_text(
        "programs:\n  p:\n    steps: [{type: dial, number: '401'}]\n"
        "numbers:\n  '3900':\n    program: p\n  '+262 262 12 34 56':\n    program: p\n"
    )
    library = load_library(routing)
    assert set(library.numbers) == {"3900", "+262262123456"}
    reunion = library.find_number("0262 12 34 56")
    assert reunion is not None
    assert reunion.national == "0262123456"
    assert library.find_number("3900") is library.numbers["3900"]


def riff(fmt_tag: int, rate: int, block: int, data: bytes, *, fact: int | None = None) -> bytes:
    """A WAV file by hand: ``fmt `` (tag, 1 channel, rate, rate*block, block), an
    optional ``fact`` chunk, then ``data``."""
    bits = 8 * block if fmt_tag != 6 and fmt_tag != 7 else 8
    fmt = struct.pack("<HHIIHH", fmt_tag, 1, rate, rate * block, block, bits)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if fact is not None:
        chunks += b"fact" + struct.pack("<I", 4) + struct.pack("<I", fact)
    chunks += b"data" + struct.pack("<I", len(data)) + data + (b"\0" if len(data) & 1 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@pytest.mark.parametrize(
    ("name", "content", "seconds"),
    [
        ("pcm16", riff(1, 8000, 2, bytes(2 * 8000 * 3)), 3.0),
        ("float32", riff(3, 16000, 4, bytes(4 * 16000 * 2), fact=32000), 2.0),
        ("mulaw", riff(7, 8000, 1, bytes(8000 * 12)), 12.0),
        ("alaw-odd", riff(6, 8000, 1, bytes(4001)), 4001 / 8000),
    ],
)
def test_wav_length_of_any_encoding(
    tmp_path: Path, name: str, content: bytes, seconds: float
) -> None:
    """The standard ``wave`` module refuses float and G.711 WAVs, which the
    announcement library plays: the loader measures them from their header."""
    path = tmp_path / f"{name}.wav"
    path.write_bytes(content)
    assert wav_seconds(path) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "content",
    [b"", b"RIFF\0\0\0\0WAVX", riff(1, 8000, 2, b"")[:36], b"RIFF\x04\0\0\0WAVEdata\0\0\0\0"],
)
def test_wav_length_refuses_what_is_not_a_wav(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(WavError):
        wav_seconds(path)


def test_a_mulaw_message_loads(tmp_path: Path) -> None:
    """A µ-law message of the declared length is accepted (it used to be refused)."""
    shutil.copytree(EXAMPLE / "routing", tmp_path / "routing")
    shutil.copytree(EXAMPLE / "messages", tmp_path / "messages")
    measured = wav_seconds(tmp_path / "messages" / "fermeture.wav")
    (tmp_path / "messages" / "fermeture.wav").write_bytes(
        riff(7, 8000, 1, bytes(round(8000 * measured)))
    )
    library = load_library(tmp_path / "routing")
    assert library.messages["fermeture"].duration_s == pytest.approx(measured)
