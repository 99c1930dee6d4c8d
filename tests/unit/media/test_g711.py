"""G.711 tables: known values, round-trip bounds, cross-check with FFmpeg's codecs."""

from __future__ import annotations

import itertools
import math
import re
import struct

import pytest

from media import g711


def _pcm(samples: list[int]) -> bytes:
    return struct.pack(f"<{len(samples)}h", *samples)


def _samples(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm))


def test_known_ulaw_values() -> None:
    assert g711.ULAW_DECODE[0xFF] == 0
    assert g711.ULAW_DECODE[0x7F] == 0
    assert g711.ULAW_DECODE[0x00] == -32124
    assert g711.ULAW_DECODE[0x80] == 32124
    assert g711.linear_to_ulaw(0) == 0xFF
    assert g711.linear_to_ulaw(32767) == 0x80
    assert g711.linear_to_ulaw(-32768) == 0x00


def test_known_alaw_values() -> None:
    assert g711.ALAW_DECODE[0xD5] == 8
    assert g711.ALAW_DECODE[0x55] == -8
    assert g711.ALAW_DECODE[0xAA] == 32256
    assert g711.ALAW_DECODE[0x2A] == -32256
    assert g711.linear_to_alaw(0) == 0xD5
    assert g711.linear_to_alaw(32767) == 0xAA
    assert g711.linear_to_alaw(-32768) == 0x2A


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_every_code_survives_decode_then_encode(codec: str) -> None:
    codes = bytes(range(256))
    again = g711.encode(codec, g711.decode(codec, codes))
    if codec == "PCMU":
        # 0x7F (-0) decodes to 0, which encodes as 0xFF (+0): the one ambiguity.
        assert again == codes.replace(b"\x7f", b"\xff")
    else:
        assert again == codes


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_round_trip_error_is_within_half_a_step(codec: str) -> None:
    samples = list(range(-32768, 32768, 7))
    decoded = _samples(g711.decode(codec, g711.encode(codec, _pcm(samples))))
    for x, y in zip(samples, decoded, strict=True):
        # Quantisation steps double per segment: the error stays below the step
        # of the segment, about 1/16 of the magnitude (plus a floor near 0).
        assert abs(x - y) <= max(abs(x) / 16 + 8, 16) + (1024 if abs(x) > 32000 else 0)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_signal_to_noise_of_a_sine(codec: str) -> None:
    samples = [round(8000 * math.sin(2 * math.pi * 440 * i / 8000)) for i in range(8000)]
    decoded = _samples(g711.decode(codec, g711.encode(codec, _pcm(samples))))
    signal = sum(x * x for x in samples)
    noise = sum((x - y) ** 2 for x, y in zip(samples, decoded, strict=True))
    assert 10 * math.log10(signal / noise) > 33  # G.711: about 38 dB


@pytest.mark.parametrize(("codec", "ffmpeg"), [("PCMU", "pcm_mulaw"), ("PCMA", "pcm_alaw")])
def test_decoding_matches_ffmpeg(codec: str, ffmpeg: str) -> None:
    # FFmpeg's *encoder* rounds to the nearest level, which moves the decision
    # values at segment edges away from G.711's (512 samples differ); its
    # decoder is the G.711 table, so that is what is compared.
    av = pytest.importorskip("av")
    decoder = av.CodecContext.create(ffmpeg, "r")
    decoder.format = "s16"
    decoder.layout = "mono"
    decoder.sample_rate = 8000
    codes = bytes(range(256))
    decoded = b"".join(
        bytes(f.planes[0])[: 2 * f.samples] for f in decoder.decode(av.Packet(codes))
    )
    assert g711.decode(codec, codes) == decoded


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_encoding_is_monotonic(codec: str) -> None:
    everything = _pcm(list(range(-32768, 32768)))
    levels = _samples(g711.decode(codec, g711.encode(codec, everything)))
    assert all(a <= b for a, b in itertools.pairwise(levels))


def test_odd_pcm_length_is_refused() -> None:
    with pytest.raises(ValueError, match="whole number of 16-bit samples"):
        g711.ulaw_encode(b"\x00\x01\x02")


def test_unknown_codec() -> None:
    with pytest.raises(ValueError, match=re.escape("not a G.711 codec: 'G722'")):
        g711.encode("G722", b"")
    with pytest.raises(ValueError, match=re.escape("not a G.711 codec: 'G729'")):
        g711.decode("G729", b"")
