"""Audio fixtures written in tmp_path: WAV files of every kind a studio delivers.

The stdlib ``wave`` module writes integer PCM only; float, µ-law, A-law and
G.729 WAVs need their own ``fmt `` chunk, so the RIFF layout is written here by
hand (Microsoft's WAVEFORMATEX: tag, channels, rate, byte rate, block align,
bits per sample, extra size).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from pathlib import Path

from media import g711
from media.tone import DEFAULT_AMPLITUDE

G729_FIXTURE = Path(__file__).with_name("data") / "tone-1khz.g729"
"""1 s of a 1 kHz sine, raw G.729: see ``data/make_g729.py`` for how it was made."""

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_G729 = 0x0083  # the tag FFmpeg's RIFF table maps to its g729 decoder

FORMATS = ("u8", "s16", "s24", "s32", "f32", "ulaw", "alaw")


def riff(
    data: bytes, *, tag: int, rate: int, channels: int, bits: int, block_align: int, byte_rate: int
) -> bytes:
    fmt = struct.pack("<HHIIHHH", tag, channels, rate, byte_rate, block_align, bits, 0)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _sine(freq: float, n: int, rate: int) -> list[float]:
    step = 2 * math.pi * freq / rate
    return [DEFAULT_AMPLITUDE * math.sin(step * i) for i in range(n)]


def _encode_samples(values: Sequence[float], fmt: str) -> bytes:
    if fmt == "u8":
        return bytes(128 + round(127 * v) for v in values)
    if fmt == "s24":
        return b"".join(round(v * 8388607).to_bytes(3, "little", signed=True) for v in values)
    if fmt == "s32":
        return struct.pack(f"<{len(values)}i", *(round(v * 2147483647) for v in values))
    if fmt == "f32":
        return struct.pack(f"<{len(values)}f", *values)
    s16 = struct.pack(f"<{len(values)}h", *(round(v * 32767) for v in values))
    if fmt == "ulaw":
        return g711.ulaw_encode(s16)
    if fmt == "alaw":
        return g711.alaw_encode(s16)
    return s16


_TAGS = {"f32": WAVE_FORMAT_IEEE_FLOAT, "ulaw": WAVE_FORMAT_MULAW, "alaw": WAVE_FORMAT_ALAW}
_BITS = {"u8": 8, "s16": 16, "s24": 24, "s32": 32, "f32": 32, "ulaw": 8, "alaw": 8}


def tone_wav(
    path: Path,
    freqs: Sequence[float],
    *,
    rate: int = 8000,
    fmt: str = "s16",
    duration_ms: int = 1000,
) -> Path:
    """A WAV at ``rate`` in sample format ``fmt``: one channel per frequency (0 = silence)."""
    n = rate * duration_ms // 1000
    channels = [_sine(f, n, rate) if f else [0.0] * n for f in freqs]
    interleaved = [v for frame in zip(*channels, strict=True) for v in frame]
    bits = _BITS[fmt]
    block_align = len(freqs) * bits // 8
    path.write_bytes(
        riff(
            _encode_samples(interleaved, fmt),
            tag=_TAGS.get(fmt, WAVE_FORMAT_PCM),
            rate=rate,
            channels=len(freqs),
            bits=bits,
            block_align=block_align,
            byte_rate=rate * block_align,
        )
    )
    return path


def g729_wav(path: Path, bitstream: bytes) -> Path:
    """A raw G.729 bitstream in a WAV (8 kHz mono, 10-byte blocks, 8 kbit/s)."""
    path.write_bytes(
        riff(
            bitstream,
            tag=WAVE_FORMAT_G729,
            rate=8000,
            channels=1,
            bits=0,
            block_align=10,
            byte_rate=1000,
        )
    )
    return path
