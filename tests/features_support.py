"""Telling the star-code confirmations apart in received audio (adapter and interop).

The four confirmations are 440 Hz tones with different cadences (``media.tone``):
accepted 3 x 100 ms, refused 3 x 500 ms, active 1 x 1000 ms, inactive 2 x 200 ms.
:func:`tone_bursts` cuts the audio into 20 ms windows, marks those where 440 Hz
dominates, and returns the lengths of the runs of marked windows;
:func:`confirmation` names the cadence they make.
"""

from __future__ import annotations

from array import array

from media.tone import detect

WINDOW_MS = 20


def _rms(pcm: bytes) -> float:
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if not samples:
        return 0.0
    return float((sum(v * v for v in samples) / len(samples)) ** 0.5)


def tone_bursts(pcm: bytes, rate: int, freq: float = 440.0) -> list[int]:
    """Lengths (ms) of the runs of 20 ms windows where ``freq`` dominates, in order."""
    step = rate * WINDOW_MS // 1000 * 2
    runs: list[int] = []
    current = 0
    for start in range(0, len(pcm) - step + 1, step):
        window = pcm[start : start + step]
        on = _rms(window) > 300 and detect(window, rate, freq) > 0.5
        if on:
            current += WINDOW_MS
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return [r for r in runs if r >= 40]  # a lone window at a tone's edge is no burst


def _near(value: int, expected: int) -> bool:
    return abs(value - expected) <= max(60, expected // 4)


def confirmation(pcm: bytes, rate: int) -> str | None:
    """ "accepted", "refused", "active", "inactive", or None for anything else."""
    runs = tone_bursts(pcm, rate)
    shapes = {
        "accepted": [100] * 3,
        "refused": [500] * 3,
        "active": [1000],
        "inactive": [200] * 2,
    }
    for name, shape in shapes.items():
        if len(runs) == len(shape) and all(_near(r, e) for r, e in zip(runs, shape, strict=True)):
            return name
    return None
