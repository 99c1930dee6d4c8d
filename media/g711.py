"""G.711 μ-law (PCMU) and A-law (PCMA), ITU-T G.711, without ``audioop``.

Pure and table driven: decoding is two ``bytes.translate`` calls (low and high
byte of each int16 sample) interleaved by slice assignment, so it runs at C
speed; encoding indexes a 65536-entry table by the unsigned 16-bit sample. The
tables follow the reference conversion routines (Sun Microsystems' public
``g711.c``, the same as FFmpeg's ``pcm_mulaw``/``pcm_alaw``): μ-law works on 14
bits with a bias of 33, A-law on 13 bits with even-bit inversion (0x55).

PCM is signed 16-bit little-endian mono, as in WAV files.
"""

from __future__ import annotations

import sys
from array import array
from functools import cache

__all__ = [
    "ALAW_DECODE",
    "ULAW_DECODE",
    "alaw_decode",
    "alaw_encode",
    "decode",
    "encode",
    "linear_to_alaw",
    "linear_to_ulaw",
    "ulaw_decode",
    "ulaw_encode",
]

_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _segment(value: int, ends: tuple[int, ...]) -> int:
    for seg, end in enumerate(ends):
        if value <= end:
            return seg
    return len(ends)


def linear_to_ulaw(sample: int) -> int:
    """One int16 sample to its μ-law byte."""
    value = sample >> 2  # 14-bit magnitude
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, 8159) + 0x21  # clip, then add the bias (33)
    seg = _segment(value, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask


def linear_to_alaw(sample: int) -> int:
    """One int16 sample to its A-law byte."""
    value = sample >> 3  # 13 bits
    if value >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        value = -value - 1
    seg = _segment(value, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    mantissa = (value >> 1) if seg < 2 else (value >> seg)
    return ((seg << 4) | (mantissa & 0x0F)) ^ mask


def _ulaw_to_linear(code: int) -> int:
    code = ~code & 0xFF
    t = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - t if code & 0x80 else t - 0x84


def _alaw_to_linear(code: int) -> int:
    code ^= 0x55
    t = (code & 0x0F) << 4
    seg = (code & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if code & 0x80 else -t


ULAW_DECODE: tuple[int, ...] = tuple(_ulaw_to_linear(c) for c in range(256))
ALAW_DECODE: tuple[int, ...] = tuple(_alaw_to_linear(c) for c in range(256))


def _byte_tables(decoded: tuple[int, ...]) -> tuple[bytes, bytes]:
    low = bytes(v & 0xFF for v in decoded)
    high = bytes((v >> 8) & 0xFF for v in decoded)
    return low, high


_ULAW_LOW, _ULAW_HIGH = _byte_tables(ULAW_DECODE)
_ALAW_LOW, _ALAW_HIGH = _byte_tables(ALAW_DECODE)


@cache
def _encode_table(law: str) -> bytes:
    """Code for every unsigned 16-bit view of an int16 sample (built once, lazily)."""
    convert = linear_to_ulaw if law == "PCMU" else linear_to_alaw
    return bytes(convert(u - 0x10000 if u & 0x8000 else u) for u in range(0x10000))


def _decode(data: bytes, low: bytes, high: bytes) -> bytes:
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(low)
    out[1::2] = data.translate(high)
    return bytes(out)


def _encode(pcm: bytes, table: bytes) -> bytes:
    if len(pcm) % 2:
        raise ValueError("PCM length must be a whole number of 16-bit samples")
    samples = array("H")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    return bytes(map(table.__getitem__, samples))


def ulaw_decode(data: bytes) -> bytes:
    """μ-law bytes to int16 little-endian PCM."""
    return _decode(bytes(data), _ULAW_LOW, _ULAW_HIGH)


def alaw_decode(data: bytes) -> bytes:
    """A-law bytes to int16 little-endian PCM."""
    return _decode(bytes(data), _ALAW_LOW, _ALAW_HIGH)


def ulaw_encode(pcm: bytes) -> bytes:
    """int16 little-endian PCM to μ-law bytes."""
    return _encode(pcm, _encode_table("PCMU"))


def alaw_encode(pcm: bytes) -> bytes:
    """int16 little-endian PCM to A-law bytes."""
    return _encode(pcm, _encode_table("PCMA"))


def encode(codec: str, pcm: bytes) -> bytes:
    """``codec`` is the rtpmap encoding name, ``PCMU`` or ``PCMA`` (any case)."""
    name = codec.upper()
    if name == "PCMU":
        return ulaw_encode(pcm)
    if name == "PCMA":
        return alaw_encode(pcm)
    raise ValueError(f"not a G.711 codec: {codec!r}")


def decode(codec: str, data: bytes) -> bytes:
    name = codec.upper()
    if name == "PCMU":
        return ulaw_decode(data)
    if name == "PCMA":
        return alaw_decode(data)
    raise ValueError(f"not a G.711 codec: {codec!r}")
