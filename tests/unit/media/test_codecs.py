"""media.codecs: audio files to PCM, resampling and G.722, through PyAV (FFmpeg).

Content is checked by ear, so to speak: a known tone goes in, and what comes
out must carry that tone (``media.tone.detect``: share of the power at the
frequency, 1.0 for a pure sine), not merely the right number of bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from media import g711, tone
from media.codecs import (
    AudioFileError,
    Pcm,
    decode_file,
    encode,
    g722_decode,
    g722_encode,
    resample,
)
from tests.unit.ivr.audio_files import FORMATS, G729_FIXTURE, g729_wav, riff, tone_wav

PURE = 0.95  # share of power at the tone's frequency that counts as "that tone"


def _trim(pcm: Pcm, ms: int = 20) -> bytes:
    """Without the first and last ``ms``: resampler and codec start-up transients."""
    edge = 2 * (pcm.rate * ms // 1000)
    return pcm.data[edge:-edge]


@pytest.mark.parametrize("rate", [8000, 11025, 16000])
def test_rates_up_to_16k_are_kept(tmp_path: Path, rate: int) -> None:
    pcm = decode_file(tone_wav(tmp_path / "t.wav", [1000], rate=rate, duration_ms=500))
    assert pcm.rate == rate
    assert pcm.samples == rate // 2
    assert tone.detect(_trim(pcm), rate, 1000) > PURE


@pytest.mark.parametrize("rate", [22050, 32000, 44100, 48000, 96000])
def test_higher_rates_are_resampled_to_16k(tmp_path: Path, rate: int) -> None:
    pcm = decode_file(tone_wav(tmp_path / "t.wav", [1000], rate=rate, duration_ms=500))
    assert pcm.rate == 16000
    assert abs(pcm.samples - 8000) <= 16  # a resampler may round at the edges
    assert tone.detect(_trim(pcm), 16000, 1000) > PURE


def test_max_rate_bounds_the_output_rate(tmp_path: Path) -> None:
    pcm = decode_file(tone_wav(tmp_path / "t.wav", [1000], rate=16000), max_rate=8000)
    assert (pcm.rate, pcm.samples) == (8000, 8000)
    assert tone.detect(_trim(pcm), 8000, 1000) > PURE


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_sample_format(tmp_path: Path, fmt: str) -> None:
    pcm = decode_file(tone_wav(tmp_path / "t.wav", [1000], rate=44100, fmt=fmt, duration_ms=500))
    assert pcm.rate == 16000
    assert tone.detect(_trim(pcm), 16000, 1000) > PURE


def test_8k_16_bit_pcm_comes_out_bit_exact(tmp_path: Path) -> None:
    pcm = decode_file(tone_wav(tmp_path / "t.wav", [1000], rate=8000))
    assert pcm.data == tone.sine(1000, 1000, 8000)


def test_mulaw_wav_is_expanded_with_the_g711_tables(tmp_path: Path) -> None:
    path = tone_wav(tmp_path / "t.wav", [1000], rate=8000, fmt="ulaw")
    payload = path.read_bytes()[-8000:]
    assert decode_file(path).data == g711.ulaw_decode(payload)


def test_stereo_is_mixed_not_one_channel_picked(tmp_path: Path) -> None:
    pcm = decode_file(tone_wav(tmp_path / "t.wav", [600, 1000], rate=48000))
    both = _trim(pcm)
    assert tone.detect(both, 16000, 600) > 0.4
    assert tone.detect(both, 16000, 1000) > 0.4


@pytest.mark.parametrize("wrapped", [False, True], ids=["raw", "wav"])
def test_g729_from_studios(tmp_path: Path, wrapped: bool) -> None:
    """The bitstream was encoded by bcg729 (FFmpeg decodes G.729 but cannot encode it)."""
    path = g729_wav(tmp_path / "t.wav", G729_FIXTURE.read_bytes()) if wrapped else G729_FIXTURE
    pcm = decode_file(path)
    assert (pcm.rate, pcm.samples) == (8000, 8000)  # 100 frames of 10 ms
    assert tone.detect(_trim(pcm, 100), 8000, 1000) > PURE


def test_raw_g729_is_recognised_by_suffix_whatever_its_case(tmp_path: Path) -> None:
    path = tmp_path / "ACCUEIL.G729"
    path.write_bytes(G729_FIXTURE.read_bytes())
    assert decode_file(path).samples == 8000


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.wav"
    with pytest.raises(AudioFileError, match=r"absent\.wav") as info:
        decode_file(path)
    assert info.value.path == path


def test_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_bytes(b"this is a text file, not a recording\n" * 20)
    with pytest.raises(AudioFileError, match=r"notes\.wav: .*[Ii]nvalid data"):
        decode_file(path)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    path.write_bytes(tone_wav(tmp_path / "whole.wav", [1000]).read_bytes()[:30])
    with pytest.raises(AudioFileError, match=r"cut\.wav"):
        decode_file(path)


def test_wav_without_samples(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(
        riff(b"", tag=1, rate=8000, channels=1, bits=16, block_align=2, byte_rate=16000)
    )
    with pytest.raises(AudioFileError, match=r"empty\.wav: no audio samples"):
        decode_file(path)


def test_resample_is_identity_at_the_same_rate() -> None:
    pcm = Pcm(tone.sine(1000, 100, 8000), 8000)
    assert resample(pcm, 8000) is pcm


def test_resample_16k_to_8k_keeps_the_tone() -> None:
    out = resample(Pcm(tone.sine(1000, 1000, 16000), 16000), 8000)
    assert out.rate == 8000
    assert abs(out.samples - 8000) <= 8
    assert tone.detect(_trim(out), 8000, 1000) > PURE


def test_g722_is_one_byte_per_two_samples_in_whole_frames() -> None:
    assert len(g722_encode(bytes(640))) == 160  # 20 ms
    assert len(g722_encode(bytes(2 * 330))) == 320  # padded to the next 20 ms
    with pytest.raises(ValueError, match="whole number"):
        g722_encode(b"\x00")


def test_g722_round_trip_carries_the_tone() -> None:
    data = g722_encode(tone.sine(1000, 1000, 16000))
    assert len(data) == 8000  # 64 kbit/s
    back = Pcm(g722_decode(data), 16000)
    assert back.samples == 16000
    assert tone.detect(_trim(back), 16000, 1000) > PURE


def test_g722_encoder_is_causal() -> None:
    """What the announcement library relies on to play a message as a prefix of message+beep."""
    message = tone.sine(700, 600, 16000)
    alone = g722_encode(message)
    assert g722_encode(message + tone.sine(1000, 300, 16000))[: len(alone)] == alone


@pytest.mark.parametrize(("codec", "size"), [("PCMU", 8000), ("pcma", 8000), ("G722", 8000)])
def test_encode_resamples_to_the_codec_rate(codec: str, size: int) -> None:
    for rate in (8000, 16000):
        assert len(encode(codec, Pcm(tone.sine(1000, 1000, rate), rate))) == size


def test_encode_pcmu_is_g711() -> None:
    pcm = tone.sine(1000, 100, 8000)
    assert encode("PCMU", Pcm(pcm, 8000)) == g711.ulaw_encode(pcm)


def test_encode_refuses_other_codecs() -> None:
    with pytest.raises(ValueError, match="no encoder for 'opus'"):
        encode("opus", Pcm(bytes(320), 8000))


def test_pcm_duration() -> None:
    assert Pcm(struct.pack("<4000h", *range(4000)), 8000).duration == 0.5
