"""Audio files to PCM, and PCM to the codecs the switch plays, through PyAV (FFmpeg).

Studios deliver announcements as WAV files of every kind (8 to 48 kHz, 8/16/24/
32-bit integer or 32-bit float samples, mono or stereo, µ-law/A-law or G.729
inside a WAV) and as raw G.729 files. Parsing those containers, decoding G.729
and resampling are jobs for FFmpeg, through PyAV (``av``, which aiortc already
needs and whose wheels bundle FFmpeg with the ``g729`` decoder and the ``g722``
encoder), not for hand-written code here. G.711 stays with ``media.g711``, the
switch's own exact tables.

PCM in this module is ``Pcm``: signed 16-bit little-endian mono samples at
``rate``, the form ``media.g711`` and ``media.tone`` work on.

Rates: ``decode_file`` keeps the file's own rate when it is at most
``max_rate`` (16 kHz by default, the widest the switch plays) and resamples
above it. An 8 kHz recording is therefore never resampled on its way to PCMU or
PCMA (a µ-law WAV comes out of PCMU byte for byte), and a 16 kHz one never on
its way to G.722. Resampling is FFmpeg's ``swresample`` (windowed-sinc,
anti-aliased); channels are mixed down to mono by the same resampler.

G.722 (ITU-T G.722 at 64 kbit/s): 16 kHz audio, one byte per two samples, so
160 bytes per 20 ms; its RTP clock is 8000 Hz even so (RFC 3551 §4.5.2). The
encoder is causal: the first bytes of an encoding depend only on the first
samples, which lets a caller encode "message + tail" once and play the message
alone as a prefix.

Nothing here touches the event loop, but decoding a file takes milliseconds to
a second: call it at load time (or in a worker thread), never per call.

Errors::

    ValueError
     └── AudioFileError      a file that cannot be read or holds no audio (path, reason)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import av
import av.error

from media import g711

__all__ = [
    "CODEC_RATES",
    "G729_SUFFIXES",
    "AudioFileError",
    "Pcm",
    "decode_file",
    "encode",
    "g722_decode",
    "g722_encode",
    "resample",
]

CODEC_RATES: dict[str, int] = {"PCMU": 8000, "PCMA": 8000, "G722": 16000}
"""Audio sampling rate of each codec (not its RTP clock: 8000 for all three)."""

G729_SUFFIXES = frozenset({".g729", ".729", ".g729a"})
"""Raw G.729 bitstreams (10-byte frames, no header): FFmpeg cannot probe these."""

_CHUNK = 8000  # samples per frame handed to FFmpeg when we build frames ourselves


class AudioFileError(ValueError):
    """An audio file that cannot be opened or decoded, or that holds no audio."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Pcm:
    """Signed 16-bit little-endian mono samples at ``rate`` Hz."""

    data: bytes
    rate: int

    @property
    def samples(self) -> int:
        return len(self.data) // 2

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.samples / self.rate


def _s16_mono(frames: Iterable[av.AudioFrame], resampler: av.AudioResampler) -> bytes:
    """The PCM of ``frames`` through ``resampler`` (flushed at the end: ``None``)."""
    out = bytearray()
    for frame in chain(frames, [None]):
        for converted in resampler.resample(frame):
            out += memoryview(converted.planes[0])[: 2 * converted.samples]
    return bytes(out)


def _frame(chunk: bytes, rate: int) -> av.AudioFrame:
    """``chunk`` of PCM as an FFmpeg frame (built by hand: no numpy needed)."""
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(chunk) // 2)
    frame.sample_rate = rate
    frame.planes[0].update(chunk)
    return frame


def decode_file(path: Path, *, max_rate: int = 16000) -> Pcm:
    """Decode the first audio stream of ``path`` to mono PCM at min(its rate, ``max_rate``).

    Raw G.729 files are recognised by their suffix (``G729_SUFFIXES``); every
    other file is probed by FFmpeg (WAV whatever its sample format, WAV-wrapped
    G.711 or G.729, and anything else FFmpeg reads). A stream that fails to
    decode half-way is an error, not a shorter message: the operator learns at
    load time that the file is damaged.
    """
    path = Path(path)
    fmt = "g729" if path.suffix.lower() in G729_SUFFIXES else None
    try:
        with av.open(str(path), format=fmt) as container:
            if not container.streams.audio:
                raise AudioFileError(path, "no audio stream")
            stream = container.streams.audio[0]
            rate = stream.rate or stream.codec_context.sample_rate
            if not rate:
                raise AudioFileError(path, "unknown sample rate")
            rate = min(rate, max_rate)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
            data = _s16_mono(container.decode(stream), resampler)
    except AudioFileError:
        raise
    except av.error.FFmpegError as exc:
        raise AudioFileError(path, exc.strerror or str(exc)) from exc
    except (OSError, ValueError) as exc:  # PyAV raises ValueError for some bad inputs
        raise AudioFileError(path, str(exc)) from exc
    if not data:
        raise AudioFileError(path, "no audio samples")
    return Pcm(data, rate)


def resample(pcm: Pcm, rate: int) -> Pcm:
    """``pcm`` at ``rate`` (the same object when it is already there)."""
    if pcm.rate == rate:
        return pcm
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    step = 2 * _CHUNK
    frames = (_frame(pcm.data[i : i + step], pcm.rate) for i in range(0, len(pcm.data), step))
    return Pcm(_s16_mono(frames, resampler), rate)


def g722_encode(pcm: bytes) -> bytes:
    """16 kHz PCM to G.722 at 64 kbit/s: one byte per two samples.

    FFmpeg's encoder takes 320-sample frames (its ``frame_size``): the PCM is fed
    in those, the last one padded with silence, so the output covers every input
    sample and ends on a whole 20 ms frame (160 bytes).
    """
    if len(pcm) % 2:
        raise ValueError("PCM length must be a whole number of 16-bit samples")
    encoder = av.CodecContext.create("g722", "w")
    assert isinstance(encoder, av.AudioCodecContext)
    encoder.sample_rate = 16000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.open()
    step = 2 * (encoder.frame_size or 320)
    out = bytearray()
    frames = (_frame(pcm[i : i + step].ljust(step, b"\0"), 16000) for i in range(0, len(pcm), step))
    for frame in chain(frames, [None]):  # None flushes the encoder
        for packet in encoder.encode(frame):
            out += bytes(packet)
    return bytes(out)


def g722_decode(data: bytes) -> bytes:
    """G.722 at 64 kbit/s to 16 kHz PCM (two samples per byte)."""
    decoder = av.CodecContext.create("g722", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.sample_rate = 16000
    decoder.layout = "mono"
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
    frames: list[av.AudioFrame] = []
    for packet in (av.Packet(data), None):
        frames += [f for f in decoder.decode(packet) if isinstance(f, av.AudioFrame)]
    return _s16_mono(frames, resampler)


def encode(codec: str, pcm: Pcm) -> bytes:
    """``pcm`` in ``codec`` (``PCMU``, ``PCMA`` or ``G722``, any case), resampled as needed."""
    name = codec.upper()
    if name not in CODEC_RATES:
        raise ValueError(f"no encoder for {codec!r}: the switch plays {', '.join(CODEC_RATES)}")
    audio = resample(pcm, CODEC_RATES[name]).data
    if name == "G722":
        return g722_encode(audio)
    return g711.encode(name, audio)
