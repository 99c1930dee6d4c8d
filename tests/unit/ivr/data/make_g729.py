"""Regenerate ``tone-1khz.g729``: 1 s of a 1 kHz sine, G.729 (Annex A) encoded by bcg729.

FFmpeg (hence PyAV) has a G.729 decoder but no encoder, so the test fixture is
produced once by an independent encoder, Belledonne Communications' bcg729
(Debian ``libbcg729-0``), through ctypes, and kept in the repository: 100 frames
of 10 bytes, the raw bitstream studios deliver (no header, VAD off, so no SID
frames). The input is ``media.tone.sine(1000, 1000)``: 8 kHz, -12 dBFS.

Run: ``.venv/bin/python tests/unit/ivr/data/make_g729.py`` (needs libbcg729.so.0).
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from media import tone  # noqa: E402

FRAME_SAMPLES = 80  # 10 ms at 8 kHz
OUT = Path(__file__).with_name("tone-1khz.g729")


def encode(pcm: bytes) -> bytes:
    lib = ctypes.CDLL("libbcg729.so.0")
    lib.initBcg729EncoderChannel.restype = ctypes.c_void_p
    lib.initBcg729EncoderChannel.argtypes = [ctypes.c_uint8]
    lib.bcg729Encoder.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_uint8),
    ]
    lib.closeBcg729EncoderChannel.argtypes = [ctypes.c_void_p]
    context = lib.initBcg729EncoderChannel(0)  # 0: no VAD, every frame a full 10 bytes
    out = bytearray()
    try:
        for offset in range(0, len(pcm), 2 * FRAME_SAMPLES):
            frame = ctypes.create_string_buffer(10)
            length = ctypes.c_uint8(0)
            lib.bcg729Encoder(
                context, pcm[offset : offset + 2 * FRAME_SAMPLES], frame, ctypes.byref(length)
            )
            out += frame.raw[: length.value]
    finally:
        lib.closeBcg729EncoderChannel(context)
    return bytes(out)


if __name__ == "__main__":
    data = encode(tone.sine(1000, 1000, 8000))
    OUT.write_bytes(data)
    print(f"{OUT}: {len(data)} bytes")
