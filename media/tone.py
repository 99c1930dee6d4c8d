"""Tone generation and detection (int16 little-endian mono PCM).

Generation: ``sine`` and ``render`` (a cadence of tone and silence segments),
with the French call-progress tones and the switch's confirmation tones below.

Detection: the Goertzel algorithm evaluates one DFT term at any frequency in
O(N) without an FFT. The signal is Hann-windowed first, so a tone that does not
fill a whole number of cycles leaks little into its neighbours, and the result
is normalised into a *power ratio*: the share of the (windowed) signal energy
found at the frequency, 1.0 for a pure sine, about 0 for silence or another
tone. G.711 companding adds noise about 35 dB below the signal and a lost packet
is a short gap; neither moves the ratio much, which is what tests need to check
that the right tone crossed the relay (1 kHz one way, 2 kHz the other).

Tone tables (frequency in Hz, 0 for silence; durations in ms):

- French network tones, the values of ITU-T E.180 Suppl. 2 for France, all on
  440 Hz: dial (continuous), ringback 1.5 s on / 3.5 s off, busy 0.5 s / 0.5 s,
  congestion 0.25 s / 0.25 s.
- Confirmation tones of Aiguilleur's star codes (not a national standard,
  chosen to be told apart by ear and by ``detect``), also on 440 Hz:

  ========== =========================================================
  accepted   3 short beeps: 3 × (100 on, 100 off)
  refused    busy rhythm, 3 cycles: 3 × (500 on, 500 off)
  active     one long tone: 1000 on (the feature is now, or is, on)
  inactive   2 beeps: 2 × (200 on, 200 off) (the feature is off)
  beep       1000 Hz, 250 ms: the end of an ATP
  ========== =========================================================
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable, Sequence

__all__ = [
    "ACCEPTED",
    "ACTIVE",
    "BEEP",
    "BUSY",
    "CONGESTION",
    "DIAL",
    "INACTIVE",
    "REFUSED",
    "RINGBACK",
    "Cadence",
    "detect",
    "dominant_frequency",
    "render",
    "silence",
    "sine",
]

Cadence = tuple[tuple[float, int], ...]
"""``((frequency_hz or 0 for silence, duration_ms), ...)``."""

DIAL: Cadence = ((440.0, 3000),)  # continuous; 3 s rendered
RINGBACK: Cadence = ((440.0, 1500), (0.0, 3500))
BUSY: Cadence = ((440.0, 500), (0.0, 500))
CONGESTION: Cadence = ((440.0, 250), (0.0, 250))

ACCEPTED: Cadence = ((440.0, 100), (0.0, 100)) * 3
REFUSED: Cadence = ((440.0, 500), (0.0, 500)) * 3
ACTIVE: Cadence = ((440.0, 1000),)
INACTIVE: Cadence = ((440.0, 200), (0.0, 200)) * 2
BEEP: Cadence = ((1000.0, 250),)

DEFAULT_AMPLITUDE = 0.25  # of full scale: -12 dBFS, comfortable on a handset


def _samples(duration_ms: int, rate: int) -> int:
    if rate <= 0 or duration_ms < 0:
        raise ValueError("rate must be positive and duration not negative")
    return rate * duration_ms // 1000


def _to_bytes(values: array[int]) -> bytes:
    if sys.byteorder == "big":
        values.byteswap()
    return values.tobytes()


def _to_samples(pcm: bytes) -> array[int]:
    if len(pcm) % 2:
        raise ValueError("PCM length must be a whole number of 16-bit samples")
    values = array("h")
    values.frombytes(pcm)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def sine(
    freq: float,
    duration_ms: int,
    rate: int = 8000,
    amplitude: float = DEFAULT_AMPLITUDE,
    *,
    phase: float = 0.0,
) -> bytes:
    """A sine of ``freq`` Hz, ``amplitude`` a fraction of full scale (0..1)."""
    if not 0.0 <= amplitude <= 1.0:
        raise ValueError("amplitude must be in 0..1")
    n = _samples(duration_ms, rate)
    peak = amplitude * 32767
    step = 2 * math.pi * freq / rate
    return _to_bytes(array("h", (round(peak * math.sin(phase + step * i)) for i in range(n))))


def silence(duration_ms: int, rate: int = 8000) -> bytes:
    return bytes(2 * _samples(duration_ms, rate))


def render(
    cadence: Iterable[tuple[float, int]], rate: int = 8000, amplitude: float = DEFAULT_AMPLITUDE
) -> bytes:
    """The PCM of a cadence (one pass; repeat the result to loop it)."""
    return b"".join(
        sine(freq, ms, rate, amplitude) if freq > 0 else silence(ms, rate) for freq, ms in cadence
    )


def _windowed(pcm: bytes) -> tuple[list[float], float]:
    """Hann-windowed samples and the factor that normalises Goertzel power to a ratio."""
    x = _to_samples(pcm)
    n = len(x)
    if n < 2:
        return [], 0.0
    k = 2 * math.pi / (n - 1)
    window = [0.5 - 0.5 * math.cos(k * i) for i in range(n)]
    s1 = math.fsum(window)
    s2 = math.fsum(w * w for w in window)
    y = [w * v for w, v in zip(window, x, strict=True)]
    energy = math.fsum(v * v for v in y)
    if energy == 0.0:
        return y, 0.0
    # A pure sine of amplitude A gives |X|^2 = (A*s1/2)^2 and energy = A^2*s2/2.
    return y, 2 * s2 / (s1 * s1 * energy)


def _goertzel(samples: Sequence[float], rate: int, freq: float) -> float:
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for v in samples:
        s1, s2 = v + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def detect(pcm: bytes, rate: int, freq: float) -> float:
    """Share of the signal's power at ``freq`` (0..~1); 0.0 for silence."""
    samples, norm = _windowed(pcm)
    if norm == 0.0:
        return 0.0
    return _goertzel(samples, rate, freq) * norm


def dominant_frequency(
    pcm: bytes, rate: int, candidates: Iterable[float], *, min_ratio: float = 0.2
) -> float | None:
    """The candidate with the largest power ratio, or None if none reaches ``min_ratio``."""
    samples, norm = _windowed(pcm)
    if norm == 0.0:
        return None
    best, best_ratio = None, min_ratio
    for freq in candidates:
        ratio = _goertzel(samples, rate, freq) * norm
        if ratio >= best_ratio:
            best, best_ratio = freq, ratio
    return best
