"""Pacing of an announcement as RTP: which frames are due at ``now``.

Pure: the async driver asks ``due(now)``, sends what it gets, and sleeps until
``next_deadline()``. Frames are already encoded for the negotiated codec (one
frame per ``ptime``, e.g. 160 bytes of PCMU for 20 ms).

No drift: the deadline of slot ``k`` is ``start + k * ptime``, computed from the
start time, never from the previous send, so a late wake-up is caught up by the
next call (several packets at once) and the long-run rate stays exact.

RTP fields (RFC 3550 §5.1): the sequence number increases by one per packet
sent; the timestamp is the media clock of the slot, ``ts0 + k * samples`` with
``samples = clock_rate * ptime / 1000`` (160 for 8 kHz RTP clocks, G.722
included, RFC 3551 §4.5.2); both wrap (2**16, 2**32). The marker bit is set on
the first packet of a talkspurt (RFC 3551 §4.1): the first packet, and the
first one after a ``skip``, since the content jumps there.
"""

from __future__ import annotations

from collections.abc import Sequence

from media.rtp import pack_header

__all__ = ["Player"]


class Player:
    """One announcement played once on one RTP stream."""

    def __init__(
        self,
        frames: Sequence[bytes],
        pt: int,
        ssrc: int,
        seq0: int,
        ts0: int,
        clock_rate: int = 8000,
        ptime: int = 20,
        *,
        start: float | None = None,
    ) -> None:
        if clock_rate * ptime % 1000:
            raise ValueError("ptime must be a whole number of clock ticks")
        self._frames = frames
        self._pt = pt
        self._ssrc = ssrc
        self._seq0 = seq0
        self._ts0 = ts0
        self._interval = ptime / 1000
        self._samples = clock_rate * ptime // 1000
        self._start = start
        self._slot = 0  # next time slot to fill: also the packets sent so far
        self._frame = 0  # next frame to play (ahead of the slot after a skip)
        self._marker = True

    @property
    def done(self) -> bool:
        return self._frame >= len(self._frames)

    @property
    def sent(self) -> int:
        """Packets produced so far."""
        return self._slot

    @property
    def sequence(self) -> int:
        """The sequence number the next packet would carry (for a follow-up stream)."""
        return (self._seq0 + self._slot) & 0xFFFF

    @property
    def timestamp(self) -> int:
        """The RTP timestamp of the next slot (for a follow-up stream)."""
        return (self._ts0 + self._slot * self._samples) & 0xFFFFFFFF

    def next_deadline(self) -> float | None:
        """When the next frame is due; None when done or not started.

        ``due(next_deadline())`` sends that frame: the same arithmetic, no rounding
        between the two (a driver may pass the deadline it armed its timer for).
        """
        if self.done or self._start is None:
            return None
        return self._start + self._slot * self._interval

    def due(self, now: float) -> list[bytes]:
        """The RTP packets due at ``now`` (the first call starts the clock if unset)."""
        if self._start is None:
            self._start = now
        out: list[bytes] = []
        frames = self._frames
        start, interval = self._start, self._interval
        # Multiply rather than accumulate: no floating-point drift over long plays.
        while self._frame < len(frames) and start + self._slot * interval <= now:
            header = pack_header(
                self._pt,
                self._seq0 + self._slot,
                self._ts0 + self._slot * self._samples,
                self._ssrc,
                self._marker,
            )
            out.append(header + frames[self._frame])
            self._marker = False
            self._slot += 1
            self._frame += 1
        return out

    def skip(self, to: int | None = None) -> None:
        """Jump to frame ``to`` (e.g. the closing beep), or to the end when None.

        The media clock keeps running: the next packet goes out in its time slot
        with the marker bit set.
        """
        target = len(self._frames) if to is None else to
        if not 0 <= target <= len(self._frames):
            raise ValueError(f"frame {target} is outside 0..{len(self._frames)}")
        if target > self._frame:
            self._frame = target
            self._marker = True
