"""ivr.announcements: message files to RTP frames, checked by what they sound like.

Every check decodes the frames back (``media.g711`` for G.711, FFmpeg's G.722
decoder through ``media.codecs``) and looks for the tone that was written with
``media.tone.detect``, then counts 20 ms frames against the written duration.

G.729: FFmpeg has a G.729 decoder but no encoder, so the fixture
``data/tone-1khz.g729`` (1 s of 1 kHz) was encoded once by an independent
encoder, bcg729, and is kept in the repository; ``data/make_g729.py``
regenerates it. Tests wrap it in a WAV in tmp_path as well.
"""

from __future__ import annotations

import os
import sys
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from ivr.announcements import (
    BEEP_GAP_MS,
    CODECS,
    FRAME_BYTES,
    TONES,
    AnnouncementError,
    Announcements,
    codec_for,
    tone_frames,
)
from media import g711, tone
from media.codecs import Pcm, decode_file, g722_decode
from media.rtp import RtpPacket
from routing.loader import load_library
from tests.unit.ivr.audio_files import FORMATS, G729_FIXTURE, g729_wav, tone_wav

ROOT = Path(__file__).resolve().parents[3]
PURE = 0.95
FRAME_S = 0.02


def _pcm(frames: Sequence[bytes], codec: str) -> Pcm:
    """The audio the far end hears from ``frames``, at the codec's own rate."""
    data = b"".join(frames)
    if codec == "G722":
        return Pcm(g722_decode(data), 16000)
    return Pcm(g711.decode(codec, data), 8000)


def _middle(pcm: Pcm, skip_ms: int = 20) -> bytes:
    edge = 2 * (pcm.rate * skip_ms // 1000)
    return pcm.data[edge:-edge]


def _frames(a: Announcements, message: str, codec: str, *, beep: bool = False) -> list[bytes]:
    return list(a.frames(message, codec, beep=beep))


def _check_tone(a: Announcements, message: str, freq: float, duration_s: float) -> None:
    for codec in CODECS:
        frames = _frames(a, message, codec)
        assert {len(f) for f in frames} == {FRAME_BYTES}
        assert abs(len(frames) * FRAME_S - duration_s) < FRAME_S, codec
        pcm = _pcm(frames, codec)
        assert tone.detect(_middle(pcm), pcm.rate, freq) > PURE, codec
    assert abs(a.duration(message) - duration_s) < FRAME_S


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_rates_to_every_codec(tmp_path: Path, rate: int) -> None:
    a = Announcements({"m": tone_wav(tmp_path / "m.wav", [1000], rate=rate, duration_ms=700)})
    _check_tone(a, "m", 1000, 0.7)


@pytest.mark.parametrize(("fmt", "rate"), [(f, r) for f in FORMATS for r in (8000, 44100)])
def test_sample_formats_to_every_codec(tmp_path: Path, fmt: str, rate: int) -> None:
    a = Announcements({"m": tone_wav(tmp_path / "m.wav", [1000], rate=rate, fmt=fmt)})
    _check_tone(a, "m", 1000, 1.0)


def test_duration_not_a_whole_number_of_frames(tmp_path: Path) -> None:
    a = Announcements({"m": tone_wav(tmp_path / "m.wav", [1000], rate=22050, duration_ms=1010)})
    _check_tone(a, "m", 1000, 1.01)
    assert len(a.frames("m", "PCMU")) == 51  # the last 10 ms padded with silence


def test_stereo_is_mixed_to_mono(tmp_path: Path) -> None:
    a = Announcements({"m": tone_wav(tmp_path / "m.wav", [600, 1000], rate=44100)})
    for codec in CODECS:
        pcm = _pcm(_frames(a, "m", codec), codec)
        assert tone.detect(_middle(pcm), pcm.rate, 600) > 0.4, codec
        assert tone.detect(_middle(pcm), pcm.rate, 1000) > 0.4, codec


def test_g711_wav_at_8k_passes_through_byte_for_byte(tmp_path: Path) -> None:
    mulaw = tone_wav(tmp_path / "u.wav", [1000], fmt="ulaw")
    alaw = tone_wav(tmp_path / "a.wav", [1000], fmt="alaw")
    a = Announcements({"u": mulaw, "a": alaw})
    assert b"".join(a.frames("u", "PCMU")) == mulaw.read_bytes()[-8000:]
    assert b"".join(a.frames("a", "PCMA")) == alaw.read_bytes()[-8000:]


def test_g729_raw_and_in_wav(tmp_path: Path) -> None:
    """The studio's G.729 (bcg729-encoded fixture, see the module docstring)."""
    wrapped = g729_wav(tmp_path / "g729.wav", G729_FIXTURE.read_bytes())
    a = Announcements({"raw": G729_FIXTURE, "wav": wrapped})
    assert a.preload() == []
    for message in ("raw", "wav"):
        for codec in CODECS:
            frames = _frames(a, message, codec)
            assert len(frames) == 50  # 100 G.729 frames of 10 ms
            pcm = _pcm(frames, codec)
            # G.729 takes a few frames to converge: judge from 100 ms on.
            assert tone.detect(_middle(pcm, 100), pcm.rate, 1000) > PURE, codec


def test_malformed_and_missing_files_are_reported_not_raised(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF but not really a wave file" * 8)
    good = tone_wav(tmp_path / "good.wav", [1000])
    a = Announcements({"bad": bad, "gone": tmp_path / "gone.wav", "good": good, "again": bad})
    errors = a.preload()
    assert sorted(str(e.path) for e in errors) == [str(bad), str(tmp_path / "gone.wav")]
    by_path = {e.path: e for e in errors}
    assert str(by_path[bad]).startswith(f"{bad}: ")
    assert str(by_path[bad]).endswith("(message bad, again)")
    assert by_path[bad].messages == ("bad", "again")
    with pytest.raises(AnnouncementError, match=r"bad\.wav"):
        a.frames("bad", "PCMU")
    with pytest.raises(AnnouncementError, match=r"gone\.wav"):
        a.duration("gone")
    assert len(a.frames("good", "PCMU")) == 50


def test_a_failed_file_is_not_decoded_again_per_call(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"junk" * 100)
    calls, decoder = _counting()
    a = Announcements({"bad": bad}, decoder=decoder)
    assert len(a.preload()) == 1
    for _ in range(3):
        with pytest.raises(AnnouncementError):
            a.frames("bad", "PCMA")
    assert calls == [bad]


def test_unknown_message_and_codec(tmp_path: Path) -> None:
    a = Announcements({"m": tone_wav(tmp_path / "m.wav", [1000])})
    with pytest.raises(KeyError):
        a.frames("other", "PCMU")
    with pytest.raises(KeyError):
        a.duration("other")
    with pytest.raises(KeyError):
        a.player("other", "PCMU", 0, ssrc=1, seq0=0, ts0=0)
    with pytest.raises(ValueError, match="cannot play 'GSM'"):
        a.frames("m", "GSM")


def test_nothing_is_read_before_it_is_needed(tmp_path: Path) -> None:
    calls, decoder = _counting()
    a = Announcements({"m": tone_wav(tmp_path / "m.wav", [1000])}, decoder=decoder)
    assert calls == []
    a.frames("m", "PCMU")
    a.frames("m", "G722", beep=True)
    a.duration("m")
    assert len(calls) == 1


def test_frames_are_cached_per_codec_and_beep(tmp_path: Path) -> None:
    a = Announcements({"m": tone_wav(tmp_path / "m.wav", [1000])})
    assert a.preload() == []
    for codec in CODECS:
        for beep in (False, True):
            assert a.frames("m", codec, beep=beep) is a.frames("m", codec.lower(), beep=beep)


@pytest.mark.parametrize("codec", CODECS)
def test_beep_ends_the_atp(tmp_path: Path, codec: str) -> None:
    a = Announcements({"atp": tone_wav(tmp_path / "atp.wav", [500], rate=16000, duration_ms=600)})
    message = _frames(a, "atp", codec)
    whole = _frames(a, "atp", codec, beep=True)
    gap = BEEP_GAP_MS // 20
    beep = len(whole) - len(message) - gap
    assert beep * 20 in range(250, 300)  # tone.BEEP: 250 ms, padded to whole frames
    # The message frames are the very same in both variants: skip() can jump to the gap.
    assert whole[: len(message)] == message
    pcm = _pcm(whole, codec)
    per_frame = 2 * pcm.rate // 50
    tail = pcm.data[-12 * per_frame :]
    assert tone.dominant_frequency(tail, pcm.rate, [500, 1000]) == 1000
    assert tone.detect(tail, pcm.rate, 1000) > PURE
    # The gap is silent (G.722's adaptation and the resampler settle in its first 40 ms).
    gap_pcm = pcm.data[(len(message) + 2) * per_frame : (len(message) + gap - 1) * per_frame]
    samples = array("h", gap_pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    assert max(map(abs, samples)) < 200  # -44 dBFS


@pytest.mark.parametrize("codec", CODECS)
def test_player_stamps_160_per_packet_and_marks_the_first(tmp_path: Path, codec: str) -> None:
    a = Announcements({"m": tone_wav(tmp_path / "m.wav", [1000], duration_ms=200)})
    player = a.player("m", codec, 9, ssrc=0xCAFE, seq0=65534, ts0=2**32 - 160, start=100.0)
    assert player.next_deadline() == 100.0
    packets = [RtpPacket.parse(p) for p in player.due(100.0 + 9 * 0.02)]
    assert player.done
    assert len(packets) == 10
    assert [p.timestamp for p in packets] == [(2**32 - 160 + 160 * k) % 2**32 for k in range(10)]
    assert [p.sequence_number for p in packets] == [(65534 + k) % 65536 for k in range(10)]
    assert [p.marker for p in packets] == [True] + [False] * 9
    assert {(p.payload_type, p.ssrc, len(p.payload)) for p in packets} == {(9, 0xCAFE, 160)}
    assert [p.payload for p in packets] == list(a.frames("m", codec))


def test_player_with_beep(tmp_path: Path) -> None:
    a = Announcements({"m": tone_wav(tmp_path / "m.wav", [1000], duration_ms=200)})
    player = a.player("m", "PCMA", 8, ssrc=1, seq0=0, ts0=0, beep=True)
    packets = player.due(0.0) + player.due(10.0)
    assert len(packets) == len(a.frames("m", "PCMA", beep=True))


def _counting() -> tuple[list[Path], Callable[[Path], Pcm]]:
    calls: list[Path] = []

    def decoder(path: Path) -> Pcm:
        calls.append(path)
        return decode_file(path)

    return calls, decoder


def _routing(tmp_path: Path, files: dict[str, str]) -> Path:
    routing = tmp_path / "routing"
    routing.mkdir(exist_ok=True)
    lines = ["messages:"] + [f"  {m}:\n    file: {f}" for m, f in files.items()]
    (routing / "messages.yaml").write_text("\n".join(lines) + "\n")
    return routing


def test_hot_reload_decodes_only_what_changed(tmp_path: Path) -> None:
    messages = tmp_path / "messages"
    messages.mkdir()
    same = tone_wav(messages / "same.wav", [500])
    edited = tone_wav(messages / "edited.wav", [700])
    routing = _routing(tmp_path, {"same": "same.wav", "edited": "edited.wav"})
    calls, decoder = _counting()
    first = Announcements.from_library(load_library(routing), decoder=decoder)
    assert first.preload() == []
    assert sorted(calls) == [edited, same]
    before = first.frames("edited", "PCMU")

    tone_wav(edited, [1300], duration_ms=800)  # the studio's new recording
    stat = edited.stat()
    os.utime(edited, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    (messages / "added.wav").write_bytes(same.read_bytes())
    routing = _routing(tmp_path, {"same": "same.wav", "edited": "edited.wav", "new": "added.wav"})
    calls.clear()
    second = Announcements.from_library(load_library(routing), previous=first)
    assert second.preload() == []
    assert sorted(calls) == [messages / "added.wav", edited]  # not same.wav
    for codec in CODECS:
        for beep in (False, True):
            assert second.frames("same", codec, beep=beep) is first.frames("same", codec, beep=beep)
    after = second.frames("edited", "PCMU")
    assert len(after) == 40
    pcm = _pcm(after, "PCMU")
    assert tone.dominant_frequency(_middle(pcm), 8000, [700, 1300]) == 1300
    assert first.frames("edited", "PCMU") is before  # the running library is untouched


def test_same_size_rewrite_with_a_new_mtime_is_a_change(tmp_path: Path) -> None:
    messages = tmp_path / "messages"
    messages.mkdir()
    path = tone_wav(messages / "m.wav", [500])
    routing = _routing(tmp_path, {"m": "m.wav"})
    first = Announcements.from_library(load_library(routing))
    first.preload()
    tone_wav(path, [1300])  # same length, same size
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = Announcements.from_library(load_library(routing), previous=first)
    pcm = _pcm(second.frames("m", "PCMA"), "PCMA")
    assert tone.dominant_frequency(_middle(pcm), 8000, [500, 1300]) == 1300


def test_reload_retries_files_that_failed(tmp_path: Path) -> None:
    messages = tmp_path / "messages"
    messages.mkdir()
    path = tone_wav(messages / "m.wav", [500])
    routing = _routing(tmp_path, {"m": "m.wav"})
    library = load_library(routing)
    path.write_bytes(b"junk" * 50)  # damaged after the routing check
    first = Announcements.from_library(library)
    assert [e.path for e in first.preload()] == [path]
    tone_wav(path, [500])
    second = Announcements.from_library(library, previous=first)
    assert second.preload() == []


def test_example_messages_all_decode() -> None:
    library = load_library(ROOT / "config/example/routing")
    a = Announcements.from_library(library)
    assert a.preload() == []
    assert set(a.messages) == set(library.messages)
    for name, entry in library.messages.items():
        assert entry.duration_s is not None
        assert abs(a.duration(name) - entry.duration_s) < FRAME_S


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("kind", sorted(TONES))
def test_tone_frames_follow_their_cadence(kind: str, codec: str) -> None:
    frames = tone_frames(kind, codec)
    assert frames is tone_frames(kind, codec)
    cadence = TONES[kind]
    total_ms = sum(ms for _, ms in cadence)
    assert len(frames) == -(-total_ms // 20)
    assert {len(f) for f in frames} == {FRAME_BYTES}
    assert total_ms <= 5000  # finite: a few seconds at most
    pcm = _pcm(frames, codec)
    # Each segment, without its first and last 20 ms, is its tone or silence.
    at = 0
    for freq, ms in cadence:
        lo, hi = (at + 20) * pcm.rate // 1000, (at + ms - 20) * pcm.rate // 1000
        segment = pcm.data[2 * lo : 2 * hi]
        if freq:
            assert tone.detect(segment, pcm.rate, freq) > PURE, (kind, at)
        else:
            assert tone.dominant_frequency(segment, pcm.rate, [440, 1000]) is None, (kind, at)
        at += ms


def test_french_cadences() -> None:
    assert TONES["busy"][:2] == ((440.0, 500), (0.0, 500))
    assert TONES["congestion"][:2] == ((440.0, 250), (0.0, 250))
    assert TONES["ringback"] == ((440.0, 1500), (0.0, 3500))
    assert TONES["beep"] == ((1000.0, 250),)


def test_unknown_tone_kind_and_codec() -> None:
    with pytest.raises(KeyError):
        tone_frames("dial-of-doom", "PCMU")
    with pytest.raises(ValueError, match="cannot play"):
        tone_frames("busy", "G729")


@pytest.mark.parametrize(
    ("encoding", "codec"),
    [("PCMU", "PCMU"), ("pcmu", "PCMU"), ("pcma", "PCMA"), ("G722", "G722"), ("g722", "G722")],
)
def test_codec_for_known(encoding: str, codec: str) -> None:
    assert codec_for(encoding) == codec


@pytest.mark.parametrize("encoding", ["G729", "opus", "telephone-event", "", "PCM"])
def test_codec_for_unknown(encoding: str) -> None:
    assert codec_for(encoding) is None
