"""Tone generation and the Goertzel detector that tests use to hear the relay."""

from __future__ import annotations

import random
import struct

import pytest

from media import g711, tone

CANDIDATES = [440.0, 697.0, 1000.0, 1209.0, 2000.0, 3000.0]


def _noisy(pcm: bytes, snr_db: float, seed: int = 1) -> bytes:
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    power = sum(s * s for s in samples) / len(samples)
    sigma = (power / 10 ** (snr_db / 10)) ** 0.5
    rng = random.Random(seed)
    noisy = [max(-32768, min(32767, round(s + rng.gauss(0, sigma)))) for s in samples]
    return struct.pack(f"<{len(noisy)}h", *noisy)


def test_sine_length_and_amplitude() -> None:
    pcm = tone.sine(1000, 20, 8000, 0.5)
    samples = struct.unpack("<160h", pcm)
    assert max(samples) == round(0.5 * 32767)
    assert len(tone.sine(1000, 20, 16000)) == 640


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("freq", [1000.0, 2000.0])
def test_pure_tone_is_detected(rate: int, freq: float) -> None:
    pcm = tone.sine(freq, 500, rate)
    assert tone.detect(pcm, rate, freq) > 0.99
    other = 2000.0 if freq == 1000.0 else 1000.0
    assert tone.detect(pcm, rate, other) < 0.01
    assert tone.dominant_frequency(pcm, rate, CANDIDATES) == freq


@pytest.mark.parametrize("freq", CANDIDATES)
def test_dominant_frequency_at_10_db_snr(freq: float) -> None:
    pcm = _noisy(tone.sine(freq, 400), snr_db=10, seed=int(freq))
    assert tone.dominant_frequency(pcm, 8000, CANDIDATES) == freq
    assert tone.detect(pcm, 8000, freq) > 0.8


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
@pytest.mark.parametrize("freq", [1000.0, 2000.0])
def test_survives_g711_and_packet_loss(codec: str, freq: float) -> None:
    pcm = _noisy(tone.sine(freq, 1000), snr_db=10)
    received = bytearray(g711.decode(codec, g711.encode(codec, pcm)))
    for frame in (3, 17, 30):  # three lost 20 ms packets, played out as silence
        received[frame * 320 : (frame + 1) * 320] = bytes(320)
    assert tone.dominant_frequency(bytes(received), 8000, [1000.0, 2000.0]) == freq
    assert tone.detect(bytes(received), 8000, freq) > 0.75


def test_silence_and_wrong_tone_give_none() -> None:
    assert tone.dominant_frequency(tone.silence(200), 8000, CANDIDATES) is None
    assert tone.detect(tone.silence(200), 8000, 1000.0) == 0.0
    assert tone.dominant_frequency(tone.sine(1500, 200), 8000, [1000.0, 2000.0]) is None


def _segments(pcm: bytes, rate: int = 8000, step_ms: int = 50) -> str:
    """'1' for each step that holds 440 Hz, '0' for silence."""
    size = rate * step_ms // 1000 * 2
    return "".join(
        "1" if tone.detect(pcm[i : i + size], rate, 440.0) > 0.5 else "0"
        for i in range(0, len(pcm), size)
    )


@pytest.mark.parametrize(
    ("cadence", "pattern"),
    [
        pytest.param(tone.ACCEPTED, "110011001100", id="accepted"),
        pytest.param(tone.INACTIVE, "11110000" * 2, id="inactive"),
        pytest.param(tone.ACTIVE, "1" * 20, id="active"),
        pytest.param(tone.BUSY, "1" * 10 + "0" * 10, id="busy"),
        pytest.param(tone.REFUSED, ("1" * 10 + "0" * 10) * 3, id="refused"),
        pytest.param(tone.RINGBACK, "1" * 30 + "0" * 70, id="ringback"),
    ],
)
def test_cadences_render_as_documented(cadence: tone.Cadence, pattern: str) -> None:
    assert _segments(tone.render(cadence)) == pattern


def test_beep_is_1_khz() -> None:
    assert tone.dominant_frequency(tone.render(tone.BEEP), 8000, [440.0, 1000.0]) == 1000.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"amplitude must be in 0\.\.1"):
        tone.sine(440, 10, amplitude=2)
    with pytest.raises(ValueError, match="whole number of 16-bit samples"):
        tone.detect(b"\x00", 8000, 440)
