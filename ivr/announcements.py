"""The announcement library: the operator's message files as ready-to-send RTP frames.

A message (un message personnalisé, an ATP) is an audio file named in the
routing library (``routing.loader.Library.messages``). The switch plays it in
the codec the call negotiated, so every file is decoded once
(``media.codecs.decode_file``: WAV of any rate and sample format, WAV-wrapped
G.711 or G.729, raw G.729) and encoded once per codec into 20 ms frames, the
payloads a ``media.player.Player`` paces out:

========  ===========  ==========  =========================================
codec     audio rate   RTP clock   bytes per 20 ms frame
========  ===========  ==========  =========================================
PCMU      8 kHz        8000        160 (G.711 µ-law, ``media.g711``)
PCMA      8 kHz        8000        160 (G.711 A-law, ``media.g711``)
G722      16 kHz       8000        160 (64 kbit/s; clock: RFC 3551 §4.5.2)
========  ===========  ==========  =========================================

So the RTP timestamp steps by 160 per frame whatever the codec.

When the work happens: ``preload()`` decodes every file and encodes it for the
three codecs (call it at load time, in a worker thread if the loop is running:
a long 48 kHz file takes a noticeable fraction of a second). After that,
``frames()`` during a call is a dictionary lookup. Once a file is encoded for
every codec its PCM is released: what stays in memory is 3 × 8 kB per second of
audio. A hot reload (``from_library(library, previous=...)``) takes over the
work of the previous library for every file whose (path, mtime, size) did not
change, so only new and edited files are decoded again.

The ATP end beep: ``frames(..., beep=True)`` is the message, then
``BEEP_GAP_MS`` of silence, then ``media.tone.BEEP`` (1 kHz, 250 ms, -12 dBFS:
the beep the switch's confirmation table already names, a plain sine in the
range of the usual "bip" that ends a French ATP). The message and its tail are
encoded as one stream, so G.722's adaptive state runs on across the junction,
and the message frames are the same objects in both variants:
``player.skip(len(frames(message, codec)))`` jumps straight to the silence
before the beep.

Thread safety: the caches are plain dicts filled by single assignments; two
threads asking for the same encoding at once may both compute it, with the
same result. An ``Announcements`` is otherwise read-only, like the ``Library``
it comes from: a reload builds a new one and swaps it whole.

Errors::

    LookupError
     └── KeyError                an unknown message id or tone kind
    ValueError
     ├── AnnouncementError       a message file that cannot be decoded (file and why)
     └── (ValueError itself)     a codec the switch does not play

``AnnouncementError`` is a ``ValueError`` so that a caller which already treats
"cannot play this" as one case (``except (KeyError, ValueError)``) does not let
a damaged file escape into the call's task.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from media import tone
from media.codecs import CODEC_RATES, AudioFileError, Pcm, decode_file, encode, resample
from media.player import Player

if TYPE_CHECKING:
    from routing.loader import Library

__all__ = [
    "BEEP_GAP_MS",
    "CLOCK_RATE",
    "CODECS",
    "FRAME_BYTES",
    "PTIME_MS",
    "TONES",
    "AnnouncementError",
    "Announcements",
    "Decoder",
    "codec_for",
    "tone_frames",
]

CODECS = ("PCMU", "PCMA", "G722")
"""Encodings the switch can play, in order of preference."""

PTIME_MS = 20
CLOCK_RATE = 8000
"""RTP clock of all three codecs (G.722's too, RFC 3551 §4.5.2)."""
FRAME_BYTES = 160
"""One 20 ms frame in any of ``CODECS``."""
BEEP_GAP_MS = 300
"""Silence between the end of an ATP and its beep: the beep must not sound like part of it."""

Decoder = Callable[[Path], Pcm]
"""Reads one audio file (``media.codecs.decode_file``); raises ``AudioFileError``."""

TONES: Mapping[str, tone.Cadence] = {
    "accepted": tone.ACCEPTED,
    "refused": tone.REFUSED,
    "active": tone.ACTIVE,
    "inactive": tone.INACTIVE,
    "beep": tone.BEEP,
    "busy": tone.BUSY * 4,
    "congestion": tone.CONGESTION * 8,
    "ringback": tone.RINGBACK,
}
"""The cadences of ``tone_frames`` (one pass each, see there)."""


class AnnouncementError(ValueError):
    """A message file that cannot be decoded: ``path``, ``reason`` and the message ids using it."""

    def __init__(self, path: Path, reason: str, messages: Sequence[str] = ()) -> None:
        used_by = f" (message {', '.join(messages)})" if messages else ""
        super().__init__(f"{path}: {reason}{used_by}")
        self.path = path
        self.reason = reason
        self.messages = tuple(messages)


def codec_for(encoding: str) -> str | None:
    """The name in ``CODECS`` of an SDP rtpmap encoding (any case), or None if not played."""
    name = encoding.upper()
    return name if name in CODECS else None


def _check_codec(codec: str) -> str:
    name = codec_for(codec)
    if name is None:
        raise ValueError(f"cannot play {codec!r}: the switch plays {', '.join(CODECS)}")
    return name


def _pad(pcm: Pcm) -> Pcm:
    """``pcm`` padded with silence to a whole number of frames."""
    frame = pcm.rate * PTIME_MS // 1000
    short = -pcm.samples % frame
    return Pcm(pcm.data + bytes(2 * short), pcm.rate) if short else pcm


def _encode_frames(codec: str, pcm: Pcm) -> tuple[bytes, ...]:
    """``pcm`` (a whole number of frames long) as 20 ms frames of ``codec``."""
    data = encode(codec, pcm)
    return tuple(data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES))


@cache
def _beep_tail(rate: int) -> bytes:
    """The PCM appended for ``beep=True``: the gap, then the beep, padded to whole frames."""
    tail = tone.silence(BEEP_GAP_MS, rate) + tone.render(tone.BEEP, rate)
    return _pad(Pcm(tail, rate)).data


def tone_frames(kind: str, codec: str) -> Sequence[bytes]:
    """A signalling tone as 20 ms frames of ``codec``, for when no recorded prompt exists.

    One pass of the cadence (loop it by playing it again), French network tones
    at 440 Hz as ``media.tone`` defines them (ITU-T E.180 Suppl. 2 for France),
    at -12 dBFS:

    ==========  =======================================  ======
    kind        cadence                                  length
    ==========  =======================================  ======
    accepted    3 × (100 ms on, 100 ms off)              0.6 s
    refused     3 × (500 ms on, 500 ms off), busy rhythm 3 s
    active      1000 ms on: the feature is on            1 s
    inactive    2 × (200 ms on, 200 ms off)              0.8 s
    beep        1000 Hz, 250 ms: the end of an ATP       0.25 s
    busy        4 × (500 ms on, 500 ms off)              4 s
    congestion  8 × (250 ms on, 250 ms off)              4 s
    ringback    1.5 s on, 3.5 s off (one ring)           5 s
    ==========  =======================================  ======

    Rendered directly at the codec's rate (no resampling) and cached: the first
    call for a (kind, codec) costs some milliseconds, the others nothing.
    ``KeyError`` for an unknown kind, ``ValueError`` for a codec not in ``CODECS``.
    """
    return _tone_frames(kind, _check_codec(codec))


@cache
def _tone_frames(kind: str, codec: str) -> tuple[bytes, ...]:
    rate = CODEC_RATES[codec]
    return _encode_frames(codec, _pad(Pcm(tone.render(TONES[kind], rate), rate)))


def _stamp(path: Path) -> tuple[int, int] | None:
    """What tells a file changed: (mtime in ns, size); None if it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


_Encoded = tuple[tuple[bytes, ...], tuple[bytes, ...]]
"""(message frames, message + beep frames): the beep variant starts with the very same frames."""


@dataclass(eq=False, slots=True)
class _Audio:
    """One decoded file and its encodings: shared between a library and its reload."""

    stamp: tuple[int, int] | None
    duration: float
    pcm: Pcm | None
    """Released (None) once every codec is encoded."""
    encoded: dict[str, _Encoded] = field(default_factory=dict)
    """Codec -> (message frames, message + beep frames), one assignment per codec."""


class Announcements:
    """Message id -> audio file, decoded and encoded on demand or all at once by ``preload``."""

    def __init__(self, files: Mapping[str, Path], *, decoder: Decoder = decode_file) -> None:
        """``files``: message id -> audio file. Nothing is read yet.

        ``decoder`` reads one file (``media.codecs.decode_file``); another one is
        for tests that count decodings, or for a different decoding backend.
        """
        self._files = {name: Path(path) for name, path in files.items()}
        self._decoder = decoder
        self._audio: dict[Path, _Audio] = {}
        self._failed: dict[Path, AnnouncementError] = {}

    @classmethod
    def from_library(
        cls,
        library: Library,
        previous: Announcements | None = None,
        *,
        decoder: Decoder | None = None,
    ) -> Announcements:
        """The messages of ``library``, taking over ``previous``'s work on unchanged files.

        A file is unchanged when its path, mtime and size are those it had when
        ``previous`` decoded it. Files that failed in ``previous`` are tried
        again (the operator may have fixed them). ``decoder`` defaults to
        ``previous``'s, else ``media.codecs.decode_file``.
        """
        if decoder is None:
            decoder = previous._decoder if previous is not None else decode_file
        new = cls({name: entry.path for name, entry in library.messages.items()}, decoder=decoder)
        if previous is not None:
            for path in set(new._files.values()):
                audio = previous._audio.get(path)
                if audio is not None and audio.stamp is not None and audio.stamp == _stamp(path):
                    new._audio[path] = audio
        return new

    @property
    def messages(self) -> Mapping[str, Path]:
        """Message id -> audio file."""
        return dict(self._files)

    def preload(self) -> list[AnnouncementError]:
        """Decode every file and encode it for every codec, now; the failures, not raised.

        Call at load time (a worker thread is fine): afterwards ``frames`` is a
        lookup for every message that did not fail.
        """
        errors: list[AnnouncementError] = []
        for path in dict.fromkeys(self._files.values()):
            try:
                audio = self._decoded(path)
                for codec in CODECS:
                    self._encoded(audio, codec)
            except AnnouncementError as exc:
                errors.append(exc)
        return errors

    def frames(self, message: str, codec: str, *, beep: bool = False) -> Sequence[bytes]:
        """``message`` as 20 ms frames of ``codec`` (160 bytes each); with the ATP beep if asked.

        ``KeyError`` for an unknown message, ``ValueError`` for a codec not in
        ``CODECS``, ``AnnouncementError`` if the file cannot be decoded.
        """
        audio = self._decoded(self._files[message])
        message_frames, beep_frames = self._encoded(audio, _check_codec(codec))
        return beep_frames if beep else message_frames

    def duration(self, message: str) -> float:
        """Seconds of audio in ``message``'s file (without the beep)."""
        return self._decoded(self._files[message]).duration

    def player(
        self,
        message: str,
        codec: str,
        pt: int,
        *,
        ssrc: int,
        seq0: int,
        ts0: int,
        beep: bool = False,
        start: float | None = None,
    ) -> Player:
        """A ``Player`` of ``message`` in ``codec`` with payload type ``pt`` (8 kHz RTP clock)."""
        frames = self.frames(message, codec, beep=beep)
        return Player(frames, pt, ssrc, seq0, ts0, CLOCK_RATE, PTIME_MS, start=start)

    # ------------------------------------------------------------ internals

    def _decoded(self, path: Path) -> _Audio:
        audio = self._audio.get(path)
        if audio is not None:
            return audio
        failed = self._failed.get(path)
        if failed is not None:
            raise failed
        # The stamp is taken before reading: a file replaced while it is being
        # decoded has a newer mtime than the one recorded, so the next reload
        # decodes it again.
        stamp = _stamp(path)
        try:
            pcm = self._decoder(path)
        except AudioFileError as exc:
            users = [name for name, p in self._files.items() if p == path]
            error = AnnouncementError(path, exc.reason, users)
            self._failed[path] = error
            raise error from exc
        audio = _Audio(stamp, pcm.duration, pcm)
        self._audio[path] = audio
        return audio

    def _encoded(self, audio: _Audio, codec: str) -> _Encoded:
        """(message frames, message + beep frames) of ``audio`` in ``codec``, encoded once."""
        encoded = audio.encoded.get(codec)
        if encoded is not None:
            return encoded
        pcm = audio.pcm
        if pcm is None:  # another thread has just encoded every codec
            return audio.encoded[codec]
        # One stream for the message and its tail: G.722 is adaptive, and its
        # encoder causal, so the message frames are a prefix of the whole.
        rate = CODEC_RATES[codec]
        message = _pad(resample(pcm, rate))
        whole = _encode_frames(codec, Pcm(message.data + _beep_tail(rate), rate))
        count = message.samples // (rate * PTIME_MS // 1000)
        encoded = whole[:count], whole
        audio.encoded[codec] = encoded
        if len(audio.encoded) == len(CODECS):
            audio.pcm = None
        return encoded
